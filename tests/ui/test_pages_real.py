"""The pages on runs made for real (slow tier): a HyperDrive sweep of 12 script children on the local target,
each logging a series, an image and a CSV output, and an AutoML classification whose iterations save their
out-of-fold predictions; then the experiment page, the HyperDrive parent's page, an iteration's ROC curve and
confusion matrix, a logged image and a CSV preview in Chromium. Screenshots in test-output/ui/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import LabServer
from .test_pages import follow, open_page, page, tick_labels, traces  # noqa: F401 - the page fixture

pytestmark = [pytest.mark.ui, pytest.mark.slow]

TRAIN = """
import argparse, os
from nbml import Run

p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
p.add_argument("--layers", type=int)
args = p.parse_args()
run = Run.get_context()
for epoch in range(5):
    run.log("accuracy", round(0.5 + 0.4 * (epoch + 1) / 5 - abs(args.lr - 0.01) - 0.01 * args.layers, 4), step=epoch)
run.log_image("curve", path="curve.png")
os.makedirs("outputs", exist_ok=True)
with open("outputs/epochs.csv", "w") as fh:
    fh.write("epoch,lr\\n" + "".join(f"{e},{args.lr}\\n" for e in range(5)))
"""


@pytest.fixture(scope="module")
def real_runs(lab_server: LabServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.datasets import load_iris

    from nbml import Experiment, ScriptRunConfig, Workspace
    from nbml.automl import AutoMLConfig
    from nbml.hyperdrive import GridParameterSampling, HyperDriveConfig, PrimaryMetricGoal, choice

    ws = Workspace(path=lab_server.workspace)
    src = tmp_path_factory.mktemp("hd-src")
    (src / "train.py").write_text(TRAIN)
    fig, ax = plt.subplots(figsize=(3, 2), dpi=80)
    ax.plot([0, 1, 2], [2, 1, 1.5])
    fig.savefig(src / "curve.png")
    plt.close(fig)
    hd = HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory=str(src), script="train.py"),
        hyperparameter_sampling=GridParameterSampling({"--lr": choice(0.001, 0.01, 0.03, 0.1),
                                                       "--layers": choice(1, 2, 3)}),
        primary_metric_name="accuracy", primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=12, max_concurrent_runs=4)
    hd_run = Experiment(ws, "sweep").submit(hd)
    X, y = load_iris(return_X_y=True, as_frame=True)
    automl = AutoMLConfig(task="classification", training_data=X.assign(label=y), label_column_name="label",
                          iterations=3, max_concurrent_iterations=2, n_cross_validations=3,
                          enable_voting_ensemble=False, enable_stack_ensemble=False)
    automl_run = Experiment(ws, "iris").submit(automl)
    hd_run.wait_for_completion(timeout_seconds=600)
    automl_run.wait_for_completion()
    assert hd_run.get_status() == "Completed" and automl_run.get_status() == "Completed"
    assert len(list(hd_run.get_children())) == 12
    return {"hd": hd_run.id, "automl": automl_run.id}


def test_pages_on_real_hyperdrive_and_automl_runs(page: Any, lab_server: LabServer,  # noqa: F811
                                                  real_runs: dict[str, str], shoot: Callable[[Any, str], Path]) -> None:
    hd, automl = real_runs["hd"], real_runs["automl"]
    open_page(page, lab_server, f"nbml/experiments/sweep?parent={hd}")
    assert page.locator("#runs tr[data-run]").count() == 12
    headers = page.eval_on_selector_all("#runs th", "hs => hs.map(h => h.textContent)")
    assert {"lr", "layers", "accuracy"} <= set(headers)
    for n in (0, 5, 11):
        page.check(f"#runs tr[data-run='{hd}_{n}'] input[type=checkbox]")
    page.wait_for_function("() => (document.getElementById('series-chart').data || []).length === 3")
    assert [t["n"] for t in traces(page, "series-chart")] == [5, 5, 5]
    assert traces(page, "parallel-chart")[0]["type"] == "parcoords"
    shoot(page, "real-hyperdrive-compare")

    open_page(page, lab_server, f"nbml/runs/{hd}")
    assert "Best run:" in page.locator("#best-run").inner_text()
    assert len(traces(page, "children-curves")) == 12
    shoot(page, "real-hyperdrive-parent")

    follow(page, "table.children tr:nth-child(2) a")
    page.wait_for_function("() => document.querySelector('.images img') && "
                           "document.querySelector('.images img').naturalWidth > 0")
    page.click("button.preview-link[data-path='outputs/epochs.csv']")
    page.wait_for_selector("#preview table.csv-preview")
    assert page.locator("#preview th").all_inner_texts() == ["epoch", "lr"]
    shoot(page, "real-child-image-and-csv")

    open_page(page, lab_server, f"nbml/experiments/iris?parent={automl}")
    assert page.locator("#runs tr[data-run]").count() >= 3
    open_page(page, lab_server, f"nbml/runs/{automl}_0")
    page.click("#iteration-tabs button[data-chart='roc']")
    assert len(traces(page, "iteration-chart")) == 4  # a curve per iris class, and chance
    shoot(page, "real-iteration-roc")
    page.click("#iteration-tabs button[data-chart='confusion_matrix']")
    assert tick_labels(page, "iteration-chart") == ["0", "1", "2"]
    shoot(page, "real-iteration-confusion")
