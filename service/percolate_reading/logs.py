"""The one logging set-up of every process (gateway, worker, serve).

The operator is left out: kopf configures its own logging, and a second root handler would
print every line twice.
"""

from __future__ import annotations

import logging

from percolate_reading.config import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(settings: Settings) -> None:
    """Log to stderr at `settings.log_level`. Idempotent: a second call changes nothing."""
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
