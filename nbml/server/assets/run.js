/* The run page: a chart per metric series, an AutoML iteration's model charts, a HyperDrive parent's children
   curves and parallel coordinates, file previews, and live updates while the run is active. */
"use strict";
(function () {
  const { stepAxis, el, getJSON, ptext, fmt, duration, plot, parallel } = window.nbml;
  const D = JSON.parse(document.getElementById("nbml-data").textContent);
  const api = document.body.dataset.api;
  const apiBase = document.body.dataset.apiBase;
  const enc = (path) => path.split("/").map(encodeURIComponent).join("/");

  /* -- metric series ------------------------------------------------------------------------------- */
  const charts = {}; // name -> {div, x: [], y: []}
  let lastId = 0;

  function addRows(rows) {
    const changed = new Set();
    for (const r of rows) {
      lastId = Math.max(lastId, r.id);
      const c = charts[r.name];
      if (!c || typeof r.value !== "number") continue;
      c.x.push(r.step === null || r.step === undefined ? c.y.length : r.step);
      c.y.push(r.value);
      changed.add(r.name);
    }
    for (const name of changed) draw(name);
  }

  function draw(name) {
    const c = charts[name];
    plot(c.div, [{ type: "scatter", mode: c.y.length > 50 ? "lines" : "lines+markers", x: c.x, y: c.y, name: ptext(name) }],
      { title: { text: ptext(name) }, xaxis: stepAxis(c.x), showlegend: false });
  }

  async function loadSeries() {
    const grid = document.getElementById("metric-charts");
    if (!grid || !D.series.length) return;
    for (const name of D.series) {
      const div = el("div", { className: "metric-chart", "data-metric": name });
      grid.appendChild(div);
      charts[name] = { div, x: [], y: [] };
    }
    const answer = await getJSON(api + "/metrics");
    addRows(answer.rows);
    lastId = answer.last_id;
  }

  /* -- AutoML iteration ---------------------------------------------------------------------------- */
  async function loadIteration() {
    if (!D.automl_iteration) return;
    const model = await getJSON(api + "/iteration-charts");
    const tabs = document.getElementById("iteration-tabs");
    const div = document.getElementById("iteration-chart");
    const note = document.getElementById("iteration-error");
    const hp = document.getElementById("hyperparameters");
    const rows = [["algorithm", model.algorithm], ["preprocessor", model.preprocessor]];
    for (const [k, v] of Object.entries(model.hyperparameters || {})) rows.push([k, typeof v === "object" ? JSON.stringify(v) : v]);
    for (const [k, v] of rows) {
      if (v === null || v === undefined) continue;
      const tr = el("tr");
      tr.append(el("th", {}, k), el("td", {}, fmt(v)));
      hp.appendChild(tr);
    }
    if (model.error) {
      note.textContent = model.error;
      note.hidden = false;
      div.hidden = true;
      return;
    }
    const show = (key) => {
      for (const b of tabs.children) b.setAttribute("aria-selected", String(b.dataset.chart === key));
      const fig = model.charts[key];
      plot(div, fig.data, Object.assign({}, fig.layout, { height: 440 }));
    };
    for (const [key, title] of Object.entries(model.titles)) {
      tabs.appendChild(el("button", { type: "button", role: "tab", "data-chart": key, onclick: () => show(key) }, title));
    }
    const first = Object.keys(model.titles)[0];
    if (first) show(first);
  }

  /* -- HyperDrive parent --------------------------------------------------------------------------- */
  // plotly's D3 + Dark24 colours (distinct for up to 24 children's curves)
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100",
    "#750D86", "#EB663B", "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D"];
  async function loadHyperDrive() {
    if (D.kind !== "hyperdrive") return;
    const metric = D.primary_metric;
    const curves = document.getElementById("children-curves");
    const par = document.getElementById("parallel");
    if (!metric || !D.children.length) {
      curves.appendChild(el("p", { className: "muted" }, "No children yet."));
      return;
    }
    const query = D.children.map((c) => "run=" + encodeURIComponent(c)).join("&");
    const series = await getJSON(apiBase + "/series?metric=" + encodeURIComponent(metric) + "&" + query);
    const traces = [];
    for (const [runId, s] of Object.entries(series.runs)) {
      if (!s.value.length) continue;
      const x = s.step.map((st, i) => (st === null ? i : st));
      // the name the children table shows (a display name, else the run id)
      const short = (D.child_names || {})[runId] || runId;
      traces.push({ type: "scatter", mode: s.value.length > 1 ? "lines" : "markers", x, y: s.value, name: ptext(short) });
    }
    if (traces.length) {
      // more lines than plotly's 10 colours: a palette that does not repeat for 24 children
      plot(curves, traces, { title: { text: ptext(metric + " by step, one line per child") },
        xaxis: stepAxis(traces.flatMap((t) => t.x)), colorway: traces.length > 10 ? PALETTE : undefined });
    }
    else curves.appendChild(el("p", { className: "muted" }, "No child has logged " + metric + " yet."));
    const table = await getJSON(apiBase + "/experiments/" + encodeURIComponent(D.experiment) + "/runs?parent=" + encodeURIComponent(D.run_id));
    for (const r of table.runs) {
      r.metrics = {};
      table.metric_names.forEach((name, i) => { if (r.values[i] !== null) r.metrics[name] = r.values[i]; });
    }
    if (!parallel(par, table.runs, table.param_names, metric)) {
      par.appendChild(el("p", { className: "muted" }, "Parallel coordinates need two children with " + metric + " logged."));
    }
  }

  /* -- file preview -------------------------------------------------------------------------------- */
  async function preview(path, button) {
    const pane = document.getElementById("preview");
    document.querySelectorAll(".preview-link.active").forEach((b) => b.classList.remove("active"));
    button.classList.add("active");
    pane.replaceChildren(el("p", { className: "muted" }, "Loading " + path + " …"));
    let p;
    try {
      p = await getJSON(api + "/preview/" + enc(path));
    } catch (e) {
      pane.replaceChildren(el("p", { className: "error" }, "Cannot preview " + path + ": " + e.message));
      return;
    }
    const head = el("h3", {}, path + " ");
    head.appendChild(el("a", { href: api + "/raw/" + enc(path) + "?download=1", download: true }, "download"));
    const parts = [head];
    if (p.kind === "image") parts.push(el("img", { src: api + "/raw/" + enc(path), alt: path }));
    else if (p.kind === "csv") {
      const table = el("table", { className: "csv-preview" });
      const tr = el("tr");
      for (const c of p.columns) tr.appendChild(el("th", {}, c));
      table.appendChild(tr);
      for (const row of p.rows) {
        const r = el("tr");
        for (const v of row) r.appendChild(el("td", {}, v));
        table.appendChild(r);
      }
      parts.push(el("div", { className: "scroll" }, null));
      parts[parts.length - 1].appendChild(table);
      if (p.truncated) parts.push(el("p", { className: "muted" }, "First " + p.rows.length + " rows shown; download the file for all of it."));
    } else if (p.kind === "text") {
      parts.push(el("pre", {}, p.content));
      if (p.truncated) parts.push(el("p", { className: "muted" }, "The start of the file is shown; download it for all of it."));
    } else parts.push(el("p", { className: "muted" }, "A binary file: download it to open it."));
    pane.replaceChildren(...parts);
  }

  document.querySelectorAll(".preview-link").forEach((b) => b.addEventListener("click", () => preview(b.dataset.path, b)));

  /* -- live updates -------------------------------------------------------------------------------- */
  function signature(model) {
    const parts = [model.status, String(Object.keys(model.metrics).length), String(model.output_files.length),
      String(model.log_files.length)];
    for (const c of model.children) parts.push(c.run_id + "=" + c.status);
    return parts.join("|");
  }

  async function poll() {
    try {
      const model = await getJSON(api);
      if (signature(model) !== D.signature) {
        window.location.reload();
        return;
      }
      document.getElementById("run-duration").textContent = duration(model.duration_seconds);
      if (Object.keys(charts).length) {
        const answer = await getJSON(api + "/metrics?after=" + lastId);
        addRows(answer.rows);
      }
    } catch (e) {
      const note = document.getElementById("live-note");
      if (note) note.textContent = " · live updates paused: " + e.message;
    }
    window.setTimeout(poll, D.refresh_seconds * 1000);
  }

  function start() {
    const jobs = [loadSeries(), loadIteration(), loadHyperDrive()];
    Promise.allSettled(jobs).then((results) => {
      for (const r of results) if (r.status === "rejected") console.error(r.reason);
      document.body.dataset.ready = "1";
    });
    if (!D.is_terminal) window.setTimeout(poll, D.refresh_seconds * 1000);
  }
  start();
})();
