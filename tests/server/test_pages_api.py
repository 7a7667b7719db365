"""The APIs behind the experiment and run pages, and the pages' HTML, on a workspace seeded as in seed_pages."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from nbml.store import Store

from .conftest import get_json
from .seed_pages import PageRuns, seed


@pytest.fixture(scope="module")
def seeded_copy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PageRuns]:
    """Seeded once per module (it fits models and draws an image); each test gets its own copy."""
    folder = tmp_path_factory.mktemp("pages-seed")
    return folder, seed(folder)


@pytest.fixture
def runs(workspace_dir: Path, seeded_copy: tuple[Path, PageRuns]) -> PageRuns:
    shutil.copytree(seeded_copy[0], workspace_dir, dirs_exist_ok=True)
    return seeded_copy[1]


async def test_experiment_table_of_a_hyperdrive_parent(jp_fetch: Any, runs: PageRuns, workspace_dir: Path) -> None:
    table = await get_json(jp_fetch, "nbml", "api", "experiments", "hd", "runs", params={"parent": runs.hd_parent})
    assert {r["run_id"] for r in table["runs"]} == set(runs.hd_children)
    assert table["primary_metric"] == {"name": "accuracy", "goal": "MAXIMIZE"}
    assert table["param_names"][:2] == ["batch", "epochs"] and "lr" in table["param_names"]
    assert "--lr" not in table["param_names"]  # HyperDrive's flag names shown as the parameter
    assert table["metric_names"] == ["accuracy", "loss"]
    child = next(r for r in table["runs"] if r["run_id"] == runs.hd_children[0])
    assert child["values"][0] == pytest.approx(0.8489) and child["series"] == [0]  # accuracy, a series
    assert child["params"]["epochs"] == 5 and isinstance(child["params"]["lr"], float)
    assert table["statuses"] == ["Completed", "Failed"]
    failed = next(r for r in table["runs"] if r["status"] == "Failed")
    assert failed["error"] == "RuntimeError: CUDA out of memory"  # the last line of the traceback
    top = await get_json(jp_fetch, "nbml", "api", "experiments", "hd", "runs")
    assert [r["run_id"] for r in top["runs"]] == [runs.hd_parent]
    every = await get_json(jp_fetch, "nbml", "api", "experiments", "hd", "runs", params={"children": "1"})
    assert len(every["runs"]) == 13
    listed = await get_json(jp_fetch, "nbml", "api", "experiments")
    assert {e["name"]: e["page"] for e in listed["experiments"]}["hd"] == "nbml/experiments/hd"  # for the sidebar


async def test_table_version_says_unchanged_until_something_changes(jp_fetch: Any, runs: PageRuns,
                                                                    workspace_dir: Path) -> None:
    first = await get_json(jp_fetch, "nbml", "api", "experiments", "scripts", "runs")
    assert first["metric_names"] == ["accuracy", "loss"]  # no column for the image or the table (no numbers)
    same = await get_json(jp_fetch, "nbml", "api", "experiments", "scripts", "runs",
                          params={"since": first["version"]})
    assert same == {"version": first["version"], "unchanged": True}
    store = Store(workspace_dir)
    store.log_metric(runs.scripts[1], "loss", "scalar", 0.01)
    store.db.close()
    after = await get_json(jp_fetch, "nbml", "api", "experiments", "scripts", "runs",
                           params={"since": first["version"]})
    assert after["version"] != first["version"]
    loss = after["metric_names"].index("loss")
    assert next(r for r in after["runs"] if r["run_id"] == runs.scripts[1])["values"][loss] == 0.01
    store = Store(workspace_dir)
    store.set_tags(runs.scripts[2], {"stage": "prod"})
    store.db.close()
    tagged = await get_json(jp_fetch, "nbml", "api", "experiments", "scripts", "runs",
                            params={"since": after["version"]})
    assert "stage" in tagged["tag_keys"]


async def test_unknown_experiment_or_foreign_parent_is_404(jp_fetch: Any, runs: PageRuns) -> None:
    for params in ({}, {"parent": runs.hd_parent}):
        name = "nope" if not params else "scripts"
        with pytest.raises(HTTPClientError) as exc:
            await jp_fetch("nbml", "api", "experiments", name, "runs", params=params)
        assert exc.value.code == 404


async def test_series_of_several_runs_and_after(jp_fetch: Any, runs: PageRuns) -> None:
    ids = runs.hd_children[:3]
    answer = await get_json(jp_fetch, "nbml", "api", "series", params={"metric": "accuracy", "run": ",".join(ids)})
    assert [len(answer["runs"][r]["value"]) for r in ids] == [5, 5, 5]
    assert answer["runs"][ids[0]]["step"] == [0, 1, 2, 3, 4]
    again = await get_json(jp_fetch, "nbml", "api", "series",
                           params={"metric": "accuracy", "run": ",".join(ids), "after": str(answer["last_id"])})
    assert all(not again["runs"][r]["value"] for r in ids)
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("nbml", "api", "series", params={"metric": "accuracy", "run": "no-such-run"})
    assert exc.value.code == 404
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("nbml", "api", "series", params={"run": ids[0]})
    assert exc.value.code == 400 and "Name a metric" in exc.value.response.body.decode()


async def test_files_preview_and_raw(jp_fetch: Any, runs: PageRuns) -> None:
    run_id = runs.scripts[0]
    listing = await get_json(jp_fetch, "nbml", "api", "runs", run_id, "files")
    paths = [f["path"] for f in listing["files"]]
    assert {"outputs/data/predictions.csv", "outputs/model.pkl", "images/residuals.png",
            "nbml-logs/driver_log.txt"} <= set(paths)
    csv = await get_json(jp_fetch, "nbml", "api", "runs", run_id, "preview", "outputs/data/predictions.csv")
    assert csv["kind"] == "csv" and csv["columns"] == ["id", "square", "label"]
    assert len(csv["rows"]) == 20 and csv["rows"][3] == ["3", "9", "name_3"] and csv["truncated"]
    text = await get_json(jp_fetch, "nbml", "api", "runs", run_id, "preview", "outputs/notes.txt")
    assert text["kind"] == "text" and text["content"] == "trained with <alpha> 0.1\n"
    binary = await get_json(jp_fetch, "nbml", "api", "runs", run_id, "preview", "outputs/model.pkl")
    assert binary["kind"] == "binary" and "content" not in binary
    image = await jp_fetch("nbml", "api", "runs", run_id, "raw", "images/residuals.png")
    assert image.headers["Content-Type"] == "image/png" and image.body.startswith(b"\x89PNG")
    assert image.headers["Content-Disposition"].startswith("inline")
    page = await jp_fetch("nbml", "api", "runs", run_id, "raw", "outputs/page.html")
    assert page.headers["Content-Disposition"].startswith("attachment")  # a job's HTML never renders here
    assert "sandbox" in page.headers["Content-Security-Policy"]
    for bad in ("../scripts_2_b/outputs/notes.txt", ".nbml/x", "events.jsonl"):
        with pytest.raises(HTTPClientError) as exc:
            await jp_fetch("nbml", "api", "runs", run_id, "preview", bad)
        assert exc.value.code in (400, 404)


async def test_iteration_charts_api(jp_fetch: Any, runs: PageRuns) -> None:
    model = await get_json(jp_fetch, "nbml", "api", "runs", runs.iterations[0], "iteration-charts")
    assert model["task"] == "classification" and model["error"] is None
    assert list(model["titles"]) == ["roc", "precision_recall", "calibration", "lift", "gains", "confusion_matrix"]
    assert model["charts"]["confusion_matrix"]["data"][0]["x"] == ["benign", "malignant"]
    assert model["hyperparameters"] == {"C": 0.5} and model["algorithm"] == "LogisticRegression"
    other = await get_json(jp_fetch, "nbml", "api", "runs", runs.scripts[0], "iteration-charts")
    assert other["charts"] == {} and "not an AutoML iteration" in other["error"]


async def test_run_pages_of_parents_and_finished_runs(jp_fetch: Any, runs: PageRuns) -> None:
    # the first AutoML parent page imports the AutoML run machinery: slow on a busy machine
    html = (await jp_fetch("nbml", "runs", runs.automl, request_timeout=120)).body.decode()
    log = html.split('id="automl-log">', 1)[1].split("</pre>", 1)[0]
    assert "LogisticRegression" in log and "GaussianNB" in log and log.count("\n") > 10
    tags = html.split("<h2>Tags and properties</h2>", 1)[1].split("</table>", 1)[0]
    assert "runTemplate" not in tags  # bookkeeping is folded away under "System properties"
    assert "This run saved no outputs" in html  # not "No outputs yet" once it ended
    assert f"/nbml/experiments/automl?parent={runs.automl}" in html
    hd = (await jp_fetch("nbml", "runs", runs.hd_parent)).body.decode()
    best = hd.split('id="best-run">', 1)[1].split("</p>", 1)[0]
    assert "HD_sweep_" in best and "maximize" in best
    script = (await jp_fetch("nbml", "runs", runs.scripts[0])).body.decode()
    assert "/nbml/api/runs/scripts_1_a/raw/images/residuals.png\" alt=\"residuals\">" in script
    assert "<th>epoch</th><th>val_loss</th>" in script
    assert "train_0 &lt;b&gt;bold&lt;/b&gt;" in script


async def test_experiment_page_is_escaped_and_locked_down(jp_fetch: Any, workspace_dir: Path) -> None:
    store = Store(workspace_dir)
    evil = "<img src=x onerror=alert(1)>"
    store.insert_run("e_1", evil, "script", "local", {})
    store.db.close()
    answer = await jp_fetch("nbml", "experiments", evil)
    html = answer.body.decode()
    assert evil not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    csp = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0]
    table = await get_json(jp_fetch, "nbml", "api", "experiments", evil, "runs")
    assert [r["run_id"] for r in table["runs"]] == ["e_1"]
    js = await jp_fetch("nbml", "static", "pages", "experiment.js")
    assert js.headers["Content-Type"].startswith("text/javascript")
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("nbml", "static", "pages", "..%2Fpage.py")
    assert exc.value.code == 404
    plotly = await jp_fetch("nbml", "static", "plotly.min.js")
    assert b"plotly" in plotly.body[:2000].lower()
