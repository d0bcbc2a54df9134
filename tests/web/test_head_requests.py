"""HEAD is answered as GET without its body (RFC 9110 9.3.2): an uptime check or a balancer's
probe of a page gets the page's status and headers, where it met a 405 on every page."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.mark.parametrize("path", ["/", "/masuk", "/pengumuman", "/healthz", "/static/site.css"])
async def test_head_has_the_get_answer_without_its_body(http, path):
    got = await http.get(path)
    head = await http.head(path)

    assert got.status_code == 200 and got.content, (path, got.status_code)
    assert head.status_code == 200, (path, head.status_code, head.text[:200])
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))
    assert head.headers.get("content-security-policy") == got.headers.get("content-security-policy")


async def test_head_is_refused_where_get_is(http):
    """A route that takes no GET takes no HEAD either, and an address that serves nothing is a
    404 by HEAD as by GET: HEAD reaches nothing a GET cannot."""
    assert (await http.head("/keluar")).status_code == (await http.get("/keluar")).status_code
    assert (await http.head("/keluar")).status_code == 405
    assert (await http.head("/tidak-ada")).status_code == 404
    assert (await http.head("/tidak-ada")).content == b""
