"""The process behind a local web service: ``python -m nbml.models.serve WORKSPACE NAME``.

It serves ``POST /score`` on 127.0.0.1 (and ``GET /`` for health) until it is stopped. Without an entry script
it is the no-code scikit-learn deployment: the body ``{"data": [[...], ...]}`` (optionally ``"method":
"predict_proba"``) answers the model's predictions as a JSON list. With an entry script it follows the Azure
ML convention: ``init()`` once, then ``run(raw_body)`` per request, except that a ``run`` decorated with
inference-schema's ``@input_schema`` receives the parsed JSON body as keyword arguments (``run(data=...)``),
as the SDK's scoring server does; the decorator then converts each to its declared type.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from nbml.store import Store

MAX_BODY = 64 << 20


def _load_scorer(ws_root: Path, models: list[dict[str, Any]], config: dict[str, Any]) -> Callable[[bytes], Any]:
    model_dirs = [Path(m["path"]).parent for m in models]
    os.environ["AZUREML_MODEL_DIR"] = os.environ["NBML_MODEL_DIR"] = str(
        model_dirs[0] if len(model_dirs) == 1 else ws_root / "models")
    os.environ["NBML_WORKSPACE"] = str(ws_root)
    entry = config.get("entry_script")
    if entry:
        source = Path(config.get("source_directory") or Path(entry).parent)
        path = source / entry if not Path(entry).is_absolute() else Path(entry)
        sys.path.insert(0, str(path.parent))
        spec = importlib.util.spec_from_file_location("score", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if hasattr(module, "init"):
            module.init()
        return _entry_caller(module.run)

    import joblib
    import numpy as np

    model = joblib.load(models[0]["path"])

    def score(body: bytes) -> Any:
        payload = json.loads(body or b"{}")
        data = payload.get("data") if isinstance(payload, dict) else payload
        if data is None:
            raise ValueError('send {"data": [[feature, ...], ...]}')
        method = payload.get("method", "predict") if isinstance(payload, dict) else "predict"
        if method not in ("predict", "predict_proba"):
            raise ValueError("method must be 'predict' or 'predict_proba'")
        return getattr(model, method)(np.asarray(data)).tolist()

    return score


def schema_parameters(run: Callable[..., Any]) -> list[str] | None:
    """The input names of a ``run`` decorated with inference-schema's @input_schema; None if it isn't decorated."""
    try:
        from inference_schema.schema_util import get_input_schema, is_schema_decorated
    except ImportError:  # not in the service's environment, so run can't be decorated with it
        return None
    if not is_schema_decorated(run):
        return None
    return list((get_input_schema(run) or {}).get("properties", {}))


def _entry_caller(run: Callable[..., Any]) -> Callable[[bytes], Any]:
    names = schema_parameters(run)
    if names is None:
        return lambda body: run(body.decode())

    def call(body: bytes) -> Any:
        payload = json.loads(body or b"{}")
        if not isinstance(payload, dict):
            raise ValueError(f"send a JSON object with {', '.join(repr(n) for n in names)} (run() declares its "
                             "inputs with @input_schema)")
        return run(**payload)

    return call


def _json_default(value: Any) -> Any:
    """numpy arrays and scalars a run() returns, as JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"run() returned a {type(value).__name__}, which isn't JSON serializable")


def _handler(score: Callable[[bytes], Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, payload: Any) -> None:
            body = (payload if isinstance(payload, str) else json.dumps(payload, default=_json_default)).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(200, {"status": "Healthy"}) if self.path in ("/", "/health") else self._send(404, {})

        def do_POST(self) -> None:
            if self.path.rstrip("/") != "/score":
                self._send(404, {"error": "POST to /score"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._send(413, {"error": f"request body over {MAX_BODY} bytes"})
                return
            try:
                self._send(200, score(self.rfile.read(length)))
            except Exception as exc:
                self._send(400, {"error": f"{type(exc).__name__}: {exc}"})

        def log_message(self, fmt: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} - {fmt % args}\n")

    return Handler


def main(argv: list[str]) -> int:
    ws_root, name = Path(argv[0]), argv[1]
    store = Store(ws_root)
    rec = store.get_service(name)
    if rec is None:
        return 2
    config = json.loads(rec["config_json"])
    models = [store.get_model(*_split(m)) for m in json.loads(rec["models_json"])]
    try:
        score = _load_scorer(ws_root, [m for m in models if m], config)
        server = ThreadingHTTPServer((config.get("host", "127.0.0.1"), int(config.get("port") or 0)), _handler(score))
    except BaseException as exc:
        traceback.print_exc()
        store.update_service(name, state="Failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    store.update_service(name, state="Healthy", port=server.server_address[1], pid=os.getpid(), error=None)
    print(f"serving {name} on http://127.0.0.1:{server.server_address[1]}/score", flush=True)
    server.serve_forever()
    return 0


def _split(model_id: str) -> tuple[str, int]:
    name, _, version = model_id.rpartition(":")
    return name, int(version)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
