"""The interactive docs need nothing but the gateway: every script and stylesheet that /docs and
/redoc load is served by the gateway itself (no CDN), so they work with no internet."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


@pytest.mark.parametrize(
    ("page", "script", "marker"),
    [("/docs", "swagger-ui-bundle.js", "SwaggerUIBundle"), ("/redoc", "redoc", "Redoc")],
)
async def test_docs_pages_load_every_asset_from_the_gateway(
    http: httpx.AsyncClient, page: str, script: str, marker: str
):
    html = await http.get(page)
    assert html.status_code == 200
    assert "cdn." not in html.text and "fonts.googleapis" not in html.text
    parser = _Assets()
    parser.feed(html.text)
    assert any(script in url for url in parser.urls), parser.urls
    if page == "/docs":
        assert any(url.endswith(".css") for url in parser.urls), parser.urls
    for url in parser.urls:
        # Relative to the gateway: no other host is ever asked.
        assert not urlsplit(url).netloc, url
        asset = await http.get(url)
        assert asset.status_code == 200, url
        if url.endswith(".js"):
            assert "javascript" in asset.headers["content-type"]
            assert marker in asset.text
        elif url.endswith(".css"):
            assert asset.headers["content-type"].startswith("text/css")
            assert ".swagger-ui" in asset.text
    assert "/openapi.json" in html.text  # the document the page renders, from the gateway too
    spec = await http.get("/openapi.json")
    assert spec.status_code == 200 and "/api/v1/runs" in spec.json()["paths"]
