"""mkdocs hook: fills docs/coming-from-azureml.md with the SDK → nbml tables from nbml/_sdk_paths.py.

Generated at build time from the table the code itself uses, so the page can't drift from what nbml provides.
"""

from __future__ import annotations

from typing import Any

MARKER = "<!-- nbml:sdk-paths -->"


def sdk_tables() -> str:
    from nbml._sdk_paths import MODULES

    parts = []
    for module in sorted(MODULES):
        table = MODULES[module]
        sdk = "azureml" + module.removeprefix("nbml")
        parts.append(f"### `{sdk}` → `{module}`\n")
        if not table:
            parts.append("The module imports; its names are in its submodules below.\n")
            continue
        parts.append("| Name | nbml |\n|------|------|")
        for name in sorted(table):
            target = table[name]
            where = "*Azure-only*" if target.startswith("azure:") else f"`{target.replace(':', '.')}`"
            parts.append(f"| `{name}` | {where} |")
        parts.append("")
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, sdk_tables())
    return markdown
