"""Loading and checking AutoML's training data, and the splits every iteration shares.

Data comes from a `data_script` whose ``get_data()`` returns ``{"X": ..., "y": ...}`` (optionally
``X_valid``/``y_valid``), from ``X``/``y``, or from ``training_data`` + ``label_column_name`` (optionally
``validation_data``). `check` runs in the submitting process, before anything is recorded, so bad data
fails at submit with a message that says what to fix. The splits are a pure function of the labels and
a seed, so every child run, on any target, scores on the same rows and ensembles can combine them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from typing import Any

import numpy as np
import pandas as pd

from nbml.automl.errors import DataException
from nbml.automl.metrics import CLASSIFICATION, REGRESSION


@dataclasses.dataclass
class Dataset:
    X: Any
    y: np.ndarray
    X_valid: Any = None
    y_valid: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        return len(self.y)

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1]) if len(getattr(self.X, "shape", ())) > 1 else 1


def _len(obj: Any) -> int:
    return int(obj.shape[0]) if hasattr(obj, "shape") else len(obj)


def _as_labels(y: Any, what: str) -> np.ndarray:
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise DataException(f"{what} has {y.shape[1]} columns; AutoML needs one label column.")
        y = y.iloc[:, 0]
    arr = np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataException(f"{what} must be one-dimensional (one label per row); it has shape {arr.shape}.")
    return arr


def _as_features(X: Any, what: str) -> Any:
    if isinstance(X, (pd.DataFrame, np.ndarray)):
        out = X
    elif hasattr(X, "toarray"):  # scipy.sparse
        out = np.asarray(X.toarray())
    else:
        out = np.asarray(X)
    if getattr(out, "ndim", 2) == 1:
        out = out.reshape(-1, 1)
    if _len(out) == 0:
        raise DataException(f"{what} has no rows.")
    if out.shape[1] == 0:
        raise DataException(f"{what} has no columns.")
    return out


def load_script(path: str) -> dict[str, Any]:
    """Import a data script and call its ``get_data()``; DataException when it can't be used."""
    if not os.path.isfile(path):
        raise DataException(f"data_script {path!r} does not exist; give the path of a .py file with get_data().")
    spec = importlib.util.spec_from_file_location("nbml_automl_get_data", path)
    if spec is None or spec.loader is None:
        raise DataException(f"data_script {path!r} can't be imported as a Python module.")
    module = importlib.util.module_from_spec(spec)
    folder = os.path.dirname(os.path.abspath(path))
    sys.path.insert(0, folder)  # so the script can import its neighbours
    try:
        spec.loader.exec_module(module)
    finally:
        if sys.path and sys.path[0] == folder:
            sys.path.pop(0)
    get_data = getattr(module, "get_data", None)
    if not callable(get_data):
        raise DataException(
            f"data_script {path!r} defines no get_data() function; add one that returns "
            '{"X": features, "y": labels}.'
        )
    data = get_data()
    if not isinstance(data, dict):
        raise DataException(
            f"get_data() in {path!r} returned {type(data).__name__}; it must return a dict like "
            '{"X": features, "y": labels}.'
        )
    return data


def from_sources(
    *,
    X: Any = None,
    y: Any = None,
    X_valid: Any = None,
    y_valid: Any = None,
    training_data: Any = None,
    label_column_name: str | None = None,
    validation_data: Any = None,
    data_script: str | None = None,
) -> Dataset:
    """Gather the training data from whichever source the configuration names."""
    if data_script is not None:
        data = load_script(data_script)
        missing = [k for k in ("X", "y") if data.get(k) is None] if "training_data" not in data else []
        if missing:
            raise DataException(
                f"get_data() in {data_script!r} returned no {' and no '.join(missing)}; return "
                '{"X": features, "y": labels} (keys are case-sensitive).'
            )
        X, y = data.get("X"), data.get("y")
        X_valid, y_valid = data.get("X_valid", X_valid), data.get("y_valid", y_valid)
        training_data = data.get("training_data", training_data)
        label_column_name = data.get("label_column_name", label_column_name)
        validation_data = data.get("validation_data", validation_data)
    if training_data is not None:
        # A TabularDataset (nbml.data) is read here, in the submitting process: the iterations get the table.
        training_data = getattr(training_data, "to_pandas_dataframe", lambda: training_data)()
        validation_data = getattr(validation_data, "to_pandas_dataframe", lambda: validation_data)()
        if not isinstance(training_data, pd.DataFrame):
            training_data = pd.DataFrame(training_data)
        if not label_column_name:
            raise DataException("training_data needs label_column_name: the name of the column to predict.")
        if label_column_name not in training_data.columns:
            cols = ", ".join(map(str, list(training_data.columns)[:20]))
            raise DataException(
                f"label_column_name={label_column_name!r} is not a column of training_data; its columns are: {cols}."
            )
        X, y = training_data.drop(columns=[label_column_name]), training_data[label_column_name]
        if validation_data is not None:
            if label_column_name not in validation_data.columns:
                raise DataException(f"validation_data has no label column {label_column_name!r}.")
            X_valid = validation_data.drop(columns=[label_column_name])
            y_valid = validation_data[label_column_name]
    if X is None or y is None:
        raise DataException(
            "no training data: give data_script (a file with get_data()), X and y, or training_data and "
            "label_column_name."
        )
    ds = Dataset(_as_features(X, "X"), _as_labels(y, "y"))
    if X_valid is not None or y_valid is not None:
        if X_valid is None or y_valid is None:
            raise DataException("give both X_valid and y_valid (or validation_data with the label column).")
        ds.X_valid, ds.y_valid = _as_features(X_valid, "X_valid"), _as_labels(y_valid, "y_valid")
    return ds


