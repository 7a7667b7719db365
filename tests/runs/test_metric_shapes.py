"""Whatever a script logs is kept and every reader shows it: big values, mixed kinds, NaN and infinities."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from itertools import product
from typing import Any

from nbml import Experiment, ScriptRunConfig
from nbml.server import models, page
from nbml.server.manager import NbmlManager
from nbml.widgets._model import MetricsState, properties_rows

KINDS = ("scalar", "list", "row", "table", "image")
VALUES: dict[str, Any] = {
    "scalar": 0.5,
    "list": [1, 2],
    "row": {"epoch": 1, "value": 0.4},
    "table": {"epoch": [2, 3], "value": [0.3, 0.2]},
}

SCRIPT = """
import math, os
from nbml import Run

run = Run.get_context()
open("pixel.png", "wb").write(b"not really a png")

def log(kind, name):
    if kind == "scalar":
        run.log(name, 0.5)
    elif kind == "list":
        run.log_list(name, [1, 2])
    elif kind == "row":
        run.log_row(name, epoch=1, value=0.4)
    elif kind == "table":
        run.log_table(name, {"epoch": [2, 3], "value": [0.3, 0.2]})
    else:
        run.log_image(name, path="pixel.png")

kinds = ["scalar", "list", "row", "table", "image"]
for a in kinds:
    for b in kinds:
        log(a, f"{a}_then_{b}")
        log(b, f"{a}_then_{b}")

run.log("cfg", {"lr": 0.1, "layers": [1, 2]})
run.log("nan", float("nan"))
run.log("inf", float("inf"))
run.log("ninf", float("-inf"))
run.log_list("specials", [1.0, float("nan"), float("inf"), float("-inf")])
"""

BIG = """
import os
from nbml import Run

run = Run.get_context()
run.log("big", "x" * 10 * 2**20)
run.log_list("many", [i / 7 for i in range(300_000)])
child = run.child_run("kid")
child.log_row("wide", **{f"c{i}": "v" * 100 for i in range(5_000)})
child.complete()
try:
    run.tag("huge", "y" * 2**20)
except ValueError as exc:
    print("refused:", exc)
with open(os.path.join(os.environ["NBML_JOB_DIR"], "events.jsonl"), "ab") as fh:
    fh.write(b"this line is not json\\n")
