/* Helpers shared by the run and experiment pages. Data from the store only ever becomes text (textContent,
   attribute values, or plotly text escaped with ptext), never markup. */
"use strict";
window.nbml = (function () {
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "className") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try { message = (await response.json()).message || message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    return response.json();
  }

  /* plotly reads a few tags (<b>, <a href>) in text: escape what came from the store */
  function ptext(value) {
    return String(value).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  /* Numbers in a column: 4 significant digits ("0.0001121", "0.8489", "1e-9"), the full value in a title. */
  function fmt(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") {
      if (Number.isInteger(value)) return String(value);
      const a = Math.abs(value);
      if (a !== 0 && (a < 1e-4 || a >= 1e6)) return value.toExponential(3).replace(/\.?0+e/, "e");
      return String(+value.toPrecision(4));
    }
    return String(value);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    const s = Math.floor(seconds), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? h + " h " + String(m).padStart(2, "0") + " min" : m + " min " + String(s % 60).padStart(2, "0") + " s";
  }

  function when(ts) {
    if (!ts) return "";
    return new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19);
  }

  function statusBadge(status) {
    return el("span", { className: "status status-" + status }, status);
  }

  const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"] };

  function plot(div, data, layout) {
    const base = { margin: { l: 55, r: 20, t: 36, b: 45 }, legend: { orientation: "h", y: -0.2 },
      font: { size: 11 } };
    const merged = Object.assign(base, layout || {});
    // automargin: long category labels ("malignant", a pipeline's name) get room instead of being cut
    merged.xaxis = Object.assign({ zeroline: false, automargin: true }, (layout || {}).xaxis);
    merged.yaxis = Object.assign({ automargin: true }, (layout || {}).yaxis);
    return window.Plotly.react(div, data, merged, CONFIG);
  }

  /* Parallel coordinates: one axis per parameter (text values as categories), the metric last, lines coloured
     by it. `runs` are rows of the experiment table API. Returns false when there is nothing to draw. */
  function parallel(div, runs, paramNames, metric) {
    const rows = runs.filter((r) => typeof r.metrics[metric] === "number");
    // parameters that vary between these runs (a constant axis says nothing)
    const params = paramNames.filter((p) => new Set(rows.map((r) => JSON.stringify(r.params[p]))).size > 1);
    if (rows.length < 2 || params.length === 0) return false;
    const dims = params.map((p) => {
      const values = rows.map((r) => r.params[p]);
      if (values.every((v) => typeof v === "number")) return numericAxis(ptext(p), values);
      const cats = Array.from(new Set(values.map((v) => (v === undefined ? "(none)" : String(v))))).sort();
      return { label: ptext(p), values: values.map((v) => cats.indexOf(v === undefined ? "(none)" : String(v))),
        tickvals: cats.map((_, i) => i), ticktext: cats.map(ptext) };
    });
    const scores = rows.map((r) => r.metrics[metric]);
    dims.push({ label: ptext(metric), values: scores });
    plot(div, [{ type: "parcoords", dimensions: dims,
      line: { color: scores, colorscale: "Viridis", showscale: true, colorbar: { title: { text: ptext(metric) } } } }],
    { margin: { l: 70, r: 70, t: 60, b: 30 } });
    return true;
  }

  /* A numeric axis; one whose positive values span two decades or more (a learning rate) is drawn on a log
     scale, ticked at the powers of ten with their values, so small values don't pile up at the bottom. */
  function numericAxis(label, values) {
    const lo = Math.min(...values), hi = Math.max(...values);
    if (!(lo > 0) || hi / lo < 100) return { label, values };
    const ticks = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) ticks.push(e);
    return { label: label + " (log)", values: values.map(Math.log10), tickvals: ticks,
      ticktext: ticks.map((e) => fmt(Math.pow(10, e))), range: [Math.log10(lo), Math.log10(hi)] };
  }

  /* An x axis of steps: whole-number ticks when there are few steps (no "0.5" between epochs). */
  function stepAxis(xs) {
    const max = xs.reduce((m, x) => Math.max(m, x), 0);
    const whole = xs.every((x) => Number.isInteger(x));
    return whole && max <= 20 ? { title: { text: "step" }, dtick: 1 } : { title: { text: "step" } };
  }

  return { stepAxis, el, getJSON, ptext, fmt, duration, when, statusBadge, plot, parallel };
})();
