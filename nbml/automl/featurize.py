"""Featurization 'auto' (imputation, encodings) and the scalers pipelines are named after.

`AutoFeaturizer` turns a pandas frame with missing values, strings, categories, booleans and dates (or a
plain numeric array) into a dense float matrix. It decides column roles once, in `fit`, from the training
data, so the same columns come out for every later `transform` (unknown categories map to zeros / -1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, Normalizer, RobustScaler, StandardScaler

from nbml.automl import estimators

#: the seed's scalers, by the name that starts a pipeline's name
SCALERS: dict[str, type] = {
    "StandardScalerWrapper": StandardScaler,
    "MinMaxScaler": MinMaxScaler,
    "MaxAbsScaler": MaxAbsScaler,
    "RobustScaler": RobustScaler,
    "Normalizer": Normalizer,
}
SCALER_NAMES = estimators.SCALER_NAMES  # the same names, kept where the search can read them without sklearn

#: a string column with at most this many distinct values is one-hot encoded, else ordinal encoded
MAX_ONE_HOT = 20


def make_scaler(name: str) -> Any:
    """A fresh scaler for a pipeline (names in SCALER_NAMES)."""
    try:
        return SCALERS[name]()
    except KeyError:
        raise ValueError(f"unknown scaler {name!r}; choose one of {', '.join(SCALER_NAMES)}") from None


def _as_frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    if isinstance(X, pd.Series):
        return X.to_frame()
    arr = np.asarray(X)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


def _column_role(s: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "numeric"
    if pd.api.types.is_numeric_dtype(s):
        return "numeric" if s.notna().any() else "drop"
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime"
    values = s.dropna()
    if values.empty:
        return "drop"
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return "numeric_text"
    nunique = values.astype(str).nunique()
    if nunique <= 1:
        return "drop"
    return "onehot" if nunique <= MAX_ONE_HOT else "ordinal"


def _numeric_matrix(X: Any) -> np.ndarray | None:
    """X as a 2-D float array when every column is numeric (or boolean), else None."""
    if isinstance(X, pd.DataFrame):
        if not all(pd.api.types.is_numeric_dtype(dt) for dt in X.dtypes):
            return None
        return X.to_numpy(dtype=float)
    if isinstance(X, np.ndarray) and X.dtype.kind in "biuf":
        return X.astype(float, copy=False).reshape(len(X), -1)
    return None


class AutoFeaturizer(BaseEstimator, TransformerMixin):
    """Impute, encode and expand every column into numbers.

    Parameters
    ----------
    enabled : bool
        False keeps the data as it is (``featurization='off'``); it must then already be numeric.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def fit(self, X: Any, y: Any = None) -> AutoFeaturizer:
        self.plan_: list[tuple[Any, str, Any]] = []
        self.feature_names_: list[str] = []
        self.numeric_: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        matrix = _numeric_matrix(X) if self.enabled else None
        if matrix is not None:
            self.columns_in_ = list(X.columns) if isinstance(X, pd.DataFrame) else \
                [f"x{i}" for i in range(matrix.shape[1])]
            return self._fit_numeric(matrix)
        frame = _as_frame(X)
        self.columns_in_ = list(frame.columns)
        if not self.enabled:
            self.feature_names_ = [str(c) for c in frame.columns]
            return self
        for col in frame.columns:
            s = frame[col]
            role = _column_role(s)
            if role in ("numeric", "numeric_text"):
                values = pd.to_numeric(s, errors="coerce").astype(float)
                median = float(values.median()) if values.notna().any() else 0.0
                self.plan_.append((col, role, median))
                self.feature_names_.append(str(col))
                if values.isna().any():
                    self.plan_.append((col, "missing", None))
                    self.feature_names_.append(f"{col}_missing")
            elif role == "datetime":
                self.plan_.append((col, role, None))
                self.feature_names_ += [f"{col}_{p}" for p in ("year", "month", "day", "dayofweek", "hour")]
            elif role == "onehot":
                cats = sorted(s.dropna().astype(str).unique())
                self.plan_.append((col, role, cats))
                self.feature_names_ += [f"{col}_{c}" for c in cats]
            elif role == "ordinal":
                counts = s.dropna().astype(str).value_counts()
                mapping = {c: i for i, c in enumerate(counts.index)}  # frequent values get small codes
                self.plan_.append((col, role, mapping))
                self.feature_names_.append(str(col))
        return self

    def _fit_numeric(self, values: np.ndarray) -> AutoFeaturizer:
        """All columns numeric: the same plan as column by column, computed on the whole matrix at once
        (thousands of columns take milliseconds instead of minutes)."""
        nan = np.isnan(values)
        kept = np.flatnonzero(~nan.all(axis=0))  # a column with no value at all is dropped
        flagged = kept[nan[:, kept].any(axis=0)]
        medians = np.median(values[:, kept], axis=0)
        if len(flagged):  # only columns with missing values need the (slower) NaN-aware median
            medians[np.searchsorted(kept, flagged)] = np.nanmedian(values[:, flagged], axis=0)
        self.numeric_ = (kept, medians, flagged)
        names = [str(c) for c in self.columns_in_]
        self.feature_names_ = [names[i] for i in kept] + [f"{names[i]}_missing" for i in flagged]
        return self

    def transform(self, X: Any) -> np.ndarray:
        if self.enabled and getattr(self, "numeric_", None) is not None:
            return self._transform_numeric(X)
        frame = _as_frame(X)
        if not self.enabled:
            return np.asarray(frame, dtype=float)
        missing = [c for c in self.columns_in_ if c not in frame.columns]
        if missing:
            raise ValueError(f"columns {missing} were in the training data but are missing here.")
        parts: list[np.ndarray] = []
        for col, role, info in self.plan_:
            s = frame[col]
            if role in ("numeric", "numeric_text"):
                values = pd.to_numeric(s, errors="coerce").astype(float).to_numpy()
                parts.append(np.where(np.isnan(values), info, values).reshape(-1, 1))
            elif role == "missing":
                parts.append(s.isna().to_numpy(dtype=float).reshape(-1, 1))
            elif role == "datetime":
                d = pd.to_datetime(s, errors="coerce")
                cols = [d.dt.year, d.dt.month, d.dt.day, d.dt.day_of_week, d.dt.hour]
                parts.append(np.column_stack([c.fillna(-1).to_numpy(dtype=float) for c in cols]))
            elif role == "onehot":
                values = s.astype(str).where(s.notna(), None).to_numpy()
                parts.append(np.column_stack([(values == c).astype(float) for c in info]))
            elif role == "ordinal":
                codes = s.astype(str).map(info).where(s.notna(), np.nan)
                parts.append(codes.fillna(-1).to_numpy(dtype=float).reshape(-1, 1))
        if not parts:
            return np.zeros((len(frame), 0))
        return np.hstack(parts)

    def _transform_numeric(self, X: Any) -> np.ndarray:
        kept, medians, flagged = self.numeric_  # type: ignore[misc]
        if isinstance(X, pd.DataFrame):
            missing = [c for c in self.columns_in_ if c not in X.columns]
            if missing:
                raise ValueError(f"columns {missing} were in the training data but are missing here.")
            X = X[self.columns_in_].apply(pd.to_numeric, errors="coerce")
        values = np.asarray(X, dtype=float)
        if values.ndim == 1:
            values = values.reshape(-1, 1)
        out = values[:, kept]
        out = np.where(np.isnan(out), medians, out)
        return np.hstack([out, np.isnan(values[:, flagged]).astype(float)])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_, dtype=object)

    def get_engineered_feature_names(self) -> list[str]:
        """The names of the columns `transform` makes (the SDK's ``datatransformer`` method)."""
        return [str(n) for n in self.feature_names_]

    def get_featurization_summary(self) -> list[dict[str, Any]]:
        """One dict per raw column: its detected type, whether it was dropped, and what it became (SDK shape)."""
        summary: dict[str, dict[str, Any]] = {}

        def entry(col: Any, kind: str) -> dict[str, Any]:
            return summary.setdefault(str(col), {"RawFeatureName": str(col), "TypeDetected": kind, "Dropped": "No",
                                                 "EngineeredFeatureCount": 0, "Transformations": []})

        numeric = getattr(self, "numeric_", None)
        if not self.enabled:
            for col in self.columns_in_:
                entry(col, "Numeric")["EngineeredFeatureCount"] = 1
        elif numeric is not None:
            kept, _, flagged = numeric
            for i, col in enumerate(self.columns_in_):
                e = entry(col, "Numeric")
                if i not in set(kept.tolist()):
                    e.update(Dropped="Yes")
                    continue
                e["EngineeredFeatureCount"] = 1
                e["Transformations"].append("MedianImputer")
                if i in set(flagged.tolist()):
                    e["EngineeredFeatureCount"] += 1
                    e["Transformations"].append("ImputationMarker")
        else:
            kinds = {"numeric": "Numeric", "numeric_text": "Numeric", "datetime": "DateTime",
                     "onehot": "Categorical", "ordinal": "CategoricalHash"}
            steps = {"numeric": "MedianImputer", "numeric_text": "MedianImputer", "missing": "ImputationMarker",
                     "datetime": "DateTimeTransformer", "onehot": "OneHotEncoder", "ordinal": "LabelEncoder"}
            widths = {"datetime": 5}
            for col, role, info in self.plan_:
                e = entry(col, kinds.get(role, "Numeric"))
                e["EngineeredFeatureCount"] += len(info) if role == "onehot" else widths.get(role, 1)
                e["Transformations"].append(steps[role])
            for col in self.columns_in_:
                if str(col) not in summary:
                    entry(col, "Ignore").update(Dropped="Yes")
        return [summary[str(c)] for c in self.columns_in_]


def describe_columns(X: Any) -> dict[str, list[str]]:
    """Column names by the role featurization gives them (for the parent run's properties and errors)."""
    frame = _as_frame(X)
    roles: dict[str, list[str]] = {}
    for col in frame.columns:
        roles.setdefault(_column_role(frame[col]), []).append(str(col))
    return roles
