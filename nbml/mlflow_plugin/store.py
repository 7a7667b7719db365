"""MLflow tracking stores over nbml: `WorkspaceStore` (the workspace's SQLite store) and `JobStore` (a job's
event log). See :mod:`nbml.mlflow_plugin` for how MLflow's records map onto nbml's."""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from mlflow.entities import (
    Experiment,
    LifecycleStage,
    LoggedModel,
    LoggedModelStatus,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunStatus,
    RunTag,
    ViewType,
)
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.entities.paged_list import PagedList
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from mlflow.utils.search_utils import SearchExperimentsUtils, SearchUtils

from nbml import status as S
from nbml.mlflow_plugin import (
    ARTIFACT_ROOT,
    DEFAULT_EXPERIMENT,
    DEFAULT_EXPERIMENT_ID,
    INPUT_PREFIX,
    MODEL_PREFIX,
    PARAM_PREFIX,
    experiment_id,
    tracking_uri,
    workspace_path,
)

_TO_MLFLOW = {S.COMPLETED: "FINISHED", S.FAILED: "FAILED", S.CANCELED: "KILLED",
              S.NOT_STARTED: "SCHEDULED", S.QUEUED: "SCHEDULED"}
_TO_NBML = {"FINISHED": S.COMPLETED, "FAILED": S.FAILED, "KILLED": S.CANCELED}


def _mlflow_status(nbml_status: str) -> str:
    return _TO_MLFLOW.get(nbml_status, "RUNNING")


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _not_supported(what: str, instead: str) -> MlflowException:
    return MlflowException(f"nbml's MLflow store can't {what}. {instead}", INVALID_PARAMETER_VALUE)


def _model_record(model: LoggedModel, rel_path: str) -> dict[str, Any]:
    rec = model.to_dictionary()
    rec.pop("metrics", None)
    rec.pop("artifact_location", None)  # derived on reading, from the run's folder wherever that is
    rec["nbml_path"] = rel_path
    return rec


class _Common(AbstractStore):
    """What both stores share: the id mappings and building MLflow entities."""

    def __init__(self, store_uri: str) -> None:
        super().__init__()
        self.uri = store_uri
        self.root = workspace_path(store_uri)

    def _artifact_uri(self, run_id: str, props: dict[str, Any]) -> str:
        return tracking_uri(self.root / (props.get(ARTIFACT_ROOT) or f"runs/{run_id}"))

    def _experiment(self, name: str, created: float | None = None) -> Experiment:
        exp_id = experiment_id(name)
        return Experiment(exp_id, name, tracking_uri(self.root / "runs"), LifecycleStage.ACTIVE,
                          creation_time=_ms(created), last_update_time=_ms(created))

    def _logged_model(self, rec: dict[str, Any], run_props: dict[str, Any] | None = None) -> LoggedModel:
        rec = dict(rec)
        rel = rec.pop("nbml_path")
        rec["artifact_location"] = tracking_uri(self.root / rel)
        model: LoggedModel = LoggedModel.from_dictionary(rec)  # type: ignore[assignment]
        return model

    # -- MLflow's API that nbml doesn't have a counterpart for -----------------------------------
    def delete_experiment(self, experiment_id: str) -> None:
        raise _not_supported("delete experiments", "Delete its runs' folders with nbml instead.")

    def restore_experiment(self, experiment_id: str) -> None:
        raise _not_supported("restore experiments", "nbml never deletes one.")

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        raise _not_supported("rename experiments", "An nbml experiment is its name; log to a new one.")

    def restore_run(self, run_id: str) -> None:
        raise _not_supported("restore runs", "nbml never soft-deletes a run.")

    def link_traces_to_run(self, trace_ids: list[str], run_id: str) -> None:
        raise _not_supported("record traces", "Use MLflow's own tracking server for GenAI tracing.")

    def set_experiment_tag(self, experiment_id: str, tag: Any) -> None:
        raise _not_supported("tag experiments", "Tag the runs (mlflow.set_tag) instead.")


