"""Log output: one line per record, as text or, with ``HOOKHUB_LOG_FORMAT=json``, as a JSON object.

hookhub logs through the ``hookhub`` logger. When nothing has configured logging (gunicorn leaves
the root logger bare), hookhub gives that logger its own handler on stderr and stops propagation;
inside an application that configured logging first, records propagate to its handlers instead,
in its format. Records pass the hub's secret filter on the ``hookhub`` logger, and also on
hookhub's handler, which catches its child loggers' records too.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger("hookhub")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the call's fields, any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        fields = getattr(record, "hookhub", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


TEXT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def configure(config: dict[str, Any], secret_filter: logging.Filter) -> None:
    """Apply ``HOOKHUB_LOG_LEVEL`` and ``HOOKHUB_LOG_FORMAT`` (``config.read`` checked both)."""
    level = logging.getLevelName(config["HOOKHUB_LOG_LEVEL"])
    form = config["HOOKHUB_LOG_FORMAT"]
    log.setLevel(level)
    handler = next((h for h in log.handlers if getattr(h, "hookhub", False)), None)
    if handler is None:
        if logging.getLogger().handlers:
            return  # the application configured logging: hookhub's records go to its handlers
        handler = logging.StreamHandler(sys.stderr)
        handler.hookhub = True  # type: ignore[attr-defined]
        log.addHandler(handler)
        # This handler is hookhub's output now: a root handler added later must not print each line again.
        log.propagate = False
    handler.setFormatter(JsonFormatter() if form == "json" else TEXT)
    # Records of hookhub's child loggers pass here too, and the logger's own filter does not see them.
    handler.addFilter(secret_filter)


def forget(secret_filter: logging.Filter) -> None:
    """Detach a closed hub's filter from the handler."""
    for handler in log.handlers:
        handler.removeFilter(secret_filter)
