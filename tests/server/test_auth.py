"""No endpoint answers without Jupyter's authentication."""

from __future__ import annotations

from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from .conftest import Seeded

RUN = Seeded.completed
API = [
    ("GET", ("workspace",)),
    ("GET", ("compute",)),
    ("GET", ("experiments",)),
    ("GET", ("runs",)),
    ("GET", ("runs", RUN)),
    ("GET", ("runs", RUN, "metrics")),
    ("GET", ("runs", RUN, "children")),
    ("GET", ("runs", RUN, "logs")),
    ("GET", ("runs", RUN, "logs", "nbml-logs/driver_log.txt")),
    ("GET", ("runs", RUN, "outputs")),
    ("GET", ("runs", RUN, "outputs", "model/model.pkl")),
    ("POST", ("runs", RUN, "cancel")),
    ("GET", ("runs", RUN, "files")),
    ("GET", ("runs", RUN, "preview", "outputs/model/model.pkl")),
    ("GET", ("runs", RUN, "raw", "outputs/model/model.pkl")),
    ("GET", ("runs", RUN, "iteration-charts")),
    ("GET", ("experiments", "exp-a", "runs")),
    ("GET", ("series",)),
]


def test_every_route_is_in_the_list() -> None:
    from nbml.server.handlers import api_routes

    assert len(api_routes("/")) == len(API)


@pytest.mark.parametrize(("method", "parts"), API)
async def test_api_refuses_calls_without_a_token(jp_fetch: Any, seeded: Seeded, method: str,
                                                 parts: tuple[str, ...]) -> None:
    body = "" if method == "POST" else None
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("nbml", "api", *parts, method=method, body=body, headers={"Authorization": ""})
    assert exc.value.code in (401, 403)


@pytest.mark.parametrize(("method", "parts"), API)
async def test_api_refuses_a_wrong_token(jp_fetch: Any, seeded: Seeded, method: str, parts: tuple[str, ...]) -> None:
    body = "" if method == "POST" else None
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("nbml", "api", *parts, method=method, body=body, headers={"Authorization": "token wrong"})
    assert exc.value.code in (401, 403)


async def test_run_page_sends_an_unauthenticated_browser_to_login(jp_fetch: Any, seeded: Seeded) -> None:
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("nbml", "runs", RUN, headers={"Authorization": ""}, follow_redirects=False)
    assert exc.value.code in (302, 401, 403)
    if exc.value.code == 302:
        assert "/login" in exc.value.response.headers["Location"]


def _cookies(response: Any) -> dict[str, str]:
    jar: dict[str, str] = {}
    for header in response.headers.get_list("Set-Cookie"):
        name, _, rest = header.partition("=")
        jar[name] = rest.split(";", 1)[0]
    return jar


async def test_cancel_from_a_browser_session_needs_the_xsrf_token(jp_fetch: Any, jp_serverapp: Any,
                                                                   seeded: Seeded) -> None:
    """A cross-site form post carries the browser's login cookie but not the _xsrf token: refused."""
    login_page = await jp_fetch("login", headers={"Authorization": ""})
    jar = _cookies(login_page)
    token = jp_serverapp.identity_provider.token
    logged_in = await jp_fetch(
        "login", method="POST", body=f"password={token}&_xsrf={jar['_xsrf']}", follow_redirects=False,
        raise_error=False, headers={"Authorization": "", "Cookie": f"_xsrf={jar['_xsrf']}"},
    )
    jar.update(_cookies(logged_in))
    assert any(name.startswith("username-") for name in jar), "login did not set a session cookie"
    cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("nbml", "api", "runs", RUN, "cancel", method="POST", body="",
                       headers={"Authorization": "", "Cookie": cookie})
    assert exc.value.code == 403
    allowed = await jp_fetch("nbml", "api", "runs", RUN, "cancel", method="POST", body="",
                             headers={"Authorization": "", "Cookie": cookie, "X-XSRFToken": jar["_xsrf"]})
    assert allowed.code == 200
