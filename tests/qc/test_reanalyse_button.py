"""The dataset page's Re-analyse button: POSTs the chosen model versions to the ingest API.

The ingest API's own endpoint is tested in ``tests/services/test_reanalyse.py`` with Redis and
workers; here a small HTTP server on 127.0.0.1 stands in for it and records what it got.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from qc_helpers import AUTH, TOKEN, settings_for

from overnight_qc.app import create_app

HTML = {"Accept": "text/html"}
ORIGIN = {"Origin": "http://testserver"}


class IngestStandIn(BaseHTTPRequestHandler):
    """``GET /models``, ``GET /datasets/{id}`` and ``POST /datasets/{id}/reanalyse``."""

    posts: list[tuple[str, str, dict]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/models":
            versions = [{"version": "cells-ft-1"}, {"version": "cells-ft-2"}]
            self._answer(200, [{"name": "cells", "versions": versions}])
        else:
            self._answer(404, {"detail": "no such dataset"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.posts.append((self.path, self.headers.get("Authorization", ""), body))
        answer = {
            "id": "run1-r1",
            "reanalysis_of": "run1",
            "models": body.get("models", {}),
            "created": True,
            "enqueued": 6,
            "n_images": 6,
        }
        self._answer(202, answer)

    def _answer(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def ingest() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), IngestStandIn)
    IngestStandIn.posts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_button_is_hidden_without_an_ingest_api(client: TestClient) -> None:
    page = client.get("/datasets/run1", headers=HTML).text
    assert 'id="reanalyse"' not in page


def test_reanalyse_posts_the_chosen_versions(dataset_dir: Path, ingest: str) -> None:
    with TestClient(create_app(settings_for(dataset_dir, ingest_url=ingest))) as client:
        page = client.get("/datasets/run1", headers=HTML).text
        assert 'id="reanalyse"' in page and '<option value="cells-ft-2">' in page
        form = {"cells": "cells-ft-2", "pnp": "default"}
        assert client.post("/datasets/run1/reanalyse", data=form).status_code == 401
        answer = client.post("/datasets/run1/reanalyse", data=form, headers=AUTH)
        assert answer.status_code == 200 and answer.json()["ok"]
        assert (
            "run1-r1: 6 image(s) queued with cells cells-ft-2, pnp default"
            in (answer.json()["message"])
        )
        refused = client.post(
            "/datasets/run1/reanalyse", data={"cells": "../x", "pnp": "latest"}, headers=AUTH
        )
        assert refused.status_code == 422
        signed = client.post(
            "/login", data={"name": "Ana", "token": TOKEN}, headers=ORIGIN, follow_redirects=False
        )
        assert signed.status_code == 303
        from_page = client.post(
            "/datasets/run1/reanalyse",
            data=form,
            headers={**HTML, **ORIGIN},
            follow_redirects=False,
        )
        assert from_page.status_code == 303
        assert from_page.headers["location"].startswith("/datasets/run1?notice=re-analysis")
    sent = ("/datasets/run1/reanalyse", f"Bearer {TOKEN}", {"models": form})
    assert IngestStandIn.posts == [sent, sent]
