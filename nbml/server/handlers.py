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

from nbml.server.files import UnsafePath
from nbml.server.manager import NbmlManager, RunMissing

T = TypeVar("T")

MAX_LIMIT = 500
MAX_LOG_CHUNK = 4 << 20
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
    ]
