"""SHAP explanations of a fitted AutoML model, and `retrieve_model_explanation` to read them back.

Explanations are over the engineered features (the featurizer's output: for numeric data, the original
columns) so one model-agnostic path serves single pipelines and ensembles alike: a permutation explainer
over the model's prediction function, with a small background sample as the masker.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from nbml.automl.metrics import CLASSIFICATION

EXPLANATION_JSON = "explanation.json"
EXPLANATION_NPZ = "explanation.npz"


def _first_pipeline(model: Any) -> Any:
    return model.models[0].pipeline if hasattr(model, "models") else model.pipeline


def _feature_function(model: Any) -> Any:
    """f(Z) on engineered features Z: probabilities (classification) or values."""
    members = model.models if hasattr(model, "models") else [model]

    def member_raw(m: Any, Z: np.ndarray) -> np.ndarray:
        rest = m.pipeline[1:]
        if m.task == CLASSIFICATION:
            proba = np.asarray(rest.predict_proba(Z), dtype=float)
            fitted = getattr(rest, "classes_", None)
            if fitted is not None and len(fitted) != len(m.classes_):
                full = np.zeros((proba.shape[0], len(m.classes_)))
                full[:, np.asarray(fitted, dtype=int)] = proba
                proba = full
            return proba
        return np.asarray(rest.predict(Z), dtype=float)

    def f(Z: np.ndarray) -> np.ndarray:
        preds = [member_raw(m, Z) for m in members]
        if not hasattr(model, "models"):
            return preds[0]
        if model.meta is not None:
            from nbml.automl.model import stack_features

            feats = stack_features(model.task, preds)
            return model.meta.predict_proba(feats) if model.task == CLASSIFICATION else model.meta.predict(feats)
        return sum(w * p for w, p in zip(model.weights, preds, strict=True)) / sum(model.weights)

    return f


def explain_model(model: Any, ds: Any, max_rows: int = 50, background_rows: int = 20, seed: int = 0) -> dict[str, Any]:
    """SHAP values, expected values and overall / per-class importance of `model` on `ds`'s rows."""
    import shap

    rng = np.random.default_rng(seed)
    featurizer = _first_pipeline(model)[0]
    Z_train = featurizer.transform(ds.X)
    source = ds.X_valid if ds.X_valid is not None else ds.X
    Z = featurizer.transform(source) if ds.X_valid is not None else Z_train
    rows = rng.choice(len(Z), size=min(max_rows, len(Z)), replace=False)
    background = Z_train[rng.choice(len(Z_train), size=min(background_rows, len(Z_train)), replace=False)]
    names = [str(n) for n in featurizer.get_feature_names_out()]
    f = _feature_function(model)
    masker = shap.maskers.Independent(background, max_samples=len(background))
    explainer = shap.explainers.Permutation(f, masker, seed=seed)
    explanation = explainer(Z[rows], max_evals=max(2 * Z.shape[1] + 1, 100), silent=True)
    values = np.asarray(explanation.values, dtype=float)  # rows x features (x outputs)
    base = np.asarray(explanation.base_values, dtype=float)
    if values.ndim == 3:  # classification: one slice per class
        shap_values = [values[:, :, k] for k in range(values.shape[2])]
        expected = base[0].tolist() if base.ndim == 2 else base.tolist()
    else:
        shap_values = [values]
        expected = float(np.ravel(base)[0])
    overall = np.mean([np.abs(v).mean(axis=0) for v in shap_values], axis=0)
    order = np.argsort(-overall)
    result: dict[str, Any] = {
        "feature_names": names,
        "shap_values": shap_values if values.ndim == 3 else shap_values[0],
        "expected_values": expected,
        "overall_summary": overall[order].tolist(),
        "overall_imp": [names[i] for i in order],
        "per_class_summary": None,
        "per_class_imp": None,
    }
    if values.ndim == 3 and model.task == CLASSIFICATION:
        per_class = [np.abs(v).mean(axis=0) for v in shap_values]
        result["per_class_summary"] = [pc[np.argsort(-pc)].tolist() for pc in per_class]
        result["per_class_imp"] = [[names[i] for i in np.argsort(-pc)] for pc in per_class]
        result["classes"] = [str(c) for c in model.classes_]
    return result


def save_explanation(result: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sv = result["shap_values"]
    np.savez(folder / EXPLANATION_NPZ, shap_values=np.asarray(sv, dtype=float))
    meta = {k: v for k, v in result.items() if k != "shap_values"}
    meta["shap_values_per_class"] = isinstance(sv, list)
    (folder / EXPLANATION_JSON).write_text(json.dumps(meta))


def load_explanation(folder: Path) -> tuple[Any, Any, Any, Any, Any, Any]:
    """The six values of `retrieve_model_explanation` from an explanation folder."""
    meta = json.loads((folder / EXPLANATION_JSON).read_text())
    with np.load(folder / EXPLANATION_NPZ) as npz:
        values = npz["shap_values"]
    shap_values: Any = list(values) if meta.get("shap_values_per_class") else values
    return (shap_values, meta["expected_values"], meta["overall_summary"], meta["overall_imp"],
            meta["per_class_summary"], meta["per_class_imp"])


def retrieve_model_explanation(best_run: Any) -> tuple[Any, Any, Any, Any, Any, Any]:
    """``(shap_values, expected_values, overall_summary, overall_imp, per_class_summary, per_class_imp)``.

    Parameters
    ----------
    best_run : Run
        The child run returned by ``AutoMLRun.get_output()`` (or any child that was explained).
    """
    from nbml.automl.run import explanation_folder

    folder = explanation_folder(best_run)
    if folder is None or not (folder / EXPLANATION_JSON).exists():
        raise FileNotFoundError(
            f"no model explanation for run {best_run.id}; submit with model_explainability=True and wait for "
            "the AutoML run to complete."
        )
    return load_explanation(folder)
