"""gunicorn's own lines (workers booting and exiting, timeouts, signals) in the service's log format.

With ``[logging] format = json`` a log shipper would otherwise meet gunicorn's text lines among the
JSON ones; with the text format, they would not carry the service's fields either. ``hpc-wps serve``
names this class with ``--logger-class``; it does the same for a gunicorn run by hand.
"""

from __future__ import annotations

from typing import Any

from gunicorn import glogging

from app.settings import load_settings
from scheduler.logs import configure_logging


class ServiceLogger(glogging.Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        configure_logging(load_settings().logging)
        for handler in list(self.error_log.handlers):  # the root logger's handler writes them instead
            self.error_log.removeHandler(handler)
        self.error_log.propagate = True
