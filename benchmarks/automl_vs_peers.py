"""nbml AutoML against FLAML and AutoGluon-Tabular: same data, same outer splits, same wall clock, same cores.

Every dataset ships inside an installed package (nothing is downloaded at run time): scikit-learn's bundled
sets, palmerpenguins, vega_datasets' local files, plotly's bundled data and statsmodels' datasets. They cover
binary and multiclass classification and regression, several with categorical columns and missing values
(penguins, cars). For each dataset and outer split (seeds 0..n-1, 25 % held out, stratified for
classification) every system searches on the training rows within the budget and predicts the held-out rows;
this script scores every prediction the same way (classification: ROC AUC, one-vs-rest weighted for
multiclass; regression: R²) and calls 1 - score the loss.

Printed: one line per dataset, split and system as it finishes; then per budget a table of each dataset's
mean score and mean iterations per system (nbml: pipelines tried; FLAML: configurations tried; AutoGluon:
models trained), and nbml's geometric-mean loss ratio against each peer (below 1: nbml ahead), with the
dataset where nbml fares worst named.

Each peer runs in its own virtual environment (their pins differ from nbml's), which this script creates the
first time under ``--cache`` (default ``~/.cache/nbml-bench``) with uv (or venv + pip) from PyPI:
``flaml[automl]`` and ``autogluon.tabular[lightgbm,xgboost,catboost]`` (default presets; it pulls no torch).
The data reach them as CSV files with a JSON description of the columns.

nbml runs on the local target, 2 concurrent iterations of 1 core each; FLAML with n_jobs=2; AutoGluon with
num_cpus=2.

A peer's result does not depend on nbml's code, so each one is kept under ``--cache``/results, keyed by the
peer's version, the budget, the CPU count and a digest of the split's files, and a later run reuses it
instead of spending the machine on it again (``--fresh-peers`` measures them anew). Every reused result is
marked in the per-split lines with the date and load average it was measured at, and the report counts them,
so a figure is never presented as fresher than it is. This is what makes the full run (30 and 120 s, 3
splits, 11 datasets: about 4 hours of machine time) possible across several sittings; ``--stop-after``
bounds one sitting.

Timing is only fair on an idle machine. On one shared with other work, run it as root at a higher priority
(``nice -n -10``) with ``sysctl kernel.sched_autogroup_enabled=0``: with autogroups on, the kernel shares the
CPUs between sessions first, so nice only orders processes of the same session and a benchmark started from
one shell gets no priority over work started from another (the script warns when it sees that).

Run: ``python benchmarks/automl_vs_peers.py [--budgets 30 120] [--splits 3] [--datasets a b ...]
[--systems nbml,flaml,autogluon]``; ``--list`` prints the datasets. The datasets need ``palmerpenguins``,
``vega_datasets``, ``statsmodels`` and ``plotly`` in nbml's environment (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

LOSS_FLOOR = 1e-4  # a perfect test score would make the ratio infinite
PEERS = {
    "flaml": ["flaml[automl]", "pandas"],
    "autogluon": ["autogluon.tabular[lightgbm,xgboost,catboost]"],
}
SYSTEMS = ["nbml", "flaml", "autogluon"]


# -- the datasets (loaded in nbml's interpreter only) -------------------------------------------------
def _sklearn(name: str) -> Any:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    return bunch.data, bunch.target


def _penguins() -> Any:
    from palmerpenguins import load_penguins

    df = load_penguins()  # species from measurements, island, sex (missing in 11 rows), year
    return df.drop(columns=["species"]), df["species"]


def _vega(name: str, label: str, drop: tuple[str, ...] = ()) -> Any:
    from vega_datasets import local_data

    df = getattr(local_data, name.replace("-", "_"))()
    df = df.dropna(subset=[label]).reset_index(drop=True)
    return df.drop(columns=[label, *drop]), df[label]


def _seattle() -> Any:
    X, y = _vega("seattle-weather", "weather", drop=("date",))
    from vega_datasets import local_data

    dates = local_data.seattle_weather()["date"]
    X = X.assign(month=dates.dt.month.astype(int), dayofyear=dates.dt.day_of_year.astype(int))
    return X, y


def _cars() -> Any:
    X, y = _vega("cars", "Miles_per_Gallon", drop=("Name", "Year"))  # Horsepower has missing values
    return X, y


def _plotly(name: str, label: str, drop: tuple[str, ...] = ()) -> Any:
    import plotly.express as px

    df = getattr(px.data, name)()
    return df.drop(columns=[label, *drop]), df[label]


def _statsmodels(name: str) -> Any:
    import statsmodels.api as sm

    df = getattr(sm.datasets, name).load_pandas().data
    if name == "fair":  # had an affair or not; the categorical codes (occupation, religious, ...) as categories
        y = (df["affairs"] > 0).map({True: "yes", False: "no"})
        X = df.drop(columns=["affairs"])
        for col in ("occupation", "occupation_husb", "religious", "educ"):
            X[col] = X[col].astype(int).astype(str).astype("category")
        return X, y
    if name == "anes96":  # voted for Clinton or Dole; party identification, education and income as categories
        y = df["vote"].map({0.0: "clinton", 1.0: "dole"})
        X = df.drop(columns=["vote", "logpopul"])
        for col in ("PID", "educ", "income"):
            X[col] = X[col].astype(int).astype(str).astype("category")
        return X, y
    raise KeyError(name)


DATASETS: dict[str, tuple[str, Any]] = {
    "breast_cancer": ("binary", lambda: _sklearn("breast_cancer")),
    "anes96": ("binary", lambda: _statsmodels("anes96")),
    "fair_affairs": ("binary", lambda: _statsmodels("fair")),
    "wine": ("multiclass", lambda: _sklearn("wine")),
    "digits": ("multiclass", lambda: _sklearn("digits")),
    "penguins": ("multiclass", _penguins),
    "seattle_weather": ("multiclass", _seattle),
    "diabetes": ("regression", lambda: _sklearn("diabetes")),
    "cars_mpg": ("regression", _cars),
    "tips": ("regression", lambda: _plotly("tips", "tip")),
    "gapminder": ("regression", lambda: _plotly("gapminder", "lifeExp", drop=("country", "iso_alpha", "iso_num"))),
}


def load(name: str) -> tuple[Any, Any, str]:
    """(X as a DataFrame with object columns as categories, y as a Series, task kind)."""
    import pandas as pd

    kind, loader = DATASETS[name]
    X, y = loader()
    X = pd.DataFrame(X).reset_index(drop=True)
    for col in X.columns:
        if not isinstance(X[col].dtype, pd.CategoricalDtype) and not pd.api.types.is_numeric_dtype(X[col]):
            X[col] = X[col].astype("category")
    y = pd.Series(y).reset_index(drop=True)
    y = y.astype(str) if kind != "regression" else y.astype(float)
    return X, y, kind


def split(y: Any, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=0.25, random_state=seed,
                                   stratify=np.asarray(y) if kind != "regression" else None)
    return train, test


def score(kind: str, y_true: np.ndarray, pred: np.ndarray, classes: list[str]) -> float:
    """ROC AUC (weighted one-vs-rest for multiclass) or R²."""
    from sklearn.metrics import r2_score, roc_auc_score

    if kind == "regression":
        return float(r2_score(y_true.astype(float), pred))
    if kind == "binary":
        return float(roc_auc_score(y_true == classes[1], pred[:, 1]))
    onehot = (y_true[:, None] == np.asarray(classes)[None, :]).astype(int)
    return float(roc_auc_score(onehot, pred, average="weighted", multi_class="ovr"))


def prior(y_train: Any, kind: str, classes: list[str], n: int) -> np.ndarray:
    """What a system that produced no model is scored as: the training mean, or the class frequencies."""
    if kind == "regression":
        return np.full(n, float(np.mean(y_train)))
    freq = np.array([float(np.mean(np.asarray(y_train) == c)) for c in classes])
    return np.tile(freq, (n, 1))


def write_split(folder: Path, X: Any, y: Any, kind: str, train: np.ndarray, test: np.ndarray) -> None:
    """What a peer reads: train.csv (with the label as column ``__label__``), test.csv and meta.json."""
    folder.mkdir(parents=True, exist_ok=True)
    X.iloc[train].assign(__label__=y.iloc[train].to_numpy()).to_csv(folder / "train.csv", index=False)
    X.iloc[test].to_csv(folder / "test.csv", index=False)
    cats = [c for c in X.columns if str(X[c].dtype) == "category"]
    classes = sorted(set(y.iloc[train])) if kind != "regression" else []
    (folder / "meta.json").write_text(json.dumps({"kind": kind, "categorical": cats, "classes": classes}))


def read_split(folder: Path) -> tuple[Any, Any, Any, dict[str, Any]]:
    """In a peer's interpreter: (X_train, y_train, X_test, meta) with categories and labels restored."""
    import pandas as pd

    meta = json.loads((folder / "meta.json").read_text())
    types = {c: str for c in meta["categorical"]}
    if meta["kind"] != "regression":
        types["__label__"] = str
    train = pd.read_csv(folder / "train.csv", dtype=types, keep_default_na=True)
    test = pd.read_csv(folder / "test.csv", dtype={c: str for c in meta["categorical"]}, keep_default_na=True)
    for c in meta["categorical"]:
        train[c] = train[c].astype("category")
        test[c] = test[c].astype(pd.CategoricalDtype(train[c].cat.categories))
    y = train.pop("__label__")
    return train, y, test, meta


