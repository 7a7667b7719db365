"""The run page at /nbml/runs/<run_id>."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from nbml.store import Store

from .conftest import Seeded


async def test_run_page_shows_what_run_details_shows(jp_fetch: Any, seeded: Seeded) -> None:
    html = (await jp_fetch("nbml", "runs", seeded.completed)).body.decode()
    assert seeded.completed in html and "Completed" in html
    assert "accuracy" in html and '"series": ["accuracy"]' in html  # the series the page's script charts
    assert "époque 2 &lt;done&gt;" in html  # the driver log, escaped
    assert 'data-path="outputs/model/model.pkl"' in html  # in the file tree
    assert '"is_terminal": true' in html and "live-note" not in html  # a finished run's page stays still


async def test_active_run_page_reloads_and_lists_children(jp_fetch: Any, seeded: Seeded) -> None:
    html = (await jp_fetch("nbml", "runs", seeded.automl)).body.decode()
    assert '"is_terminal": false' in html and "live-note" in html  # the script polls while it runs
    for child in seeded.children:
        assert f"/nbml/runs/{child}" in html


async def test_everything_from_the_store_is_html_escaped(jp_fetch: Any, workspace_dir: Path) -> None:
    store = Store(workspace_dir)
    evil = "<script>alert(1)</script>"
    store.insert_run("evil_1", f"exp{evil}", "script", "local", {}, display_name=evil)
    store.set_tags("evil_1", {evil: evil})
    store.log_metric("evil_1", evil, "scalar", evil)
    store.set_status("evil_1", "Failed", error=evil)
    logs = workspace_dir / "runs" / "evil_1" / "logs"
    logs.mkdir(parents=True)
    (logs / "a.txt").write_text(evil)
    html = (await jp_fetch("nbml", "runs", "evil_1")).body.decode()
    assert "<script>" not in html  # only the page's own <script src=...> and its JSON data block
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5
    data = html.split('id="nbml-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data  # Jinja's tojson escapes < > & inside the data block


async def test_unknown_run_page_answers_404(jp_fetch: Any, seeded: Seeded) -> None:
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("nbml", "runs", "no-such-run")
    assert exc.value.code == 404