run.log("after_bad_line", 1)
"""


def _flat(kind: str, value: Any) -> list[Any]:
    return list(value) if kind == "list" else [value]


def expected(a: str, b: str, image: str) -> Any:
    """What get_metrics() shows for a name logged as kind a, then kind b (docs/runs.md, "Metric kinds")."""
    values = {**VALUES, "image": image}
    series, table = {"scalar", "list"}, {"row", "table"}
    if {a, b} <= series:
        return _flat(a, values[a]) + _flat(b, values[b])
    if {a, b} <= table:
        cols: dict[str, list[Any]] = {}
        for kind in (a, b):
            for col, v in values[kind].items():
                cols.setdefault(col, []).extend(v if kind == "table" else [v])
        return cols
    if a == b == "image":
        return image
    return [values[a], values[b]]


def _same(x: Any, y: Any) -> bool:
    """Equality that treats NaN as equal to NaN."""
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y, strict=True))
    return bool(x == y)


def test_every_shape_a_script_logs_is_kept_and_read_by_every_reader(ws, project):
    project(**{"shapes.py": SCRIPT})
    run = Experiment(ws, "shapes").submit(ScriptRunConfig(".", "shapes.py"))
    run.wait_for_completion(timeout_seconds=180)
    assert run.get_status() == "Completed", run.get_details().get("error")

    metrics = run.get_metrics()
    for a, b in product(KINDS, KINDS):
        name = f"{a}_then_{b}"
        assert metrics[name] == expected(a, b, f"images/{name}.png"), name
    assert metrics["cfg"] == {"lr": 0.1, "layers": [1, 2]}
    assert math.isnan(metrics["nan"]) and metrics["inf"] == math.inf and metrics["ninf"] == -math.inf
    assert _same(metrics["specials"], [1.0, math.nan, math.inf, -math.inf])

    # The CLI shows it all.
    shown = subprocess.run([sys.executable, "-m", "nbml", "--workspace", str(ws.path), "runs", "show", run.id],
                           capture_output=True, text=True, timeout=120, check=True)
    cli_metrics = json.loads(shown.stdout)["metrics"]
    assert cli_metrics["scalar_then_row"] == [0.5, {"epoch": 1, "value": 0.4}]
    assert cli_metrics["cfg"] == {"lr": 0.1, "layers": [1, 2]}

    # The server's models: the run, its listing, both shapes of the metrics route; all strict JSON.
    manager = NbmlManager(ws)
    details = manager.run_details(run.id)
    assert details["metrics"]["inf"] == "inf" and details["metrics"]["image_then_scalar"][1] == 0.5
    json.dumps(details, allow_nan=False)
    listing = asyncio.run(manager.runs(experiment="shapes", status=None, parent_id=None, top_level=True,
                                       limit=10, offset=0))
    json.dumps(listing, allow_nan=False)
    full = asyncio.run(manager.metrics(run.id, None))
    assert set(full["metrics"]) == set(metrics) and len(full["rows"]) == full["last_id"] - full["rows"][0]["id"] + 1
    json.dumps(full, allow_nan=False)
    tail = asyncio.run(manager.metrics(run.id, full["rows"][-2]["id"]))
    assert [r["name"] for r in tail["rows"]] == ["specials"] and "metrics" not in tail
    assert tail["rows"][0]["value"] == [1.0, "nan", "inf", "-inf"] and tail["last_id"] == full["last_id"]
    # The route sends the same answers as JSON text spliced from the stored values.
    for after in (None, full["rows"][-2]["id"], full["last_id"]):
        spliced = json.loads(asyncio.run(manager.metrics_text(run.id, after)))
        assert spliced == json.loads(json.dumps(asyncio.run(manager.metrics(run.id, after)))), after
    assert page.metric_rows(details["metrics"])  # the run page's table
    assert models.primary_metric({}, metrics) is not None

    # The widget's view models.
    state = MetricsState()
    assert state.apply(run._store.metric_rows(run.id)) == set(metrics)
    assert state.values["row_then_list"] == [{"epoch": 1, "value": 0.4}, [1, 2]]
    assert properties_rows(run._store.get_run(run.id), state)


def test_values_of_any_size_are_kept_as_files_and_over_long_events_refused(ws, project):
    project(**{"big.py": BIG})
    run = Experiment(ws, "big").submit(ScriptRunConfig(".", "big.py"))
    run.wait_for_completion(timeout_seconds=180)
    assert run.get_status() == "Completed", run.get_details().get("error")

    metrics = run.get_metrics()
    assert metrics["big"] == "x" * 10 * 2**20
    assert metrics["many"] == [i / 7 for i in range(300_000)]
    assert metrics["after_bad_line"] == 1  # the bad line before it didn't stop ingestion
    (kid,) = run.get_children()
    assert kid.get_metrics()["wide"] == {f"c{i}": ["v" * 100] for i in range(5_000)}
    # They travelled as files of the run (no event line is longer than the supervisor's read chunk).
    assert len(list((run.run_dir / "metrics").rglob("*.json"))) == 3
    # An over-long tag was refused in the script, with the limit in its output; the bad line is reported.
    output = (run.run_dir / "nbml-logs" / "driver_log.txt").read_text()
    assert "refused: The tags event is" in output and "limit of one event" in output
    assert "huge" not in run.get_tags()
    supervisor_log = (run.run_dir / "nbml-logs" / "supervisor_log.txt").read_text()
    assert "not a JSON event" in supervisor_log and "this line is not json" in supervisor_log
    # The sidebar's listing reads the latest-value table, not the 10 MiB value.
    latest = run._store.latest_metrics([run.id])[run.id]
    assert latest["big"]["kind"] == "scalar" and latest["big"]["value"] is None and latest["many"]["count"] == 1
    json.dumps(NbmlManager(ws).run_details(run.id)["metrics"]["many"][:3], allow_nan=False)


def test_no_event_line_outgrows_the_limit_and_the_file_is_whole_before_its_event(tmp_path):
    from nbml.runs.events import MAX_EVENT_BYTES, parse
    from nbml.runs.script_run import ContextRun

    run = ContextRun("r1", str(tmp_path))
    run.log("big", "x" * 2 * MAX_EVENT_BYTES)
    run.log_list("floats", [0.1] * 100_000)
    run.log("small", 1)
    data = (tmp_path / "events.jsonl").read_bytes()
    assert max(len(line) + 1 for line in data.splitlines()) <= MAX_EVENT_BYTES
    events = [e for _, e in parse(data, 0)[0]]
    assert [e.get("value_file", "").split("/")[:2] for e in events[:2]] == [["metrics", "big"], ["metrics", "floats"]]
    for event in events[:2]:
        assert (tmp_path / ".nbml" / "uploads" / event["value_file"]).is_file()
    assert run.get_metrics()["big"] == "x" * 2 * MAX_EVENT_BYTES  # the script's own view keeps the value too