# -- the peers, each in its own interpreter -------------------------------------------------------------
def peer_worker(system: str, folder: Path, budget: float, seed: int) -> None:
    X, y, X_test, meta = read_split(folder)
    kind, classes = meta["kind"], meta["classes"]
    if system == "flaml":
        from flaml import AutoML

        automl = AutoML()
        metric = {"binary": "roc_auc", "multiclass": "roc_auc_ovr_weighted", "regression": "r2"}[kind]
        automl.fit(X, y, task="regression" if kind == "regression" else "classification", metric=metric,
                   time_budget=budget, n_jobs=2, seed=seed, verbose=0)
        if kind == "regression":
            pred = np.asarray(automl.predict(X_test), dtype=float)
        else:
            proba = np.asarray(automl.predict_proba(X_test), dtype=float)
            order = [list(map(str, automl.classes_)).index(c) for c in classes]
            pred = proba[:, order]
        iterations, best = len(automl.config_history), str(automl.best_estimator)
    elif system == "autogluon":
        from autogluon.tabular import TabularPredictor

        metric = {"binary": "roc_auc", "multiclass": "roc_auc_ovr_weighted", "regression": "r2"}[kind]
        with tempfile.TemporaryDirectory() as tmp:
            predictor = TabularPredictor(label="__label__", problem_type=kind, eval_metric=metric, path=tmp,
                                         verbosity=0)
            predictor.fit(X.assign(__label__=y), time_limit=budget, num_cpus=2)
            if kind == "regression":
                pred = np.asarray(predictor.predict(X_test), dtype=float)
            else:
                proba = predictor.predict_proba(X_test)
                proba.columns = [str(c) for c in proba.columns]
                pred = proba[classes].to_numpy(dtype=float)
            iterations, best = len(predictor.model_names()), str(predictor.model_best)
    else:
        raise SystemExit(f"unknown peer {system!r}")
    (folder / f"{system}.json").write_text(json.dumps({"pred": pred.tolist(), "iterations": iterations,
                                                       "best": best}))


