"""The Spark driver's entry point: ``spark-submit [options] .../_spark_main.py SCRIPT ARGS...``.

spark-submit starts the driver's Python on this file (from the nbml copy the SSH backend keeps on the host).
It runs the user's script as ``__main__``, exactly as ``spark-submit SCRIPT`` would (same ``sys.argv``,
``sys.path[0]`` and working directory), and watches, from a daemon thread, for the SparkContext the script
creates: once it runs, its application id and Spark UI address go to the run as properties (an event in
``events.jsonl``) and to ``.nbml/spark_app.json``, where cancelling reads the id to kill a YARN application.
The id is asked of the SparkContext rather than parsed from spark-submit's log: local mode never logs it.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import threading
import time
from typing import Any

APP_FILE = ".nbml/spark_app.json"
APP_ID = "spark_application_id"
UI_URL = "spark_ui_url"


def _context() -> Any:
    """The running SparkContext, once its JVM side exists (None before)."""
    pyspark = sys.modules.get("pyspark")
    cls = getattr(pyspark, "SparkContext", None)
    sc = getattr(cls, "_active_spark_context", None)
    return sc if sc is not None and getattr(sc, "_jsc", None) is not None else None


def record(job_dir: str, app_id: str, ui_url: str | None) -> None:
    from nbml.runs.events import EventWriter

    props = {APP_ID: app_id}
    if ui_url:
        props[UI_URL] = ui_url
    tmp = os.path.join(job_dir, APP_FILE + ".tmp")
    with open(tmp, "w") as fh:
        json.dump({"application_id": app_id, "ui_url": ui_url}, fh)
    os.replace(tmp, os.path.join(job_dir, APP_FILE))
    writer = EventWriter(os.path.join(job_dir, "events.jsonl"))
    try:
        writer.write({"type": "properties", "props": props})
    finally:
        writer.close()


def _watch(job_dir: str) -> None:
    while True:
        sc = _context()
        if sc is not None:
            try:
                app_id = str(sc.applicationId)
            except Exception:  # still starting
                time.sleep(0.2)
                continue
            try:
                ui_url = sc.uiWebUrl
            except Exception:  # spark.ui.enabled=false
                ui_url = None
            record(job_dir, app_id, ui_url)
            print(f"nbml: Spark application {app_id}" + (f", Spark UI at {ui_url}" if ui_url else ""), flush=True)
            return
        time.sleep(0.2)


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: spark-submit [options] _spark_main.py SCRIPT [ARGS...]")
    script = os.path.abspath(argv[0])
    job_dir = os.environ.get("NBML_JOB_DIR") or os.getcwd()
    threading.Thread(target=_watch, args=(job_dir,), name="nbml-spark-app", daemon=True).start()
    sys.argv = list(argv)
    sys.path[0] = os.path.dirname(script)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
