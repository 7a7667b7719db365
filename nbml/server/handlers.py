"""REST handlers under /nbml/api/: thin wrappers over NbmlManager, authenticated on every verb."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import quote

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from nbml.server.files import IMAGE_TYPES, UnsafePath
from nbml.server.manager import NbmlManager, RunMissing

T = TypeVar("T")

MAX_LIMIT = 500
MAX_LOG_CHUNK = 4 << 20
MAX_SERIES_RUNS = 200
#: Files shown inline as plain text by the raw route.
TEXT_SUFFIXES = {".txt", ".log", ".csv", ".tsv", ".json", ".yaml", ".yml", ".md", ".py", ".out", ".err"}
_RUN = r"(?P<run_id>[^/]+)"


class NbmlHandler(APIHandler):
    """Maps the manager's errors to HTTP statuses with messages a user can act on."""

    @property
    def manager(self) -> NbmlManager:
        return self.settings["nbml_manager"]  # type: ignore[no-any-return]

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except RunMissing as exc:
            raise tornado.web.HTTPError(404, str(exc)) from None
        except UnsafePath as exc:
            raise tornado.web.HTTPError(400, f"Refused: {exc}.") from None
        except FileNotFoundError as exc:
            raise tornado.web.HTTPError(404, str(exc)) from None

    def int_arg(self, name: str, default: int, lo: int = 0, hi: int | None = None) -> int:
        raw = self.get_argument(name, None)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise tornado.web.HTTPError(400, f"Query argument {name}={raw!r} must be an integer.") from None
        if value < lo or (hi is not None and value > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            raise tornado.web.HTTPError(400, f"Query argument {name}={value} must be {bound}.")
        return value

    def send(self, model: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(model, allow_nan=False))


class WorkspaceHandler(NbmlHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.send(self.manager.workspace())


class ComputeHandler(NbmlHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        self.send(await self.call(self.manager.compute))


class ExperimentsHandler(NbmlHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        latest = self.int_arg("latest", 5, 0, 100)
        self.send(await self.call(lambda: self.manager.experiments(latest)))


class RunsHandler(NbmlHandler):
    """``GET /nbml/api/runs?experiment=&status=Running,Completed&parent=&children=1&limit=&offset=``."""

    @tornado.web.authenticated
    async def get(self) -> None:
        statuses = [s for arg in self.get_arguments("status") for s in arg.split(",") if s]
        parent = self.get_argument("parent", None) or None
        model = await self.call(
            lambda: self.manager.runs(
                experiment=self.get_argument("experiment", None) or None,
                status=statuses,
                parent_id=parent,
                top_level=parent is None and self.get_argument("children", "0") not in ("1", "true"),
                limit=self.int_arg("limit", 50, 1, MAX_LIMIT),
                offset=self.int_arg("offset", 0),
            )
        )
        self.send(model)


class RunHandler(NbmlHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        self.send(await self.call(lambda: self.manager.run(run_id)))


class MetricsHandler(NbmlHandler):
    """``GET /nbml/api/runs/<id>/metrics``: every row and their fold; ``?after=N``: only rows with id > N."""

    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        after = None if self.get_argument("after", "") == "" else self.int_arg("after", 0)
        text = await self.call(lambda: self.manager.metrics_text(run_id, after))
        self.set_header("Content-Type", "application/json")
        self.finish(text)


class ChildrenHandler(NbmlHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        self.send(await self.call(lambda: self.manager.children(run_id)))


class LogsHandler(NbmlHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        self.send(await self.call(lambda: self.manager.log_list(run_id)))


class LogFileHandler(NbmlHandler):
    """``GET /nbml/api/runs/<id>/logs/<path>?offset=N&limit=M``: text from byte offset N."""

    @tornado.web.authenticated
    async def get(self, run_id: str, path: str) -> None:
        offset = self.int_arg("offset", 0)
        limit = self.int_arg("limit", 1 << 20, 1, MAX_LOG_CHUNK)
        self.send(await self.call(lambda: self.manager.log_chunk(run_id, path, offset, limit)))


class OutputsHandler(NbmlHandler):
    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        self.send(await self.call(lambda: self.manager.output_list(run_id)))


class OutputFileHandler(NbmlHandler):
    """``GET /nbml/api/runs/<id>/outputs/<path>``: the file itself, as a download."""

    @tornado.web.authenticated
    async def get(self, run_id: str, path: str) -> None:
        file = await self.call(lambda: self.manager.output_file(run_id, path))
        mime, _ = mimetypes.guess_type(file.name)
        self.set_header("Content-Type", mime or "application/octet-stream")
        self.set_header("Content-Disposition", f"attachment; filename*=UTF-8''{quote(file.name, safe='')}")
        self.set_header("X-Content-Type-Options", "nosniff")
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                self.write(chunk)
                await self.flush()
        self.finish()


class ExperimentRunsHandler(NbmlHandler):
    """``GET /nbml/api/experiments/<name>/runs?parent=&children=1&since=<version>``: the experiment page's table.

    Answers ``{"version", "unchanged": true}`` when nothing in scope changed since `since`; the full table is
    also sent with an ETag, so a poller that sends If-None-Match gets 304 when it is the same."""

    @tornado.web.authenticated
    async def get(self, name: str) -> None:
        model = await self.call(lambda: self.manager.experiment_runs(
            name,
            parent_id=self.get_argument("parent", None) or None,
            children=self.get_argument("children", "0") in ("1", "true"),
            since=self.get_argument("since", None) or None,
        ))
        self.send(model)


class SeriesHandler(NbmlHandler):
    """``GET /nbml/api/series?metric=loss&run=<id>&run=<id>&after=N``: one metric's points for several runs."""

    @tornado.web.authenticated
    async def get(self) -> None:
        metric = self.get_argument("metric", "")
        runs = list(dict.fromkeys(r for arg in self.get_arguments("run") for r in arg.split(",") if r))
        if not metric or not runs:
            raise tornado.web.HTTPError(400, "Name a metric and at least one run: ?metric=<name>&run=<id>&run=<id>.")
        if len(runs) > MAX_SERIES_RUNS:
            raise tornado.web.HTTPError(400, f"At most {MAX_SERIES_RUNS} runs at once; {len(runs)} were asked for.")
        after = self.int_arg("after", 0)
        self.send(await self.call(lambda: self.manager.series(metric, runs, after)))


class FilesHandler(NbmlHandler):
    """``GET /nbml/api/runs/<id>/files``: outputs (``outputs/...``) and logs, paths relative to the run folder."""

    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        self.send(await self.call(lambda: self.manager.run_files(run_id)))


class PreviewHandler(NbmlHandler):
    """``GET /nbml/api/runs/<id>/preview/<path>``: text head, CSV head as rows, or "image"/"binary"."""

    @tornado.web.authenticated
    async def get(self, run_id: str, path: str) -> None:
        self.send(await self.call(lambda: self.manager.preview(run_id, path)))


class RawFileHandler(NbmlHandler):
    """``GET /nbml/api/runs/<id>/raw/<path>[?download=1]``: a file of the run.

    Shown inline only as an image (PNG, JPEG, GIF, WebP, BMP) or as plain text; anything else (HTML, SVG, ...)
    is an attachment, and every answer is sandboxed, so a file a job wrote never runs as a page of this server.
    """

    @tornado.web.authenticated
    async def get(self, run_id: str, path: str) -> None:
        file = await self.call(lambda: self.manager.run_file(run_id, path))
        image = IMAGE_TYPES.get(file.suffix.lower())
        download = self.get_argument("download", "0") in ("1", "true")
        if image and not download:
            self.set_header("Content-Type", image)
        elif file.suffix.lower() in TEXT_SUFFIXES and not download:
            self.set_header("Content-Type", "text/plain; charset=utf-8")
        else:
            mime, _ = mimetypes.guess_type(file.name)
            self.set_header("Content-Type", mime or "application/octet-stream")
            download = True
        disposition = "attachment" if download else "inline"
        self.set_header("Content-Disposition", f"{disposition}; filename*=UTF-8''{quote(file.name, safe='')}")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "default-src 'none'; sandbox")
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 20):
                self.write(chunk)
                await self.flush()
        self.finish()


class IterationChartsHandler(NbmlHandler):
    """``GET /nbml/api/runs/<id>/iteration-charts``: an AutoML iteration's plotly figures and hyperparameters."""

    @tornado.web.authenticated
    async def get(self, run_id: str) -> None:
        self.send(await self.call(lambda: self.manager.iteration_charts(run_id)))


class CancelHandler(NbmlHandler):
    """``POST /nbml/api/runs/<id>/cancel``: flags the run (and its children) for its supervisor."""

    @tornado.web.authenticated
    async def post(self, run_id: str) -> None:
        self.send(await self.call(lambda: self.manager.cancel(run_id)))


def api_routes(base_url: str) -> list[tuple[str, type[tornado.web.RequestHandler]]]:
    api = url_path_join(base_url, "nbml", "api")
    return [
        (url_path_join(api, "workspace"), WorkspaceHandler),
        (url_path_join(api, "compute"), ComputeHandler),
        (url_path_join(api, "experiments"), ExperimentsHandler),
        (url_path_join(api, "runs"), RunsHandler),
        (url_path_join(api, "runs", _RUN), RunHandler),
        (url_path_join(api, "runs", _RUN, "metrics"), MetricsHandler),
        (url_path_join(api, "runs", _RUN, "children"), ChildrenHandler),
        (url_path_join(api, "runs", _RUN, "logs"), LogsHandler),
        (url_path_join(api, "runs", _RUN, "logs", "(?P<path>.+)"), LogFileHandler),
        (url_path_join(api, "runs", _RUN, "outputs"), OutputsHandler),
        (url_path_join(api, "runs", _RUN, "outputs", "(?P<path>.+)"), OutputFileHandler),
        (url_path_join(api, "runs", _RUN, "cancel"), CancelHandler),
        (url_path_join(api, "runs", _RUN, "files"), FilesHandler),
        (url_path_join(api, "runs", _RUN, "preview", "(?P<path>.+)"), PreviewHandler),
        (url_path_join(api, "runs", _RUN, "raw", "(?P<path>.+)"), RawFileHandler),
        (url_path_join(api, "runs", _RUN, "iteration-charts"), IterationChartsHandler),
        (url_path_join(api, "experiments", "(?P<name>[^/]+)", "runs"), ExperimentRunsHandler),
        (url_path_join(api, "series"), SeriesHandler),
    ]
