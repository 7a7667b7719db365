"""The ranks of a distributed run in RunDetails: node and process counts, and each rank's state.

One table row per rank (state, exit code, node and host, the last line of a failed rank's error); the log
dropdown above the output panel already lists every rank's ``nbml-logs/driver_log_<rank>.txt``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nbml.compute._ranks import rank_view
from nbml.widgets._model import esc

STATE_COLOURS = {"running": "#1565c0", "completed": "#2e7d32", "failed": "#c62828", "stopped": "#757575",
                 "pending": "#9e9e9e"}


def run_rank_view(run: Mapping[str, Any], folder: Path) -> dict[str, Any] | None:
    """The rank view of a run record (None when the run is not distributed)."""
    try:
        distributed = json.loads(run.get("config_json") or "{}").get("distributed")
    except (ValueError, AttributeError):
        return None
    return rank_view(folder, distributed) if distributed else None


def ranks_html(view: Mapping[str, Any] | None) -> str:
    """The table of ranks ("" for a run that is not distributed)."""
    if not view:
        return ""
    comm = f" ({view['communication_backend']})" if view.get("communication_backend") else ""
    head = (f"<div class='nbml-ranks-summary'><b>Ranks</b>: {esc(view['backend'])}{esc(comm)}, "
            f"<span class='nbml-node-count'>{view['node_count']} node{'s' if view['node_count'] != 1 else ''}"
            f"</span> × {view['process_count_per_node']} = <span class='nbml-process-count'>"
            f"{view['process_count']} process{'es' if view['process_count'] != 1 else ''}</span></div>")
    rows = []
    for r in view["ranks"]:
        colour = STATE_COLOURS.get(r["state"], "#000")
        code = "" if r["exit_code"] is None else str(r["exit_code"])
        node = f"{r['node']}" + (f" ({r['host']})" if r["host"] else "")
        rows.append(
            f"<tr class='nbml-rank' data-rank='{r['rank']}' data-state='{esc(r['state'])}'>"
            f"<td>{r['rank']}</td><td>{esc(node)}</td>"
            f"<td class='nbml-rank-state' style='color:{colour}'>{esc(r['state'])}</td><td>{esc(code)}</td>"
            f"<td class='nbml-rank-error' style='max-width:40em;overflow:hidden;text-overflow:ellipsis;"
            f"white-space:nowrap' title='{esc(r['error'])}'>{esc(r['error'])}</td></tr>")
    return (f"<div class='nbml-ranks'>{head}<table style='font-size:92%;border-collapse:collapse'>"
            "<tr><th>rank</th><th>node</th><th>state</th><th>exit code</th><th>last error</th></tr>"
            f"{''.join(rows)}</table></div>")