def peer_python(system: str, cache: Path) -> str:
    """The interpreter of `system`'s own virtual environment, created (from PyPI) the first time."""
    venv = cache / system
    python = venv / "bin" / "python"
    if (venv / ".ready").exists():
        return str(python)
    print(f"creating {venv} for {system} ({' '.join(PEERS[system])}); this takes a few minutes once",
          flush=True)
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    base = getattr(sys, "_base_executable", sys.executable)
    if Path(uv).exists():
        subprocess.run([uv, "venv", "-q", "--clear", "-p", base, str(venv)], check=True)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *PEERS[system]], check=True)
    else:
        subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *PEERS[system]], check=True)
    torch = subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode == 0
    if torch:
        print(f"note: {system}'s environment has torch installed (pulled by one of its packages)", flush=True)
    (venv / ".ready").write_text(time.strftime("%Y-%m-%d %H:%M:%S"))
    return str(python)


def peer_version(system: str, python: str) -> str:
    module = {"flaml": "flaml", "autogluon": "autogluon.tabular"}[system]
    out = subprocess.run([python, "-c", f"import {module} as m; print(m.__version__)"], capture_output=True,
                         text=True)
    return out.stdout.strip() or "unknown"


def result_path(cache: Path, system: str, version: str, folder: Path, budget: float) -> Path:
    """Where a peer's result for this split's exact files, budget and CPU count is kept."""
    digest = hashlib.sha256()
    for name in ("meta.json", "train.csv", "test.csv"):
        digest.update((folder / name).read_bytes())
    key = f"{budget:g}s-{os.cpu_count()}cpu-{digest.hexdigest()[:20]}"
    return cache / "results" / system / version / f"{key}.json"


