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

  function drawBar() {
    const cells = model.get("cells") || [];
    const frag = document.createDocumentFragment();
    for (const [iteration, status, colour, title, runId] of cells) {
      const cell = el("span", "nbml-cell");
      cell.style.background = colour;
      cell.title = title;
      cell.dataset.iteration = String(iteration);
      cell.dataset.status = status;
      cell.addEventListener("click", () => select(runId));
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
        const td = el("td", "nbml-col-" + key, row[key]);
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
  model.on("change:cells", drawBar);
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
    model.off("change:cells", drawBar);
    model.off("change:rows", onTable);
    model.off("change:selected", onTable);
    model.off("change:columns", onTable);
    model.off("change:page", onPager);
    model.off("change:pages", onPager);
    model.off("change:total", onPager);
  };
}

export default { render };
