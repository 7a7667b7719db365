// The iterations view of a parent run: a status bar (one cell per iteration) above a paged, sortable
// table. Python computes the visible page; this only draws it and reports clicks. Text goes in with
// textContent, never innerHTML, so run data can't inject markup.
function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function render({ model, el: root }) {
  root.classList.add("nbml-iterations");
  const bar = el("div", "nbml-statusbar");
  const table = el("table", "nbml-iter-table");
  const pager = el("div", "nbml-pager");
  root.append(bar, table, pager);

  function select(runId) {
    model.set("selected", runId === model.get("selected") ? "" : runId);
    model.save_changes();
  }

  // The status bar arrives packed (int32 iterations, uint8 status indexes, float64 scores): the cells' shade
  // (light to deep green from the worst to the best score) and their titles are worked out here.
  function bytesOf(value) {
    if (!value) return new ArrayBuffer(0);
    if (value instanceof ArrayBuffer) return value;
    if (ArrayBuffer.isView(value)) return value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength);
    return new ArrayBuffer(0);
  }

  function shade(frac) {
    const level = Math.round(Math.min(Math.max(frac, 0), 1) * 50) / 50;
    const light = [200, 230, 201];
    const dark = [27, 94, 32];
    return "#" + light.map((a, i) => Math.round(a + (dark[i] - a) * level).toString(16).padStart(2, "0")).join("");
  }

  function drawBar() {
    const iterations = new Int32Array(bytesOf(model.get("bar_iterations")));
    const status = new Uint8Array(bytesOf(model.get("bar_status")));
    const scores = new Float64Array(bytesOf(model.get("bar_scores")));
    const names = model.get("bar_statuses") || [];
    const metric = model.get("bar_metric");
    const minimize = model.get("bar_goal") === "minimize";
    const count = Math.min(iterations.length, status.length, scores.length);
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < count; i++) {
      if (!Number.isNaN(scores[i])) { lo = Math.min(lo, scores[i]); hi = Math.max(hi, scores[i]); }
    }
    const frag = document.createDocumentFragment();
    for (let i = 0; i < count; i++) {
      const [name, colour] = names[status[i]] || ["", "#9e9e9e"];
      const cell = el("span", "nbml-cell");
      let title = `Iteration ${iterations[i]}: ${name}`;
      cell.style.background = colour;
      if (!Number.isNaN(scores[i])) {
        const frac = hi === lo ? 1 : (scores[i] - lo) / (hi - lo);
        cell.style.background = shade(minimize ? 1 - frac : frac);
        title += `, ${metric} ${Number(scores[i].toPrecision(4))}`;
      }
      cell.title = title;
      cell.dataset.iteration = String(iterations[i]);
      cell.dataset.status = name;
      cell.addEventListener("click", () => model.send({ type: "select-cell", index: i }));
      frag.append(cell);
    }
    bar.replaceChildren(frag);
  }

  function drawTable() {
    const columns = model.get("columns") || [];
    const rows = model.get("rows") || [];
    const sortBy = model.get("sort_by");
    const desc = model.get("descending");
    const selected = model.get("selected");
    const head = el("tr");
    for (const [key, label] of columns) {
      const th = el("th", "nbml-sortable", label + (key === sortBy ? (desc ? " \u25BC" : " \u25B2") : ""));
      th.dataset.key = key;
      th.addEventListener("click", () => {
        if (model.get("sort_by") === key) model.set("descending", !model.get("descending"));
        else { model.set("sort_by", key); model.set("descending", key === "metric" || key === "best"); }
        model.set("page", 0);
        model.save_changes();
      });
      head.append(th);
    }
    const thead = el("thead");
    thead.append(head);
    const tbody = el("tbody");
    for (const row of rows) {
      const tr = el("tr", "nbml-row" + (row.run_id === selected ? " nbml-selected" : ""));
      tr.dataset.runId = row.run_id;
      for (const [key] of columns) {
        let td;
        if (key === "pipeline" || key === "run_id") {  // may be cut to fit (a table cell ignores max-width)
          td = el("td", "nbml-col-" + key);
          // Sibling runs share their start (the parent's id): a long id shows its end, which tells them apart.
          const text = String(row[key] ?? "");
          td.append(el("span", "nbml-cut", key === "run_id" && text.length > 20 ? "\u2026" + text.slice(-18) : text));
          td.title = row[key] ?? "";
        } else {
          td = el("td", "nbml-col-" + key, row[key]);
        }
        if (key === "status") td.style.color = row._colour;
        tr.append(td);
      }
      tr.addEventListener("click", () => select(row.run_id));
      tbody.append(tr);
    }
    table.replaceChildren(thead, tbody);
  }

  function drawPager() {
    const page = model.get("page");
    const pages = model.get("pages");
    const total = model.get("total");
    const prev = el("button", "nbml-prev", "\u2039 Prev");
    const next = el("button", "nbml-next", "Next \u203A");
    prev.disabled = page <= 0;
    next.disabled = page >= pages - 1;
    prev.addEventListener("click", () => { model.set("page", page - 1); model.save_changes(); });
    next.addEventListener("click", () => { model.set("page", page + 1); model.save_changes(); });
    pager.replaceChildren(prev, el("span", "nbml-page", `Page ${page + 1} of ${pages} (${total} iterations)`), next);
  }

  // The clicked row's details open beside the table (below it in a narrow output area): once the kernel has
  // put them there, bring them into view if they are not, so a click always visibly does something.
  let revealTimer = null;
  function reveal() {
    const id = model.get("shown");
    if (revealTimer) clearTimeout(revealTimer);
    if (!id) return;
    const started = Date.now();
    const attempt = () => {
      const view = root.closest(".nbml-parent-view");
      const target = view ? view.querySelector(".nbml-iteration-detail") : null;
      const ready = target && target.offsetHeight > 40 && target.textContent.includes(id);
      if (!ready && Date.now() - started < 3000) {
        revealTimer = setTimeout(attempt, 100);
        return;
      }
      const node = target || table;
      const box = node.getBoundingClientRect();
      if (box.top < 0 || box.top > window.innerHeight * 0.6) node.scrollIntoView({ block: "start" });
      node.classList.add("nbml-revealed");
      setTimeout(() => node.classList.remove("nbml-revealed"), 1200);
    };
    attempt();
  }

  drawBar();
  drawTable();
  drawPager();
  const onTable = () => drawTable();
  const onPager = () => drawPager();
  // One update changes several of the bar's attributes at once: draw once for them all.
  let barQueued = false;
  const queueBar = () => {
    if (barQueued) return;
    barQueued = true;
    queueMicrotask(() => { barQueued = false; drawBar(); });
  };
  const barEvents = ["bar_iterations", "bar_status", "bar_scores", "bar_statuses", "bar_metric", "bar_goal"]
    .map((name) => "change:" + name);
  for (const name of barEvents) model.on(name, queueBar);
  model.on("change:rows", onTable);
  model.on("change:selected", onTable);
  model.on("change:columns", onTable);
  model.on("change:page", onPager);
  model.on("change:pages", onPager);
  model.on("change:total", onPager);
  model.on("change:shown", reveal);
  return () => {
    if (revealTimer) clearTimeout(revealTimer);
    model.off("change:shown", reveal);
    for (const name of barEvents) model.off(name, queueBar);
    model.off("change:rows", onTable);
    model.off("change:selected", onTable);
    model.off("change:columns", onTable);
    model.off("change:page", onPager);
    model.off("change:pages", onPager);
    model.off("change:total", onPager);
  };
}

export default { render };
