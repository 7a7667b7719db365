/* The experiment page: the runs as a sortable, filterable table with chosen columns; selected runs compared
   (metric series overlaid, a metric against a parameter, parallel coordinates); live while runs are active. */
"use strict";
(function () {
  const { stepAxis, el, getJSON, ptext, fmt, duration, when, statusBadge, plot, parallel } = window.nbml;
  const D = JSON.parse(document.getElementById("nbml-data").textContent);
  const apiBase = document.body.dataset.apiBase;
  const pageBase = document.body.dataset.pageBase;
  const $ = (id) => document.getElementById(id);

  const FIXED = [
    { key: "run", label: "Run", get: (r) => r.display_name || r.run_id },
    { key: "status", label: "Status", get: (r) => r.status },
    { key: "duration", label: "Duration", get: (r) => r.duration_seconds, num: true },
    { key: "created", label: "Created (UTC)", get: (r) => r.created_at, num: true },
  ];
  const state = {
    table: null, sort: { key: "created", dir: -1 }, visible: null, selected: new Set(),
    text: "", status: "", tag: "", children: false, seriesKey: "", known: new Set(),
  };

  function columns() {
    const t = state.table;
    const dyn = [];
    for (const k of t.tag_keys) dyn.push({ key: "tag:" + k, label: k, group: "Tags", get: (r) => r.tags[k] });
    for (const k of t.param_names) {
      // a parameter whose values are all numbers is a numeric column: right-aligned, header and cells alike
      const num = t.runs.every((r) => r.params[k] === undefined || typeof r.params[k] === "number");
      dyn.push({ key: "param:" + k, label: k, group: "Parameters", get: (r) => r.params[k], num });
    }
    for (const k of t.metric_names) dyn.push({ key: "metric:" + k, label: k, group: "Metrics", get: (r) => r.metrics[k], num: true });
    return FIXED.concat(dyn);
  }

  function defaultVisible() {
    const t = state.table;
    const pm = t.primary_metric && t.primary_metric.name;
    const metrics = pm && t.metric_names.includes(pm) ? [pm].concat(t.metric_names.filter((m) => m !== pm)) : t.metric_names;
    return new Set(FIXED.map((c) => c.key)
      .concat(t.tag_keys.slice(0, 3).map((k) => "tag:" + k))
      .concat(t.param_names.slice(0, 6).map((k) => "param:" + k))
      .concat(metrics.slice(0, 6).map((k) => "metric:" + k)));
  }

  function filtered() {
    const text = state.text.toLowerCase();
    let [tagKey, tagValue] = state.tag.split("=");
    tagKey = (tagKey || "").trim();
    return state.table.runs.filter((r) => {
      if (state.status && r.status !== state.status) return false;
      if (tagKey) {
        if (!(tagKey in r.tags)) return false;
        if (tagValue !== undefined && String(r.tags[tagKey] ?? "") !== tagValue.trim()) return false;
      }
      if (text) {
        const hay = [r.run_id, r.display_name || "", r.kind, ...Object.entries(r.tags).flat(), ...Object.entries(r.params).flat()]
          .map((v) => String(v ?? "").toLowerCase()).join(" ");
        if (!hay.includes(text)) return false;
      }
      return true;
    });
  }

  function compare(a, b) {
    if (a === b) return 0;
    if (a === undefined || a === null) return 1; // missing values last, whatever the direction
    if (b === undefined || b === null) return -1;
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b), undefined, { numeric: true });
  }

  function sorted(rows) {
    const col = columns().find((c) => c.key === state.sort.key) || FIXED[3];
    return rows.slice().sort((x, y) => {
      const a = col.get(x), b = col.get(y);
      if (a === undefined || a === null || b === undefined || b === null) return compare(a, b);
      return state.sort.dir * compare(a, b);
    });
  }

  function renderColumnChoices() {
    const box = $("column-choices");
    box.replaceChildren();
    const groups = {};
    for (const c of columns()) (groups[c.group || "Run"] = groups[c.group || "Run"] || []).push(c);
    for (const [group, cols] of Object.entries(groups)) {
      const fs = el("fieldset");
      fs.appendChild(el("legend", {}, group));
      for (const c of cols) {
        const input = el("input", { type: "checkbox", "data-column": c.key, checked: state.visible.has(c.key),
          disabled: c.key === "run" });
        input.addEventListener("change", () => {
          if (input.checked) state.visible.add(c.key); else state.visible.delete(c.key);
          renderTable();
        });
        const label = el("label");
        label.append(input, document.createTextNode(" " + c.label));
        fs.append(label, el("br"));
      }
      box.appendChild(fs);
    }
  }

  function renderTable() {
    const table = $("runs");
    const cols = columns().filter((c) => state.visible.has(c.key));
    const rows = sorted(filtered());
    const head = el("tr");
    head.appendChild(el("th", { title: "Select to compare" }, ""));
    for (const c of cols) {
      const cls = [c.num ? "num" : "", state.sort.key === c.key ? (state.sort.dir > 0 ? "sorted-asc" : "sorted-desc") : ""].join(" ").trim();
      const th = el("th", { className: cls || null, "data-column": c.key, title: (c.group ? c.group + ": " : "") + c.label }, c.label);
      th.addEventListener("click", () => {
        state.sort = state.sort.key === c.key ? { key: c.key, dir: -state.sort.dir } : { key: c.key, dir: c.num ? -1 : 1 };
        renderTable();
      });
      head.appendChild(th);
    }
    const body = [head];
    for (const r of rows) {
      const tr = el("tr", { "data-run": r.run_id, className: state.selected.has(r.run_id) ? "selected" : null });
      const box = el("input", { type: "checkbox", "aria-label": "Select " + r.run_id, checked: state.selected.has(r.run_id) });
      box.addEventListener("change", () => toggle(r.run_id, box.checked));
      const td0 = el("td");
      td0.appendChild(box);
      tr.appendChild(td0);
      for (const c of cols) {
        const v = c.get(r);
        let td;
        if (c.key === "run") {
          td = el("td", { title: r.run_id });
          td.appendChild(el("a", { href: pageBase + "/" + encodeURIComponent(r.run_id) }, v));
          if (r.parent_id && !D.parent) td.appendChild(el("span", { className: "muted" }, " (child)"));
        } else if (c.key === "status") {
          td = el("td", { title: r.error || null });
          td.appendChild(statusBadge(v));
        } else if (c.key === "duration") td = el("td", { className: "num" }, duration(v));
        else if (c.key === "created") td = el("td", { className: "num" }, when(v));
        else td = el("td", { className: c.num || typeof v === "number" ? "num" : null, title: v === undefined ? null : String(v) }, fmt(v));
        tr.appendChild(td);
      }
      body.push(tr);
    }
    table.replaceChildren(...body);
    const t = state.table;
    $("summary").textContent = rows.length + " of " + t.runs.length + " runs shown" + (t.has_more ? " (the newest " + t.runs.length + ")" : "") +
      (t.active ? " · " + t.active + " active, updating live" : "");
    $("selection-note").textContent = state.selected.size ? state.selected.size + " runs selected." : "Tick runs to compare their metrics.";
    $("clear-selection").disabled = state.selected.size === 0;
  }

  function toggle(runId, on) {
    if (on) state.selected.add(runId); else state.selected.delete(runId);
    renderTable();
    renderCompare();
  }

  function fillSelect(select, names, keep) {
    const current = select.value || keep;
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(current)) select.value = current;
    else if (keep && names.includes(keep)) select.value = keep;
  }

  function selectedRuns() {
    return state.table.runs.filter((r) => state.selected.has(r.run_id));
  }

  function renderControls() {
    const t = state.table;
    const pm = t.primary_metric && t.primary_metric.name;
    const statusSel = $("filter-status");
    const keepStatus = statusSel.value;
    statusSel.replaceChildren(el("option", { value: "" }, "all"), ...t.statuses.map((s) => el("option", { value: s }, s)));
    statusSel.value = t.statuses.includes(keepStatus) ? keepStatus : "";
    fillSelect($("scatter-metric"), t.metric_names, pm);
    fillSelect($("parallel-metric"), t.metric_names, pm);
    fillSelect($("scatter-x"), t.param_names.concat(t.metric_names), t.param_names[0]);
  }

  async function renderSeries() {
    const div = $("series-chart");
    const runs = selectedRuns();
    const names = runs.length ? Array.from(new Set(runs.flatMap((r) => Object.keys(r.metrics)))) : state.table.metric_names;
    const withSeries = names.filter((n) => runs.some((r) => r.series.includes(n)));
    const pm = state.table.primary_metric && state.table.primary_metric.name;
    fillSelect($("series-metric"), withSeries.concat(names.filter((n) => !withSeries.includes(n))), withSeries.includes(pm) ? pm : withSeries[0]);
    const metric = $("series-metric").value;
    if (!runs.length || !metric) {
      window.Plotly.purge(div);
      div.replaceChildren(el("p", { className: "muted" }, "Select runs in the table to overlay their metric series."));
      return;
    }
    const byTime = $("series-x").value === "time";
    const key = metric + "|" + byTime + "|" + runs.map((r) => r.run_id).join(",") + "|" + state.table.version;
    if (key === state.seriesKey) return;
    state.seriesKey = key;
    const query = runs.map((r) => "run=" + encodeURIComponent(r.run_id)).join("&");
    const answer = await getJSON(apiBase + "/series?metric=" + encodeURIComponent(metric) + "&" + query);
    if (div.firstChild && div.firstChild.tagName === "P") div.replaceChildren();
    const traces = runs.map((r) => {
      const s = answer.runs[r.run_id];
      const x = byTime ? s.time.map((t) => t - (s.time[0] || 0)) : s.step.map((st, i) => (st === null ? i : st));
      return { type: "scatter", mode: s.value.length > 1 ? "lines+markers" : "markers", x, y: s.value,
        name: ptext(r.display_name || r.run_id) };
    });
    plot(div, traces, { title: { text: ptext(metric + " of " + runs.length + " runs") },
      xaxis: byTime ? { title: { text: "seconds since the run's first value" } } : stepAxis(traces.flatMap((t) => t.x)), yaxis: { title: { text: ptext(metric) } } });
  }

  function renderScatter() {
    const div = $("scatter-chart");
    const metric = $("scatter-metric").value, xname = $("scatter-x").value;
    const getX = (r) => (state.table.param_names.includes(xname) ? r.params[xname] : r.metrics[xname]);
    const rows = filtered().filter((r) => typeof r.metrics[metric] === "number" && getX(r) !== undefined && getX(r) !== null);
    if (!metric || !xname || !rows.length) {
      window.Plotly.purge(div);
      div.replaceChildren(el("p", { className: "muted" }, "No run has both a metric and a parameter to plot."));
      return;
    }
    if (div.firstChild && div.firstChild.tagName === "P") div.replaceChildren();
    const part = (sel) => rows.filter((r) => state.selected.has(r.run_id) === sel);
    const trace = (rs, name, color) => ({ type: "scatter", mode: "markers", name, x: rs.map((r) => (typeof getX(r) === "number" ? getX(r) : ptext(getX(r)))),
      y: rs.map((r) => r.metrics[metric]), text: rs.map((r) => ptext(r.display_name || r.run_id)),
      marker: { size: 9, color, line: { width: 1, color: "#fff" } }, hovertemplate: "%{text}<br>%{x}: %{y}<extra></extra>" });
    plot(div, [trace(part(false), "runs", "#90a4ae"), trace(part(true), "selected", "#d81b60")],
      { title: { text: ptext(metric + " against " + xname) }, xaxis: { title: { text: ptext(xname) } }, yaxis: { title: { text: ptext(metric) } } });
  }

  function renderParallel() {
    const div = $("parallel-chart");
    const metric = $("parallel-metric").value;
    const rows = filtered();
    if (div.firstChild && div.firstChild.tagName === "P") div.replaceChildren();
    if (!metric || !parallel(div, rows, state.table.param_names, metric)) {
      window.Plotly.purge(div);
      div.replaceChildren(el("p", { className: "muted" }, "Parallel coordinates need two runs with parameters (HyperDrive or AutoML children) and the metric."));
    }
  }

  function renderCompare() {
    renderSeries().catch((e) => $("series-chart").replaceChildren(el("p", { className: "error" }, e.message)));
    renderScatter();
    renderParallel();
  }

  function url() {
    const q = [];
    if (D.parent) q.push("parent=" + encodeURIComponent(D.parent));
    if (state.children) q.push("children=1");
    return apiBase + "/experiments/" + encodeURIComponent(D.experiment) + "/runs" + (q.length ? "?" + q.join("&") : "");
  }

  async function load(since) {
    const u = url();
    const answer = await getJSON(since ? u + (u.includes("?") ? "&" : "?") + "since=" + encodeURIComponent(since) : u);
    if (answer.unchanged) return false;
    for (const r of answer.runs) { // metrics travel as a list aligned with metric_names
      r.metrics = {};
      answer.metric_names.forEach((name, i) => { if (r.values[i] !== null && r.values[i] !== undefined) r.metrics[name] = r.values[i]; });
      r.series = r.series.map((i) => answer.metric_names[i]);
    }
    const first = state.table === null;
    state.table = answer;
    const known = new Set(answer.runs.map((r) => r.run_id));
    for (const id of Array.from(state.selected)) if (!known.has(id)) state.selected.delete(id);
    const defaults = defaultVisible();
    if (first || !state.visible) state.visible = defaults;
    else for (const key of defaults) if (!state.known.has(key)) state.visible.add(key); // columns new since
    state.known = new Set(columns().map((c) => c.key));
    renderControls();
    renderColumnChoices();
    renderTable();
    renderCompare();
    return true;
  }

  async function poll() {
    try {
      await load(state.table && state.table.version);
    } catch (e) {
      $("summary").textContent = "Live updates paused: " + e.message;
    }
    window.setTimeout(poll, (state.table && state.table.active ? 1 : 5) * D.refresh_seconds * 1000);
  }

  $("filter-text").addEventListener("input", (e) => { state.text = e.target.value; renderTable(); renderScatter(); renderParallel(); });
  $("filter-status").addEventListener("change", (e) => { state.status = e.target.value; renderTable(); renderScatter(); renderParallel(); });
  $("filter-tag").addEventListener("input", (e) => { state.tag = e.target.value; renderTable(); renderScatter(); renderParallel(); });
  $("clear-selection").addEventListener("click", () => { state.selected.clear(); renderTable(); renderCompare(); });
  const withChildren = $("with-children");
  if (withChildren) withChildren.addEventListener("change", () => { state.children = withChildren.checked; state.table = null; load().catch(() => {}); });
  for (const id of ["series-metric", "series-x"]) $(id).addEventListener("change", () => { state.seriesKey = ""; renderSeries(); });
  $("scatter-metric").addEventListener("change", renderScatter);
  $("scatter-x").addEventListener("change", renderScatter);
  $("parallel-metric").addEventListener("change", renderParallel);

  load().then(() => { document.body.dataset.ready = "1"; })
    .catch((e) => { $("summary").textContent = "Cannot load the runs: " + e.message; })
    .finally(() => window.setTimeout(poll, D.refresh_seconds * 1000));
})();