def run_peer(system: str, python: str, folder: Path, budget: float, seed: int,
             keep: Path | None = None, fresh: bool = False) -> dict[str, Any]:
    if keep is not None and keep.exists() and not fresh:
        result = json.loads(keep.read_text())
        result["reused"] = True
        return result
    load = os.getloadavg()[0]
    started = time.time()
    proc = subprocess.run([python, __file__, "--peer-worker", system, str(folder), str(budget), str(seed)],
                          capture_output=True, text=True)
    wall = time.time() - started
    out = folder / f"{system}.json"
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"{system} failed (exit code {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(out.read_text())
    result.update(wall=wall, measured=time.strftime("%Y-%m-%d %H:%M"), load=round(load, 1))
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        tmp = keep.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(keep)
    return result


# -- nbml ------------------------------------------------------------------------------------------
def run_nbml(name: str, X: Any, y: Any, kind: str, train: np.ndarray, test: np.ndarray,
             classes: list[str], budget: float, seed: int) -> dict[str, Any]:
    """One nbml search, in a throwaway workspace of its own (not the default one), removed once it is scored:
    a 120 s run keeps hundreds of iterations' models and predictions, and a full benchmark in one workspace
    once filled the disk (21 GB)."""
    from nbml import Workspace

    ws = Workspace(path=tempfile.mkdtemp(prefix="nbml-bench-"))
    try:
        return _search(ws, name, X, y, kind, train, test, classes, budget, seed)
    finally:
        shutil.rmtree(ws.path, ignore_errors=True)


