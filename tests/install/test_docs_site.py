"""The documentation site's SDK page is generated from nbml's table of SDK paths (scripts/docs_hooks.py).

scripts/test.sh builds the whole site with `mkdocs build --strict`; this checks the generated tables hold
every SDK name the code provides, under the SDK's own module path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from nbml._sdk_paths import MODULES

ROOT = Path(__file__).resolve().parents[2]


def load_hooks():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_sdk_page_lists_every_mapped_name_under_its_sdk_path() -> None:
    hooks = load_hooks()
    page = (ROOT / "docs" / "coming-from-azureml.md").read_text()
    assert hooks.MARKER in page
    text = hooks.on_page_markdown(page, page=None)
    assert hooks.MARKER not in text
    sections = text.split("### ")
    for module, table in MODULES.items():
        sdk = "azureml" + module.removeprefix("nbml")
        section = next(s for s in sections if s.startswith(f"`{sdk}` → `{module}`"))
        for name, target in table.items():
            row = f"| `{name}` | " + ("*Azure-only*" if target.startswith("azure:") else f"`{target.replace(':', '.')}`")
            assert row in section, (module, name)
