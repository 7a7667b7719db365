"""``explain_model``: the SDK's ``azureml.train.automl.automlexplainer.explain_model`` over nbml's explanations.

The same SHAP computation the AutoML run does on the target (``nbml.automl.explain``), run here on data the
caller passes, and returned in the SDK's tuple shape, as ``retrieve_model_explanation`` returns it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nbml.errors import UserErrorException

Explanation = tuple[Any, Any, Any, Any, Any, Any]


def explain_model(fitted_model: Any, X_train: Any, X_test: Any, best_run: Any = None, features: Any = None,
                  y_train: Any = None, max_rows: int = 50, seed: int = 0, **_: Any) -> Explanation:
    """``(shap_values, expected_values, overall_summary, overall_imp, per_class_summary, per_class_imp)``.

    Parameters
    ----------
    fitted_model
        The model of ``AutoMLRun.get_output()`` (a single pipeline or an ensemble).
    X_train
        Rows the background sample is drawn from.
    X_test
        Rows to explain (at most `max_rows` of them, drawn at random with `seed`).
    features : list of str, optional
        Names for the overall / per-class importance lists, when they match the model's features one to one.
    best_run, y_train
        Accepted for the SDK's signature; not needed here.

    ``per_class_summary`` and ``per_class_imp`` are None for regression, as in the SDK.
    """
    from nbml.automl.data import Dataset
    from nbml.automl.explain import explain_model as _explain

    if not (hasattr(fitted_model, "pipeline") or hasattr(fitted_model, "models")):
        raise UserErrorException(f"explain_model needs the fitted model of an AutoML run (from "
                                 f"remote_run.get_output()), not {type(fitted_model).__name__}.")
    if X_train is None or X_test is None or len(X_train) == 0 or len(X_test) == 0:
        raise UserErrorException("explain_model needs rows in both X_train (the background) and X_test (the rows "
                                 "to explain).")
    ds = Dataset(X=X_train, y=np.zeros(len(X_train)), X_valid=X_test, y_valid=np.zeros(len(X_test)))
    result = _explain(fitted_model, ds, max_rows=max_rows, seed=seed)
    names = [str(f) for f in features] if features is not None else None
    if names is not None and len(names) == len(result["feature_names"]):
        rename = dict(zip(result["feature_names"], names, strict=True))
        result["overall_imp"] = [rename[n] for n in result["overall_imp"]]
        if result["per_class_imp"] is not None:
            result["per_class_imp"] = [[rename[n] for n in imp] for imp in result["per_class_imp"]]
    return (result["shap_values"], result["expected_values"], result["overall_summary"], result["overall_imp"],
            result["per_class_summary"], result["per_class_imp"])
