// Hides the static snapshot (a text/html output just above this widget, kept for a reopened notebook) while
// the live widget is on show, and shows it again when the widget goes away.
function render({ el }) {
  el.style.display = "none";
  const area = el.closest(".jp-OutputArea, .output_area, .output");
  const snapshots = area ? [...area.querySelectorAll(".nbml-snapshot")] : [];
  const holders = snapshots.map((s) => s.closest(".jp-OutputArea-child") || s);
  for (const h of holders) h.style.display = "none";
  return () => { for (const h of holders) h.style.display = ""; };
}
export default { render };