def _missing_labels(y: np.ndarray) -> np.ndarray:
    return pd.isna(pd.Series(y, dtype=object)).to_numpy()


def check(ds: Dataset, task: str, featurization: bool, n_cross_validations: int | None) -> None:
    """Raise DataException for data no iteration could learn from."""
    for X, y, what in ((ds.X, ds.y, ""), (ds.X_valid, ds.y_valid, "_valid")):
        if X is None or y is None:
            continue
        if _len(X) != len(y):
            raise DataException(
                f"X{what} has {_len(X)} rows but y{what} has {len(y)} labels; they must describe the same rows."
            )
        bad = _missing_labels(y)
        if bad.any():
            rows = ", ".join(map(str, np.flatnonzero(bad)[:5]))
            raise DataException(
                f"y{what} has {int(bad.sum())} missing (NaN/None) labels, e.g. at rows {rows}; drop those rows "
                "or fill in their labels."
            )
    if task == CLASSIFICATION:
        classes = np.unique(ds.y.astype(str) if ds.y.dtype == object else ds.y)
        if len(classes) < 2:
            raise DataException(
                f"y has a single class ({classes[0]!r}); classification needs at least two classes."
            )
    elif task == REGRESSION:
        try:
            ds.y.astype(float)
        except (TypeError, ValueError):
            raise DataException("task='regression' needs numeric labels; y has non-numeric values.") from None
    if ds.X_valid is not None and isinstance(ds.X, pd.DataFrame) and isinstance(ds.X_valid, pd.DataFrame):
        missing = [c for c in ds.X.columns if c not in ds.X_valid.columns]
        if missing:
            raise DataException(f"the validation data lacks columns of the training data: {missing[:10]}.")
    elif ds.X_valid is not None and ds.X_valid.shape[1] != ds.X.shape[1]:
        raise DataException(f"X_valid has {ds.X_valid.shape[1]} columns but X has {ds.X.shape[1]}.")
    if not featurization:
        frame = ds.X if isinstance(ds.X, pd.DataFrame) else pd.DataFrame(np.asarray(ds.X))
        bad_cols = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        if bad_cols:
            raise DataException(
                f"columns {bad_cols[:10]} are not numeric and featurization is off; set featurization='auto' "
                "(preprocess=True) or encode them yourself."
            )
        if frame.isna().to_numpy().any():
            raise DataException(
                "X has missing values and featurization is off; set featurization='auto' (preprocess=True) to "
                "impute them, or fill them yourself."
            )
    if n_cross_validations is not None and ds.X_valid is None:
        check_folds(ds.y, task, n_cross_validations)


def check_folds(y: np.ndarray, task: str, folds: int, default: bool = False) -> None:
    """Every fold needs a row to score, and (classification) every class a row in every fold."""
    setting = f"n_cross_validations={folds}" + (" (the default below 20,000 rows)" if default else "")
    if folds < 2:
        raise DataException(f"{setting}: use at least 2 folds.")
    if folds > len(y):
        raise DataException(
            f"{setting} needs at least {folds} rows, but the training data has {len(y)}; give more rows, set "
            f"n_cross_validations={max(2, len(y))} or fewer, or give validation data (X_valid/y_valid)."
        )
    if task == CLASSIFICATION:
        labels, counts = np.unique(y.astype(str) if y.dtype == object else y, return_counts=True)
        rare = [(lab.item() if hasattr(lab, "item") else lab, int(n))
                for lab, n in zip(labels, counts, strict=True) if n < folds]
        if rare:
            named = ", ".join(f"{lab!r} has {n}" for lab, n in rare[:5]) + (" row" if rare[0][1] == 1 else " rows")
            fewest = min(n for _, n in rare)
            fix = f"set n_cross_validations={fewest} or fewer, " if fewest >= 2 else ""
            raise DataException(
                f"{setting} needs at least {folds} rows of every class, but class {named}; give more rows "
                f"of {'that class' if len(rare) == 1 else 'those classes'}, {fix}or give validation data "
                "(X_valid/y_valid)."
            )


def splits(
    task: str,
    y: np.ndarray,
    n_cross_validations: int | None,
    validation_size: float | None,
    seed: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, scoring rows) pairs: k stratified folds, or one holdout of `validation_size`."""
    from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit

    n = len(y)
    stratify = task == CLASSIFICATION and int(np.unique(y, return_counts=True)[1].min()) >= 2
    if n_cross_validations:
        if stratify and int(np.unique(y, return_counts=True)[1].min()) >= n_cross_validations:
            folds = StratifiedKFold(n_cross_validations, shuffle=True, random_state=seed)
        else:
            folds = KFold(n_cross_validations, shuffle=True, random_state=seed)
        return [(tr, te) for tr, te in folds.split(np.zeros(n), y)]
    size = validation_size or 0.1
    splitter = (StratifiedShuffleSplit if stratify else ShuffleSplit)(1, test_size=size, random_state=seed)
    try:
        return [next(splitter.split(np.zeros(n), y))]
    except ValueError:
        return [next(ShuffleSplit(1, test_size=size, random_state=seed).split(np.zeros(n), y))]


def default_validation(n_rows: int) -> tuple[int | None, float | None]:
    """When the user names no validation: 5-fold CV for small data, a 10% holdout beyond 20,000 rows."""
    return (5, None) if n_rows <= 20_000 else (None, 0.1)


def take(X: Any, rows: np.ndarray) -> Any:
    return X.iloc[rows] if isinstance(X, (pd.DataFrame, pd.Series)) else X[rows]
