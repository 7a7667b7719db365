/* The run page's Ranks section (templates/_ranks.html): shows the chosen rank's log (rank 0 first) and, while
   the run is active, keeps each rank's state, exit code and last error current. */
"use strict";
(function () {
  const section = document.getElementById("ranks");
  if (!section) return;
  const api = document.body.dataset.api;
  const enc = (path) => path.split("/").map(encodeURIComponent).join("/");
  const choice = document.getElementById("rank-log-choice");
  const pane = document.getElementById("rank-log");
  const note = document.getElementById("rank-log-note");
  const TAIL = 65536;
  let terminal = section.dataset.terminal === "true";

  async function json(url) {
    const r = await fetch(url, { credentials: "same-origin" });
    if (!r.ok) throw new Error(r.status + " " + r.statusText);
    return r.json();
  }

  async function showLog() {
    const path = choice.value;
    try {
      const list = await json(api + "/logs");
      const entry = (list.files || []).find((f) => f.path === path);
      if (!entry) {
        pane.textContent = "";
        note.textContent = path + ": no output yet.";
        return;
      }
      const offset = Math.max(0, entry.size - TAIL);
      const chunk = await json(api + "/logs/" + enc(path) + "?offset=" + offset + "&limit=" + TAIL);
      pane.textContent = chunk.content;
      note.textContent = path + (offset > 0 ? " (last " + TAIL / 1024 + " KiB)" : "");
    } catch (e) {
      note.textContent = "Cannot read " + path + ": " + e.message;
    }
  }

  function setRanks(d) {
    for (const r of d.ranks) {
      const row = section.querySelector('tr.rank[data-rank="' + r.rank + '"]');
      if (!row) continue;
      const state = row.querySelector(".rank-state span");
      state.textContent = r.state;
      state.className = "status rank-" + r.state;
      row.querySelector(".rank-exit").textContent = r.exit_code === null || r.exit_code === undefined ? "" : String(r.exit_code);
      row.querySelector(".rank-error code").textContent = r.error || "";
      row.querySelector(".rank-host").textContent = r.host || "";
    }
  }

  async function poll() {
    if (terminal) return;
    try {
      const model = await json(api);
      if (model.distributed) setRanks(model.distributed);
      terminal = model.is_terminal;
      await showLog();
    } catch (e) {
      /* the page's own poll reports a lost server */
    }
    if (!terminal) setTimeout(poll, 3000);
  }

  choice.addEventListener("change", showLog);
  section.querySelectorAll(".rank-log-link").forEach((b) => b.addEventListener("click", () => {
    choice.value = b.dataset.path;
    showLog();
    pane.scrollIntoView({ block: "nearest" });
  }));
  showLog();
  if (!terminal) setTimeout(poll, 3000);
})();
