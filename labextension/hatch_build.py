"""Build function for hatch-jupyter-builder: builds the labextension during ``pip install``.

It points the JupyterLab builder at the core package file of the jupyterlab installed in the build
environment (``[build-system] requires``), so the extension is built against exactly that JupyterLab
and the build reaches nothing but the npm registry, then runs hatch-jupyter-builder's npm builder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def build_labextension(target_name: str, version: str, **kwargs: Any) -> None:
    """Run ``jlpm install`` and ``jlpm run <build_cmd>`` in ``labextension/``."""
    from hatch_jupyter_builder import npm_builder

    try:
        import jupyterlab
    except ImportError:  # the builder then resolves the core packages itself
        pass
    else:
        core = Path(jupyterlab.__file__).parent / "staging" / "package.json"
        if core.is_file():
            os.environ.setdefault("NBML_CORE_PACKAGE_FILE", str(core))
    npm_builder(target_name, version, **kwargs)
