"""What the benchmarks share: where a report goes, and the environment of a percolate-reading
process on the servers a benchmark starts (tests/servers.py)."""

from __future__ import annotations

from pathlib import Path

from tests.harness.worker_process import process_env
from tests.servers import NatsServer, SeaweedS3

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def publish(report: str, out: Path) -> None:
    """Print the report and write it to `out` (by default under bench/results)."""
    print(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report if report.endswith("\n") else report + "\n")
    print(f"written to {out}")


def service_env(
    nats: NatsServer, s3: SeaweedS3, port: int, data_dir: Path, api_key: str, **settings: str
) -> dict[str, str]:
    """A gateway or worker process on 127.0.0.1:`port` with a development API key, logging
    warnings only; `settings` are further fields by name (`max_active_jobs="1000"`)."""
    return process_env(
        nats,
        s3,
        data_dir,
        dev_api_key=api_key,
        host="127.0.0.1",
        port=str(port),
        log_level="WARNING",
        **settings,
    )