def _search(ws: Any, name: str, X: Any, y: Any, kind: str, train: np.ndarray, test: np.ndarray,
            classes: list[str], budget: float, seed: int) -> dict[str, Any]:
    from nbml import Experiment
    from nbml.automl import AutoMLConfig

    metric = "r2_score" if kind == "regression" else "AUC_weighted"
    cfg = AutoMLConfig(task="regression" if kind == "regression" else "classification", primary_metric=metric,
                       X=X.iloc[train].reset_index(drop=True), y=y.iloc[train].reset_index(drop=True),
                       n_cross_validations=5, experiment_timeout_minutes=budget / 60.0,
                       max_concurrent_iterations=2, max_cores_per_iteration=1, seed=seed)
    started = time.time()
    run = Experiment(ws, f"bench-{name}").submit(cfg)
    run.wait_for_completion(raise_on_error=True)
    best, model = run.get_output()
    wall = time.time() - started
    X_test = X.iloc[test].reset_index(drop=True)
    if kind == "regression":
        pred = np.asarray(model.predict(X_test), dtype=float)
    else:
        proba = np.asarray(model.predict_proba(X_test), dtype=float)
        own = [str(c) for c in getattr(model, "classes_", classes)]
        pred = proba[:, [own.index(c) for c in classes]]
    n_iter = sum(1 for c in run.get_children() if c.type == "automl_iteration")
    return {"pred": pred, "iterations": n_iter, "best": best.display_name, "wall": wall}


# -- the report ------------------------------------------------------------------------------------
def report(budget: float, rows: list[dict[str, Any]], systems: list[str]) -> None:
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    print(f"\n== budget {budget:g} s: mean test score (AUC or R²) / mean iterations, over outer splits", flush=True)
    print(f"{'dataset':<16} {'task':<10} {'splits':>6}  " + "  ".join(f"{s:>18}" for s in systems))
    means: dict[tuple[str, str], float] = {}
    for name in names:
        mine = [r for r in rows if r["dataset"] == name]
        cells = []
        for s in systems:
            got = [r for r in mine if r["system"] == s]
            if not got:
                cells.append(f"{'-':>18}")
                continue
            means[(name, s)] = float(np.mean([r["loss"] for r in got]))
            cells.append(f"{np.mean([r['score'] for r in got]):>10.4f} / {np.mean([r['iterations'] for r in got]):>5.0f}")
        splits = len({r['seed'] for r in mine})
        print(f"{name:<16} {mine[0]['kind']:<10} {splits:>6}  " + "  ".join(cells))
    reused = sum(r.get("reused", False) for r in rows)
    if reused:
        print(f"{reused} of {len(rows)} results above are kept peer results from an earlier run (marked per split)")
    if "nbml" not in systems:
        return
    for peer in [s for s in systems if s != "nbml"]:
        ratios = {n: max(means[(n, "nbml")], LOSS_FLOOR) / max(means[(n, peer)], LOSS_FLOOR)
                  for n in names if (n, "nbml") in means and (n, peer) in means}
        if not ratios:
            continue
        gmean = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios))
        worst = max(ratios, key=ratios.__getitem__)
        print(f"nbml / {peer}: geometric-mean loss ratio {gmean:.3f} over {len(ratios)} datasets "
              f"({'nbml ahead' if gmean < 1 else peer + ' ahead'}); worst dataset {worst} at {ratios[worst]:.3f}, "
              f"best {min(ratios, key=ratios.__getitem__)} at {min(ratios.values()):.3f}", flush=True)


