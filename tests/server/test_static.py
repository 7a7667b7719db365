"""/nbml/static/plotly-widgetbundle.js: the bundle RunDetails' chart loader imports, behind Jupyter's auth."""

from __future__ import annotations

from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from nbml.widgets._plotly import bundle_path


async def test_bundle_is_served_as_javascript(jp_fetch: Any) -> None:
    answer = await jp_fetch("nbml", "static", "plotly-widgetbundle.js")
    assert answer.code == 200
    assert answer.headers["Content-Type"].startswith("text/javascript")
    assert answer.body == bundle_path().read_bytes()


async def test_bundle_needs_authentication(jp_fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as exc:  # a page route: unauthenticated, it sends the browser to log in
        await jp_fetch("nbml", "static", "plotly-widgetbundle.js", headers={"Authorization": ""},
                       follow_redirects=False)
    assert exc.value.code in (302, 401, 403)
    if exc.value.code == 302:
        assert "login" in exc.value.response.headers["Location"]
