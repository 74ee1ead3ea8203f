"""Settings pointing at the tests' real servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from percolate_reading.config import Settings
from tests.servers import NatsServer, SeaweedS3


def settings_for(nats: NatsServer, data_dir: Path, s3: SeaweedS3 | None = None, **overrides: Any) -> Settings:
    """Settings on the real nats-server and SeaweedFS (without `s3`: the local object store
    under `data_dir`), no metrics port, webhooks allowed to reach 127.0.0.1."""
    values: dict[str, Any] = {
        "nats_url": nats.url,
        "data_dir": data_dir,
        "metrics_port": 0,
        "webhook_allow_hosts": "127.0.0.1",
    }
    if s3 is None:
        values["s3_enabled"] = False
    else:
        values.update(
            s3_endpoint=s3.endpoint, s3_access_key=s3.access_key, s3_secret_key=SecretStr(s3.secret_key)
        )
    values.update(overrides)
    return Settings(**values)
