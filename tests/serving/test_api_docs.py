"""/docs (Swagger UI) and /redoc load every file from the server itself, so they work with no
network: no http(s) address in the pages, and each script or style they name is served
with its type. tests/serving/test_page.py renders /docs in a browser with the network cut."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from fedrec.serving.api_docs import ASSETS
from tests.serving.conftest import running


@pytest.fixture(scope="module")
def server(releases, server_logs):
    yield from running(releases("itemknn"), server_logs / "api_docs.log", kind="itemknn", api_key="docs-key-0b7d")


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_only_files_this_server_serves(server, page):
    reply = server.client.get(page)
    links = Links()
    links.feed(reply.text)

    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
    assert "http://" not in reply.text and "https://" not in reply.text and "//" not in "".join(links.urls)
    assert links.urls and all(url.startswith("/") for url in links.urls), links.urls
    for url in links.urls:
        asset = server.client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].split(";")[0] in ("text/javascript", "text/css", "image/svg+xml"), url


def test_the_docs_files_are_open_without_the_key_and_nothing_else_is_served(server):
    for name, kind in ASSETS.items():
        reply = server.client.get(f"/docs/assets/{name}")
        assert reply.status_code == 200 and reply.headers["content-type"].startswith(kind) and len(reply.content) > 100_000

    assert server.client.get("/docs/assets/favicon.png").status_code == 404
    assert server.client.get("/docs/assets/..%2F__init__.py").status_code == 404
    assert "/recommend" in server.client.get("/openapi.json").json()["paths"]