def main(argv: list[str] | None = None, default_systems: str = "nbml,flaml,autogluon") -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", type=float, nargs="+", default=[30.0, 120.0], help="seconds per search")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--splits", type=int, default=3, help="outer splits per dataset (seeds 0..n-1)")
    ap.add_argument("--systems", default=default_systems, help="comma-separated: " + ",".join(SYSTEMS))
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("NBML_BENCH_CACHE",
                                                                         "~/.cache/nbml-bench")).expanduser(),
                    help="where the peers' virtual environments live")
    ap.add_argument("--fresh-peers", action="store_true",
                    help="measure the peers again instead of reusing their kept results")
    ap.add_argument("--flaml-python", help="use this interpreter for FLAML instead of the cached venv")
    ap.add_argument("--autogluon-python", help="use this interpreter for AutoGluon instead of the cached venv")
    ap.add_argument("--stop-after", type=float, metavar="MINUTES",
                    help="start no new dataset after this many minutes (a shorter run that still reports)")
    ap.add_argument("--list", action="store_true", help="print the datasets and exit")
    ap.add_argument("--peer-worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.peer_worker:
        system, folder, budget, seed = args.peer_worker
        peer_worker(system, Path(folder), float(budget), int(seed))
        return 0
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS] + [d for d in args.datasets if d not in DATASETS]
    if unknown:
        ap.error(f"unknown system or dataset {unknown}; systems: {SYSTEMS}; datasets: {list(DATASETS)}")
    if args.list:
        for name, (kind, _) in DATASETS.items():
            X, y, _ = load(name)
            cats = sum(str(X[c].dtype) == "category" for c in X.columns)
            print(f"{name:<16} {kind:<10} {X.shape[0]:>5} rows {X.shape[1]:>3} columns, {cats} categorical, "
                  f"{int(X.isna().sum().sum())} missing values")
        return 0
    pythons = {s: getattr(args, f"{s}_python") or peer_python(s, args.cache) for s in systems if s != "nbml"}
    versions = {s: peer_version(s, py) for s, py in pythons.items()}

    print(f"systems {systems}; budgets {args.budgets} s; {args.splits} outer split(s); datasets {args.datasets}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    autogroup = Path("/proc/sys/kernel/sched_autogroup_enabled")
    if autogroup.exists() and autogroup.read_text().strip() == "1" and os.getloadavg()[0] > 1.0:
        print("warning: the machine is busy and kernel.sched_autogroup_enabled=1, so a nice value set on this "
              "benchmark gives it no priority over other sessions' work; timings will be unfair", flush=True)
    began = time.time()
    for budget in args.budgets:
        rows: list[dict[str, Any]] = []
        for name in args.datasets:
            if args.stop_after is not None and time.time() - began > args.stop_after * 60:
                print(f"--stop-after {args.stop_after:g}: {name} and the datasets after it were not run", flush=True)
                break
            X, y, kind = load(name)
            for seed in range(args.splits):
                train, test = split(y, kind, seed)
                classes = sorted(set(y.iloc[train])) if kind != "regression" else []
                y_test = y.iloc[test].to_numpy()
                with tempfile.TemporaryDirectory() as tmp:
                    folder = Path(tmp)
                    write_split(folder, X, y, kind, train, test)
                    for system in systems:
                        try:
                            if system == "nbml":
                                res = run_nbml(name, X, y, kind, train, test, classes, budget, seed)
                            else:
                                keep = result_path(args.cache, system, versions[system], folder, budget)
                                res = run_peer(system, pythons[system], folder, budget, seed, keep,
                                               args.fresh_peers)
                        except Exception as exc:  # no model: scored as the training prior, so it counts
                            first = str(exc).strip().splitlines()
                            print(f"{budget:>5g}s {name:<16} split {seed} {system:<9} FAILED, scored as the "
                                  f"training prior: {' / '.join(first[-2:])[:300]}", flush=True)
                            res = {"pred": prior(y.iloc[train], kind, classes, len(test)), "iterations": 0,
                                   "best": "none (failed)", "wall": float("nan")}
                        s = score(kind, y_test, np.asarray(res["pred"], dtype=float), classes)
                        rows.append({"dataset": name, "kind": kind, "seed": seed, "system": system, "score": s,
                                     "loss": 1.0 - s, "iterations": res["iterations"],
                                     "reused": bool(res.get("reused"))})
                        when = (f"  (kept result, measured {res.get('measured')} at load {res.get('load')})"
                                if res.get("reused") else "")
                        print(f"{budget:>5g}s {name:<16} split {seed} {system:<9} score {s:.4f}  "
                              f"{res['iterations']:>4} iterations  {res['wall']:6.1f} s  best {res['best']}{when}",
                              flush=True)
        report(budget, rows, systems)
    return 0


if __name__ == "__main__":
    sys.exit(main())