class WorkspaceStore(_Common):
    """The workspace's store, for a notebook or any process with the workspace folder."""

    def __init__(self, store_uri: str) -> None:
        super().__init__(store_uri)
        from nbml.workspace import Workspace

        if not (self.root / "config.json").is_file():
            raise MlflowException(f"No nbml workspace at {self.root} (from the tracking URI {store_uri!r}); "
                                  "use ws.get_mlflow_tracking_uri() of a workspace you created.",
                                  INVALID_PARAMETER_VALUE)
        self.ws = Workspace(path=str(self.root))
        self.store = self.ws.store

    # -- experiments ---------------------------------------------------------------------------
    def _experiment_names(self) -> dict[str, dict[str, Any]]:
        return {e["name"]: e for e in self.store.list_experiments()}

    def _name_of(self, exp_id: str) -> str | None:
        exps = self._experiment_names()
        if exp_id == DEFAULT_EXPERIMENT_ID:
            return DEFAULT_EXPERIMENT
        if exp_id in exps:
            return exp_id
        return next((n for n in exps if experiment_id(n) == exp_id), None)

    def search_experiments(self, view_type: int = ViewType.ACTIVE_ONLY, max_results: int = 1000,
                           filter_string: str | None = None, order_by: list[str] | None = None,
                           page_token: str | None = None) -> PagedList[Experiment]:
        exps = [self._experiment(n, e["created_at"]) for n, e in self._experiment_names().items()]
        if view_type == ViewType.DELETED_ONLY:
            exps = []
        exps = SearchExperimentsUtils.filter(exps, filter_string)
        exps = SearchExperimentsUtils.sort(exps, order_by or ["creation_time DESC", "experiment_id ASC"])
        page, token = SearchExperimentsUtils.paginate(exps, page_token, max_results)
        return PagedList(page, token)

    def create_experiment(self, name: str, artifact_location: str | None = None, tags: Any = None) -> str:
        from nbml.errors import UserErrorException
        from nbml.runs.experiment import Experiment as NbmlExperiment

        try:
            NbmlExperiment(self.ws, name)  # validates the name
        except UserErrorException as exc:
            raise MlflowException(str(exc), INVALID_PARAMETER_VALUE) from None
        if name in self._experiment_names():
            raise MlflowException(f"Experiment {name!r} already exists.", RESOURCE_ALREADY_EXISTS)
        self.store.ensure_experiment(name)
        return experiment_id(name)

    def get_experiment(self, experiment_id: str) -> Experiment:
        name = self._name_of(str(experiment_id))
        if name is None:
            raise MlflowException(f"No experiment with id {experiment_id!r} in the workspace {self.root}.",
                                  RESOURCE_DOES_NOT_EXIST)
        exps = self._experiment_names()
        if name not in exps:  # "Default", before anything ran in it
            self.store.ensure_experiment(name)
            exps = self._experiment_names()
        return self._experiment(name, exps[name]["created_at"])

    def get_experiment_by_name(self, experiment_name: str) -> Experiment | None:
        exps = self._experiment_names()
        if experiment_name not in exps:
            return None
        return self._experiment(experiment_name, exps[experiment_name]["created_at"])

    # -- runs ----------------------------------------------------------------------------------
    def _record(self, run_id: str) -> dict[str, Any]:
        rec = self.store.get_run(run_id)
        if rec is None:
            raise MlflowException(f"Run {run_id!r} not found in the workspace {self.root}.", RESOURCE_DOES_NOT_EXIST)
        return rec  # type: ignore[no-any-return]

    def _build(self, rec: dict[str, Any], latest: dict[str, dict[str, Any]] | None = None) -> Run:
        run_id = rec["run_id"]
        props = self.store.get_properties(run_id)
        tags = {k: "" if v is None else v for k, v in self.store.get_tags(run_id).items()}
        tags.setdefault(MLFLOW_RUN_NAME, rec.get("display_name") or run_id)
        if rec.get("parent_id"):
            tags.setdefault(MLFLOW_PARENT_RUN_ID, rec["parent_id"])
        params = [Param(k[len(PARAM_PREFIX):], v or "") for k, v in props.items() if k.startswith(PARAM_PREFIX)]
        if latest is None:
            latest = self.store.latest_metrics([run_id])[run_id]
        metrics = [Metric(name, m["value"], _ms(rec.get("ended_at") or time.time()) or 0, 0)
                   for name, m in latest.items() if m["value"] is not None]
        if metrics:  # the latest value's own step and time
            last = {r["name"]: r for r in self._last_rows(run_id)}
            metrics = [Metric(m.key, m.value, _ms(last[m.key]["logged_at"]) or 0, last[m.key]["step"] or 0)
                       if m.key in last else m for m in metrics]
        info = RunInfo(
            run_id=run_id, experiment_id=experiment_id(rec["experiment"]), user_id=tags.get("mlflow.user", ""),
            status=_mlflow_status(rec["status"]), start_time=_ms(rec.get("started_at") or rec["created_at"]) or 0,
            end_time=_ms(rec.get("ended_at")), lifecycle_stage=LifecycleStage.ACTIVE,
            artifact_uri=self._artifact_uri(run_id, props), run_name=rec.get("display_name") or run_id,
        )
        data = RunData(metrics=metrics, params=params, tags=[RunTag(k, v) for k, v in tags.items()])
        return Run(info, data, RunInputs(dataset_inputs=[]))

    def _last_rows(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.store.db.query(
            "SELECT name, step, logged_at FROM metrics WHERE id IN "
            "(SELECT MAX(id) FROM metrics WHERE run_id = ? GROUP BY name)", (run_id,))
        return [dict(r) for r in rows]

    def get_run(self, run_id: str) -> Run:
        return self._build(self._record(run_id))

    def _rename(self, run_id: str, name: str) -> None:
        with self.store.db.tx() as c:
            c.execute("UPDATE runs SET display_name = ? WHERE run_id = ?", (name, run_id))

    def create_run(self, experiment_id: str, user_id: str, start_time: int | None, tags: list[RunTag],
                   run_name: str | None) -> Run:
        from nbml.runs.ids import new_child_id, new_run_id
        from nbml.runs.recovery import hold_interactive

        name = self._name_of(str(experiment_id))
        if name is None:
            raise MlflowException(f"No experiment with id {experiment_id!r}; create it with "
                                  "mlflow.set_experiment(name).", RESOURCE_DOES_NOT_EXIST)
        tag_map = {t.key: t.value for t in tags or []}
        parent = tag_map.get(MLFLOW_PARENT_RUN_ID)
        if parent is not None:
            self._record(parent)
            run_id = new_child_id(parent, self.store.count_runs(parent_id=parent) + 1)
        else:
            run_id = new_run_id(name)
        run_name = run_name or tag_map.get(MLFLOW_RUN_NAME) or run_id
        self.store.insert_run(run_id, name, "interactive", "local", {"outputs": None, "mlflow": True},
                              parent_id=parent, display_name=run_name)
        hold_interactive(self.store, run_id)  # this process's heartbeat keeps it alive until it ends
        self.store.set_status(run_id, S.RUNNING)
        tag_map[MLFLOW_RUN_NAME] = run_name
        self.store.set_tags(run_id, tag_map)
        return self.get_run(run_id)

    def update_run_info(self, run_id: str, run_status: Any, end_time: int | None, run_name: str | None) -> RunInfo:
        from nbml.runs.recovery import release_interactive

        rec = self._record(run_id)
        if run_name:
            self._rename(run_id, run_name)
            self.store.set_tags(run_id, {MLFLOW_RUN_NAME: run_name})
        status = RunStatus.to_string(run_status) if isinstance(run_status, int) else str(run_status)
        target = _TO_NBML.get(status)
        if target is not None and rec["status"] not in S.TERMINAL:
            self.store.set_status(run_id, target)
            release_interactive(self.store, run_id)
        return self.get_run(run_id).info

    def delete_run(self, run_id: str) -> None:
        rec = self._record(run_id)
        if rec["status"] not in S.TERMINAL:
            raise MlflowException(f"Run {run_id} is still {rec['status']}; end it before deleting it.",
                                  INVALID_PARAMETER_VALUE)
        self.store.delete_run(run_id)

    def _search_runs(self, experiment_ids: list[str], filter_string: str | None, run_view_type: int,
                     max_results: int, order_by: list[str] | None, page_token: str | None) -> tuple[list[Run], str | None]:
        runs: list[Run] = []
        if run_view_type != ViewType.DELETED_ONLY:
            for exp_id in experiment_ids:
                name = self._name_of(str(exp_id))
                if name is None:
                    continue
                recs = self.store.list_runs(experiment=name, limit=1_000_000)
                latest = self.store.latest_metrics([r["run_id"] for r in recs])
                runs += [self._build(r, latest.get(r["run_id"], {})) for r in recs]
        runs = SearchUtils.filter(runs, filter_string)
        runs = SearchUtils.sort(runs, order_by)
        page, token = SearchUtils.paginate(runs, page_token, max_results)
        return page, token

    def get_metric_history(self, run_id: str, metric_key: str, max_results: int | None = None,
                           page_token: str | None = None) -> PagedList[Metric]:
        self._record(run_id)
        metrics = [Metric(metric_key, float(r["value"]), _ms(r["logged_at"]) or 0, r["step"] or 0, run_id=run_id)
                   for r in self.store.metric_rows(run_id, metric_key)
                   if r["kind"] == "scalar" and isinstance(r["value"], (int, float))]
        if max_results is None:
            return PagedList(metrics, None)
        start = int(page_token or 0)
        end = start + max_results
        return PagedList(metrics[start:end], str(end) if end < len(metrics) else None)

    # -- logging -------------------------------------------------------------------------------
    def log_batch(self, run_id: str, metrics: list[Metric], params: list[Param], tags: list[RunTag]) -> None:
        rec = self._record(run_id)
        if rec["status"] in S.TERMINAL:
            raise MlflowException(f"Run {run_id} already ended ({rec['status']}); start a new run to log more.",
                                  INVALID_STATE)
        if params:
            have = self.store.get_properties(run_id)
            for p in params:
                old = have.get(PARAM_PREFIX + p.key)
                if old is not None and old != str(p.value):
                    raise MlflowException(f"Param {p.key!r} of run {run_id} is already {old!r}; a param can't "
                                          f"change (was given {p.value!r}). Log it as a metric or a tag instead.",
                                          INVALID_PARAMETER_VALUE)
            self.store.add_properties(run_id, {PARAM_PREFIX + p.key: str(p.value) for p in params})
        if tags:
            self.store.set_tags(run_id, {t.key: t.value for t in tags})
            name = next((t.value for t in tags if t.key == MLFLOW_RUN_NAME), None)
            if name:
                self._rename(run_id, name)
        for m in metrics or []:
            if getattr(m, "model_id", None) is None:  # a model's copy of a run metric (log_model) isn't logged twice
                self.store.log_metric(run_id, m.key, "scalar", m.value, int(m.step or 0))

    def delete_tag(self, run_id: str, key: str) -> None:
        self.store.remove_tags(run_id, [key])

    def log_inputs(self, run_id: str, datasets: Any = None, models: Any = None) -> None:
        props = {}
        for d in datasets or []:
            ds = d.dataset
            props[f"{INPUT_PREFIX}{ds.name}:{ds.digest}"] = json.dumps(
                {"name": ds.name, "digest": ds.digest, "source_type": ds.source_type, "source": ds.source,
                 "schema": ds.schema, "profile": ds.profile, "tags": {t.key: t.value for t in d.tags or []}})
        for m in models or []:
            props[f"{INPUT_PREFIX}model:{m.model_id}"] = m.model_id
        if props:
            self.store.add_properties(run_id, props)

    def log_outputs(self, run_id: str, models: Any) -> None:
        pass  # the model's record already names its run (create_logged_model)

    def record_logged_model(self, run_id: str, mlflow_model: Any) -> None:
        key = "mlflow.log-model.history"
        history = json.loads(self.store.get_tags(run_id).get(key) or "[]")
        history.append(mlflow_model.get_tags_dict())
        self.store.set_tags(run_id, {key: json.dumps(history)})

    # -- logged models (MLflow 3's log_model) --------------------------------------------------
    def _model_row(self, model_id: str) -> tuple[str, dict[str, Any]]:
        row = self.store.db.one("SELECT run_id, value FROM properties WHERE key = ?", (MODEL_PREFIX + model_id,))
        if row is None:
            raise MlflowException(f"No logged model {model_id!r} in the workspace {self.root}.",
                                  RESOURCE_DOES_NOT_EXIST)
        return row["run_id"], json.loads(row["value"])

    def _put_model(self, run_id: str, rec: dict[str, Any]) -> None:
        self.store.add_properties(run_id, {MODEL_PREFIX + rec["model_id"]: json.dumps(rec)})

    def create_logged_model(self, experiment_id: str = DEFAULT_EXPERIMENT_ID, name: str | None = None,
                            source_run_id: str | None = None, tags: Any = None, params: Any = None,
                            model_type: str | None = None) -> LoggedModel:
        if source_run_id is None:
            raise _not_supported("keep a model outside a run", "Call log_model inside mlflow.start_run().")
        self._record(source_run_id)
        name = name or "model"
        taken = {json.loads(v).get("nbml_path") for k, v in self.store.get_properties(source_run_id).items()
                 if k.startswith(MODEL_PREFIX) and v}
        model_id = f"m-{uuid.uuid4().hex}"
        rel = f"runs/{source_run_id}/{name}"
        if rel in taken or (self.root / rel).exists():
            rel = f"{rel}-{model_id[2:10]}"  # a second model of the same name: never over the first
        now = int(time.time() * 1000)
        model = LoggedModel(experiment_id=str(experiment_id), model_id=model_id, name=name,
                            artifact_location="", creation_timestamp=now, last_updated_timestamp=now,
                            model_type=model_type, source_run_id=source_run_id, status=LoggedModelStatus.PENDING,
                            tags={t.key: t.value for t in tags or []}, params={p.key: p.value for p in params or []})
        rec = _model_record(model, rel)
        self._put_model(source_run_id, rec)
        return self._logged_model(rec)

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        _run, rec = self._model_row(model_id)
        return self._logged_model(rec)

    def finalize_logged_model(self, model_id: str, status: Any) -> LoggedModel:
        run_id, rec = self._model_row(model_id)
        rec["status"] = status if isinstance(status, int) else LoggedModelStatus(status).to_int()
        rec["last_updated_timestamp"] = int(time.time() * 1000)
        self._put_model(run_id, rec)
        return self._logged_model(rec)

    def set_logged_model_tags(self, model_id: str, tags: Any) -> None:
        run_id, rec = self._model_row(model_id)
        rec["tags"] = {**(rec.get("tags") or {}), **{t.key: t.value for t in tags}}
        self._put_model(run_id, rec)

    def log_logged_model_params(self, model_id: str, params: Any) -> None:
        run_id, rec = self._model_row(model_id)
        rec["params"] = {**(rec.get("params") or {}), **{p.key: p.value for p in params}}
        self._put_model(run_id, rec)

    def search_logged_models(self, experiment_ids: list[str], filter_string: str | None = None,
                             datasets: Any = None, max_results: int | None = None, order_by: Any = None,
                             page_token: str | None = None) -> PagedList[LoggedModel]:
        names = {self._name_of(str(e)) for e in experiment_ids}
        rows = self.store.db.query(
            "SELECT p.value, r.experiment FROM properties p JOIN runs r ON r.run_id = p.run_id WHERE p.key LIKE ?",
            (MODEL_PREFIX + "%",))
        models = [self._logged_model(json.loads(r["value"])) for r in rows if r["experiment"] in names]
        models.sort(key=lambda m: -m.creation_timestamp)
        return PagedList(models[: max_results or len(models)], None)


class JobStore(_Common):
    """Inside a job: writes become events of the job's log, as ``Run.get_context()``'s do."""

    def __init__(self, store_uri: str, run_id: str, job_dir: str) -> None:
        super().__init__(store_uri)
        from nbml.runs.script_run import ContextRun

        self.run_id = run_id
        self.job_dir = job_dir
        self.exp_name = os.environ.get("NBML_EXPERIMENT") or DEFAULT_EXPERIMENT
        self.exp_id = experiment_id(self.exp_name)
        self.context = ContextRun(run_id, job_dir)
        self.started = time.time()
        #: What this process logged per run (a job can't read the store): params, tags, metric history.
        self.params: dict[str, dict[str, str]] = {run_id: {}}
        self.tags: dict[str, dict[str, str]] = {run_id: {}}
        self.metrics: dict[str, list[Metric]] = {run_id: []}
        self.ended: dict[str, str] = {}
        self.children: dict[str, Any] = {}
        self.models: dict[str, tuple[str, dict[str, Any]]] = {}

    def _run_obj(self, run_id: str) -> Any:
        if run_id == self.run_id:
            return self.context
        if run_id in self.children:
            return self.children[run_id]
        raise MlflowException(f"Inside the job of run {self.run_id}, only it and the runs it started can be "
                              f"written; {run_id!r} is neither.", RESOURCE_DOES_NOT_EXIST)

    # -- experiments: a job logs into its own ----------------------------------------------------
    def search_experiments(self, view_type: int = ViewType.ACTIVE_ONLY, max_results: int = 1000,
                           filter_string: str | None = None, order_by: list[str] | None = None,
                           page_token: str | None = None) -> PagedList[Experiment]:
        return PagedList([self._experiment(self.exp_name)], None)

    def create_experiment(self, name: str, artifact_location: str | None = None, tags: Any = None) -> str:
        return self.exp_id

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self._experiment(self.exp_name)

    def get_experiment_by_name(self, experiment_name: str) -> Experiment:
        return self._experiment(self.exp_name)  # inside a job, every experiment name is the job's own

    # -- runs ----------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> Run:
        self._run_obj(run_id)
        latest: dict[str, Metric] = {}
        for m in self.metrics.get(run_id, []):
            latest[m.key] = m
        tags = dict(self.tags.get(run_id, {}))
        artifact_root = f"runs/{self.run_id}" if run_id == self.run_id else f"runs/{self.run_id}/{self._child_dir(run_id)}"
        info = RunInfo(run_id=run_id, experiment_id=self.exp_id, user_id=tags.get("mlflow.user", ""),
                       status=self.ended.get(run_id, "RUNNING"), start_time=int(self.started * 1000),
                       end_time=None, lifecycle_stage=LifecycleStage.ACTIVE,
                       artifact_uri=tracking_uri(self.root / artifact_root),
                       run_name=tags.get(MLFLOW_RUN_NAME, run_id))
        data = RunData(metrics=list(latest.values()),
                       params=[Param(k, v) for k, v in self.params.get(run_id, {}).items()],
                       tags=[RunTag(k, v) for k, v in tags.items()])
        return Run(info, data, RunInputs(dataset_inputs=[]))

    @staticmethod
    def _child_dir(run_id: str) -> str:
        from nbml.mlflow_plugin.artifacts import CHILDREN_DIR

        return f"{CHILDREN_DIR}/{run_id}"

    def create_run(self, experiment_id: str, user_id: str, start_time: int | None, tags: list[RunTag],
                   run_name: str | None) -> Run:
        from nbml.mlflow_plugin.artifacts import JOB_CHILDREN

        tag_map = {t.key: t.value for t in tags or []}
        parent = tag_map.get(MLFLOW_PARENT_RUN_ID)
        if parent is None:
            # A top-level run inside a job is the job's run (MLflow forgets MLFLOW_RUN_ID after its first
            # start_run; autologging starts one per fit): everything lands in the run nbml started.
            tag_map.pop(MLFLOW_RUN_NAME, None)
            if tag_map:
                self.log_batch(self.run_id, [], [], [RunTag(k, v) for k, v in tag_map.items()])
            return self.get_run(self.run_id)
        parent_obj = self._run_obj(parent)
        child = parent_obj.child_run(name=run_name or tag_map.get(MLFLOW_RUN_NAME))
        self.children[child.id] = child
        JOB_CHILDREN[child.id] = self._child_dir(child.id)
        for d in (self.params, self.tags):
            d[child.id] = {}
        self.metrics[child.id] = []
        child.add_properties({ARTIFACT_ROOT: f"runs/{self.run_id}/{self._child_dir(child.id)}"})
        tag_map[MLFLOW_RUN_NAME] = run_name or tag_map.get(MLFLOW_RUN_NAME) or child.id
        self.log_batch(child.id, [], [], [RunTag(k, v) for k, v in tag_map.items()])
        return self.get_run(child.id)

    def update_run_info(self, run_id: str, run_status: Any, end_time: int | None, run_name: str | None) -> RunInfo:
        obj = self._run_obj(run_id)
        status = RunStatus.to_string(run_status) if isinstance(run_status, int) else str(run_status)
        if run_id != self.run_id and status in _TO_NBML and run_id not in self.ended:
            # The job's own run ends when its process does (the supervisor says how); a child ends here.
            self.ended[run_id] = status
            from nbml.runs.script_run import _writer

            _writer(self.job_dir).write({"type": "child_end", "run": obj.id, "status": _TO_NBML[status]})
        return self.get_run(run_id).info

    def delete_run(self, run_id: str) -> None:
        raise _not_supported("delete runs inside a job", "Delete runs from the notebook.")

    def _search_runs(self, experiment_ids: list[str], filter_string: str | None, run_view_type: int,
                     max_results: int, order_by: list[str] | None, page_token: str | None) -> tuple[list[Run], str | None]:
        runs = [self.get_run(r) for r in [self.run_id, *self.children]]
        runs = SearchUtils.sort(SearchUtils.filter(runs, filter_string), order_by)
        return SearchUtils.paginate(runs, page_token, max_results)  # type: ignore[no-any-return]

    def get_metric_history(self, run_id: str, metric_key: str, max_results: int | None = None,
                           page_token: str | None = None) -> PagedList[Metric]:
        self._run_obj(run_id)
        return PagedList([m for m in self.metrics.get(run_id, []) if m.key == metric_key], None)

    # -- logging -------------------------------------------------------------------------------
    def log_batch(self, run_id: str, metrics: list[Metric], params: list[Param], tags: list[RunTag]) -> None:
        obj = self._run_obj(run_id)
        if params:
            have = self.params.setdefault(run_id, {})
            for p in params:
                if p.key in have and have[p.key] != str(p.value):
                    raise MlflowException(f"Param {p.key!r} is already {have[p.key]!r}; a param can't change "
                                          f"(was given {p.value!r}).", INVALID_PARAMETER_VALUE)
            have.update({p.key: str(p.value) for p in params})
            obj.add_properties({PARAM_PREFIX + p.key: str(p.value) for p in params})
        if tags:
            self.tags.setdefault(run_id, {}).update({t.key: t.value for t in tags})
            obj.set_tags({t.key: t.value for t in tags})
        for m in metrics or []:
            if getattr(m, "model_id", None) is not None:
                continue  # a model's copy of a run metric (log_model) isn't logged twice
            obj._emit({"type": "metric", "name": m.key, "kind": "scalar", "value": m.value,
                       "step": int(m.step or 0), "t": (m.timestamp or time.time() * 1000) / 1000})
            self.metrics.setdefault(run_id, []).append(m)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._run_obj(run_id).remove_tags([key])
        self.tags.get(run_id, {}).pop(key, None)

    def log_inputs(self, run_id: str, datasets: Any = None, models: Any = None) -> None:
        props = {}
        for d in datasets or []:
            ds = d.dataset
            props[f"{INPUT_PREFIX}{ds.name}:{ds.digest}"] = json.dumps(
                {"name": ds.name, "digest": ds.digest, "source_type": ds.source_type, "source": ds.source})
        if props:
            self._run_obj(run_id).add_properties(props)

    def log_outputs(self, run_id: str, models: Any) -> None:
        pass

    def record_logged_model(self, run_id: str, mlflow_model: Any) -> None:
        key = "mlflow.log-model.history"
        history = json.loads(self.tags.get(run_id, {}).get(key) or "[]")
        history.append(mlflow_model.get_tags_dict())
        self.log_batch(run_id, [], [], [RunTag(key, json.dumps(history))])

    # -- logged models ---------------------------------------------------------------------------
    def create_logged_model(self, experiment_id: str = DEFAULT_EXPERIMENT_ID, name: str | None = None,
                            source_run_id: str | None = None, tags: Any = None, params: Any = None,
                            model_type: str | None = None) -> LoggedModel:
        run_id = source_run_id or self.run_id
        self._run_obj(run_id)
        name = name or "model"
        base = f"runs/{self.run_id}" + ("" if run_id == self.run_id else f"/{self._child_dir(run_id)}")
        taken = {rec["nbml_path"] for _r, rec in self.models.values()}
        model_id = f"m-{uuid.uuid4().hex}"
        rel = f"{base}/{name}"
        if rel in taken:
            rel = f"{rel}-{model_id[2:10]}"
        now = int(time.time() * 1000)
        model = LoggedModel(experiment_id=self.exp_id, model_id=model_id, name=name, artifact_location="",
                            creation_timestamp=now, last_updated_timestamp=now, model_type=model_type,
                            source_run_id=run_id, status=LoggedModelStatus.PENDING,
                            tags={t.key: t.value for t in tags or []}, params={p.key: p.value for p in params or []})
        self.models[model_id] = (run_id, _model_record(model, rel))
        self._put_model(model_id)
        return self.get_logged_model(model_id)

    def _put_model(self, model_id: str) -> None:
        run_id, rec = self.models[model_id]
        self._run_obj(run_id).add_properties({MODEL_PREFIX + model_id: json.dumps(rec)})

    def _model(self, model_id: str) -> dict[str, Any]:
        if model_id not in self.models:
            raise MlflowException(f"Inside a job only the models it logged can be read; {model_id!r} isn't one.",
                                  RESOURCE_DOES_NOT_EXIST)
        return self.models[model_id][1]

    def get_logged_model(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        return self._logged_model(self._model(model_id))

    def finalize_logged_model(self, model_id: str, status: Any) -> LoggedModel:
        rec = self._model(model_id)
        rec["status"] = status if isinstance(status, int) else LoggedModelStatus(status).to_int()
        rec["last_updated_timestamp"] = int(time.time() * 1000)
        self._put_model(model_id)
        return self.get_logged_model(model_id)

    def set_logged_model_tags(self, model_id: str, tags: Any) -> None:
        rec = self._model(model_id)
        rec["tags"] = {**(rec.get("tags") or {}), **{t.key: t.value for t in tags}}
        self._put_model(model_id)

    def log_logged_model_params(self, model_id: str, params: Any) -> None:
        rec = self._model(model_id)
        rec["params"] = {**(rec.get("params") or {}), **{p.key: p.value for p in params}}
        self._put_model(model_id)

