"""One `percolate-reading serve` (a real child process: private nats-server, local storage,
RocksDB job state) shared by the tests of a module: the client, CLI and web UI tests talk to
it as a user would. Import `live_serve` into a test module to use it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import free_port
from tests.service.cli.test_serve import Serve, clean_env

WEBHOOK_SECRET = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


@dataclass
class LiveServe:
    url: str
    api_key: str
    data_dir: Path
    proc: Serve


@pytest.fixture(scope="module")
def live_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServe]:
    data_dir = tmp_path_factory.mktemp("serve") / "state"
    port = free_port()
    env = clean_env()
    # No key configured: serve makes one and saves it in its data dir, as for a new user.
    # Webhooks to the test's own receiver on loopback, signed with a known secret.
    env["PERCOLATE_READING_WEBHOOK_ALLOW_HOSTS"] = "127.0.0.1"
    env["PERCOLATE_READING_WEBHOOK_DEFAULT_SECRET"] = WEBHOOK_SECRET
    proc = Serve(data_dir, port, env)
    try:
        proc.wait_for_line("serving on")
        key = proc.wait_for_line("API key").rsplit(":", 1)[1].strip()
        saved = proc.wait_for_line("saved in")
        assert str(data_dir / "dev-api-key") in saved, saved
        assert (data_dir / "dev-api-key").read_text().strip() == key
        yield LiveServe(f"http://127.0.0.1:{port}", key, data_dir, proc)
    finally:
        proc.close(data_dir)
