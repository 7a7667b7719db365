"""TabularDataset: delimited or Parquet files read as one table (``azureml.data.tabular_dataset``)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from nbml.data.abstract_dataset import AbstractDataset, DatasetError

if TYPE_CHECKING:
    import pandas as pd


class TabularDataset(AbstractDataset):
    """A lazy table; ``to_pandas_dataframe()`` reads it. Operations return new datasets."""

    _kind = "tabular"

    # -- operations --------------------------------------------------------------------------------------
    def take(self, count: int) -> TabularDataset:
        return self._with_step({"op": "take", "n": int(count)})

    def skip(self, count: int) -> TabularDataset:
        return self._with_step({"op": "skip", "n": int(count)})

    def take_sample(self, probability: float, seed: int | None = None) -> TabularDataset:
        return self._with_step({"op": "sample", "probability": float(probability), "seed": seed})

    def drop_columns(self, columns: str | list[str]) -> TabularDataset:
        cols = [columns] if isinstance(columns, str) else list(columns)
        ts = self.timestamp_columns
        used = [c for c in cols if c and c in ts]
        if used:
            raise DatasetError(f"Column(s) {used} are the dataset's timestamp columns; clear them first with "
                               "with_timestamp_columns(None).")
        return self._with_step({"op": "drop_columns", "columns": cols})

    def keep_columns(self, columns: str | list[str], validate: bool = False) -> TabularDataset:
        cols = [columns] if isinstance(columns, str) else list(columns)
        missing_ts = [c for c in self.timestamp_columns if c and c not in cols]
        if missing_ts:
            raise DatasetError(f"keep_columns must keep the timestamp column(s) {missing_ts}, or clear them first "
                               "with with_timestamp_columns(None).")
        out = self._with_step({"op": "keep_columns", "columns": cols})
        if validate:
            out.take(1).to_pandas_dataframe()
        return out

    def random_split(self, percentage: float, seed: int | None = None) -> tuple[TabularDataset, TabularDataset]:
        """Two datasets: about `percentage` of the rows, and the rest (the same split for the same seed)."""
        if not 0.0 < float(percentage) < 1.0:
            raise DatasetError(f"percentage={percentage} must be between 0 and 1 (e.g. 0.8).")
        seed = 0 if seed is None else int(seed)
        return (self._with_step({"op": "split", "percentage": float(percentage), "seed": seed, "part": 0}),
                self._with_step({"op": "split", "percentage": float(percentage), "seed": seed, "part": 1}))

    def filter(self, expression: str) -> TabularDataset:
        """Rows where a pandas ``DataFrame.query`` expression holds."""
        return self._with_step({"op": "query", "expression": str(expression)})

    # -- time series ------------------------------------------------------------------------------------
    @property
    def timestamp_columns(self) -> tuple[str | None, str | None]:
        """(fine grain, coarse grain) timestamp column names; None where unset."""
        ts = self._definition.get("timestamp") or {}
        return ts.get("fine"), ts.get("coarse")

    def with_timestamp_columns(self, fine_grain_timestamp: str | None = None, coarse_grain_timestamp: str | None = None,
                               validate: bool = False, **kw: Any) -> TabularDataset:
        fine = fine_grain_timestamp or kw.get("timestamp")
        if coarse_grain_timestamp and not fine:
            raise DatasetError("coarse_grain_timestamp needs fine_grain_timestamp as well.")
        definition = self.definition
        definition["timestamp"] = {"fine": fine, "coarse": coarse_grain_timestamp}
        return TabularDataset(definition, self._workspace)

    def time_before(self, end_time: datetime, include_boundary: bool = True) -> TabularDataset:
        return self._time(None, end_time, include_boundary)

    def time_after(self, start_time: datetime, include_boundary: bool = True) -> TabularDataset:
        return self._time(start_time, None, include_boundary)

    def time_between(self, start_time: datetime, end_time: datetime, include_boundary: bool = True) -> TabularDataset:
        return self._time(start_time, end_time, include_boundary)

    def time_recent(self, time_delta: timedelta, include_boundary: bool = True) -> TabularDataset:
        return self._with_step({"op": "recent", "seconds": time_delta.total_seconds(), "inclusive": include_boundary,
                                "column": self._fine()})

    def _fine(self) -> str:
        ts = self._definition.get("timestamp") or {}
        if not ts.get("fine"):
            raise DatasetError("This dataset has no timestamp column; set one with with_timestamp_columns(...).")
        return str(ts["fine"])

    def _time(self, start: datetime | None, end: datetime | None, inclusive: bool) -> TabularDataset:
        return self._with_step({"op": "time", "column": self._fine(), "inclusive": inclusive,
                                "start": start.isoformat() if start else None, "end": end.isoformat() if end else None})

    # -- reading ----------------------------------------------------------------------------------------
    def to_pandas_dataframe(self, on_error: str = "null", out_of_range_datetime: str = "null") -> pd.DataFrame:
        from nbml._extras import require

        require("data", "pandas")
        import pandas as pd

        fmt = self._definition.get("format") or {"type": "delimited"}
        frames = []
        for loc, full, rel in self._files():
            with loc.fs.open(full, "rb") as fh:
                frame = _read(fh, fmt)
            if fmt.get("include_path"):
                frame.insert(0, "Path", "/" + rel)
            if fmt.get("partition_format"):
                for col, value in _partition_values(fmt["partition_format"], full).items():
                    frame[col] = value
            frames.append(frame)
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        for step in self._definition.get("steps", []):
            df = _apply(df, step)
        return df.reset_index(drop=True)

    def to_csv_files(self, separator: str = ",") -> Any:
        raise DatasetError("to_csv_files is not supported; use to_pandas_dataframe().to_csv(path).")


def _read(fh: Any, fmt: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    if fmt.get("type") == "parquet":
        return pd.read_parquet(fh)
    header = fmt.get("header", True)
    return pd.read_csv(fh, sep=fmt.get("separator", ","), header=0 if header not in (False, 0, "no_header") else None,
                       encoding=fmt.get("encoding") or "utf-8", skiprows=fmt.get("skip_rows") or None)


_TOKENS = (("yyyy", r"\d{4}", "%Y"), ("MM", r"\d{2}", "%m"), ("dd", r"\d{2}", "%d"), ("HH", r"\d{2}", "%H"),
           ("mm", r"\d{2}", "%M"), ("ss", r"\d{2}", "%S"))


def _partition_values(pattern: str, path: str) -> dict[str, Any]:
    """``{coarse_time:yyyy/MM}/data.parquet`` against a file path -> {"coarse_time": datetime(...)}."""
    names: list[tuple[str, str | None]] = []
    rx = ""
    for part in re.split(r"(\{[^}]*\})", pattern.lstrip("/")):
        m = re.fullmatch(r"\{(\w+)(?::([^}]*))?\}", part)
        if not m:
            rx += re.escape(part)
            continue
        names.append((m.group(1), m.group(2)))
        body = re.escape(m.group(2)) if m.group(2) else None
        if body is not None:
            for token, pattern_rx, _code in _TOKENS:
                body = body.replace(token, pattern_rx)
        rx += f"({body})" if body is not None else r"([^/]+)"
    found = re.search(rx + "$", path)
    if not found:
        return {}
    out: dict[str, Any] = {}
    for (name, fmt), value in zip(names, found.groups(), strict=False):
        if fmt:
            for token, _rx, code in _TOKENS:
                fmt = fmt.replace(token, code)
            out[name] = datetime.strptime(value, fmt)
        else:
            out[name] = value
    return out


def _apply(df: pd.DataFrame, step: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    op = step["op"]
    if op == "take":
        return df.head(step["n"])
    if op == "skip":
        return df.iloc[step["n"]:]
    if op == "sample":
        rng = np.random.default_rng(step.get("seed"))
        return df[rng.random(len(df)) < step["probability"]]
    if op == "drop_columns":
        return df.drop(columns=[c for c in step["columns"] if c in df.columns])
    if op == "keep_columns":
        return df[[c for c in step["columns"] if c in df.columns]]
    if op == "split":
        order = np.random.default_rng(step["seed"]).permutation(len(df))
        cut = round(len(df) * step["percentage"])
        rows = np.sort(order[:cut] if step["part"] == 0 else order[cut:])
        return df.iloc[rows]
    if op == "query":
        return df.query(step["expression"])
    if op in ("time", "recent"):
        col = pd.to_datetime(df[step["column"]], utc=False)
        if getattr(col.dt, "tz", None) is not None:
            col = col.dt.tz_localize(None)
        if op == "recent":
            start, end = col.max() - pd.Timedelta(seconds=step["seconds"]), None
        else:
            start = pd.Timestamp(step["start"]) if step.get("start") else None
            end = pd.Timestamp(step["end"]) if step.get("end") else None
        keep = pd.Series(True, index=df.index)
        if start is not None:
            keep &= (col >= start) if step["inclusive"] else (col > start)
        if end is not None:
            keep &= (col <= end) if step["inclusive"] else (col < end)
        return df[keep]
    raise DatasetError(f"Unknown dataset step {op!r} (written by a newer nbml?).")
