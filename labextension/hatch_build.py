"""Build function for hatch-jupyter-builder: builds the labextension during ``pip install``.

It points the JupyterLab builder at the core package file of the jupyterlab installed in the build
environment (``[build-system] requires``), so the extension is built against exactly that JupyterLab
and the build reaches nothing but the npm registry, then runs hatch-jupyter-builder's npm builder.
A build newer than every source file is kept, so a wheel built from the sdist needs no Node.js.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

SOURCES = ("src", "style", "schema", "package.json", "yarn.lock", "tsconfig.json", ".yarnrc.yml")
OUTPUT = Path("nbml", "labextension", "package.json")


def _newest(path: Path) -> float:
    if path.is_file():
        return path.stat().st_mtime
    return max((p.stat().st_mtime for p in path.rglob("*") if p.is_file()), default=0.0)


def is_current(package: Path, output: Path) -> bool:
    """Whether `output` (the built extension's package.json) is newer than every source file."""
    if not output.is_file():
        return False
    built = output.stat().st_mtime
    return all(_newest(package / name) <= built for name in SOURCES if (package / name).exists())


def build_labextension(target_name: str, version: str, **kwargs: Any) -> None:
    """Run ``jlpm install`` and ``jlpm run <build_cmd>`` in ``labextension/`` unless the build is current."""
    from hatch_jupyter_builder import npm_builder

    package = Path(kwargs.get("path", "labextension"))
    if is_current(package, OUTPUT):
        logging.getLogger(__name__).info("nbml: %s is newer than the sources; not rebuilding", OUTPUT.parent)
        return
    try:
        import jupyterlab
    except ImportError:  # the builder then resolves the core packages itself
        pass
    else:
        core = Path(jupyterlab.__file__).parent / "staging" / "package.json"
        if core.is_file():
            os.environ.setdefault("NBML_CORE_PACKAGE_FILE", str(core))
    npm_builder(target_name, version, **kwargs)
