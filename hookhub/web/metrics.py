"""``GET /metrics``: hookhub's metrics in Prometheus' text format, optionally behind a bearer token.

The delivery gauges are read from the store at each scrape, so every worker, and every host, gives
the same figures; the counters come from this process, or from every worker's files under
``PROMETHEUS_MULTIPROC_DIR``.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Iterator, Sequence
from datetime import datetime

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from ..hub import Hub
from ..metrics import REGISTRY
from ..store import Store, utcnow
from .errors import json_error

log = logging.getLogger("hookhub")

class _StoreFigures:
    """Delivery and reconciliation gauges read from the store at each scrape."""

    def __init__(self, store: Store, handlers: Sequence[str]):
        self.store = store
        self.handlers = handlers  # each gets its series, 0 until it has a delivery waiting

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("hookhub_store_up", "1 when the store answered this scrape.")
        try:
            counts = self.store.delivery_counts(("pending", "dead"))  # done ones can be millions
            oldest = self.store.oldest_pending_delivery()
            accepted, oldest_accepted = self.store.accepted_backlog()
        except Exception:  # unreachable, or not yet at the schema: the counters still get scraped
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        deliveries = GaugeMetricFamily("hookhub_deliveries", "Deliveries waiting (pending) or given up on (dead).",
                                       labels=["handler", "status"])
        handlers = sorted({*self.handlers, *(handler for handler, _ in counts)})
        for handler in handlers:
            for status in ("pending", "dead"):
                deliveries.add_metric([handler, status], counts.get((handler, status), 0))
        yield deliveries
        yield _age("hookhub_oldest_pending_delivery_age_seconds",
                   "How long ago the event of the longest-waiting pending delivery was received (0 when none waits).",
                   oldest)
        backlog = GaugeMetricFamily("hookhub_accepted_calls",
                                    "Callbacks answered on record and not yet reconciled into their events.")
        backlog.add_metric([], accepted)
        yield backlog
        yield _age("hookhub_oldest_accepted_call_age_seconds",
                   "How long ago the oldest callback still waiting for its reconciliation was received "
                   "(0 when none waits).", oldest_accepted)


def _age(name: str, documentation: str, since: datetime | None) -> GaugeMetricFamily:
    """A gauge of the seconds since ``since``, 0 when there is nothing to be that old."""
    gauge = GaugeMetricFamily(name, documentation)
    gauge.add_metric([], max(0.0, (utcnow() - since).total_seconds()) if since else 0.0)
    return gauge


class _ThisProcess:
    def collect(self) -> Iterator[Metric]:
        return REGISTRY.collect()


def exposition(store: Store, handlers: Sequence[str] = ()) -> bytes:
    """The metrics in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())  # type: ignore[arg-type]
    registry.register(_StoreFigures(store, handlers))  # type: ignore[arg-type]
    return generate_latest(registry)


bp = Blueprint("metrics", __name__)


@bp.route("/metrics")
def metrics() -> Response:
    token = current_app.config["HOOKHUB_METRICS_TOKEN"]
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            response = json_error(401, "unauthorized", "send Authorization: Bearer <token>")
            response.headers["WWW-Authenticate"] = 'Bearer realm="hookhub metrics"'
            return response
    try:
        hub = Hub.of(current_app)
        text = exposition(hub.store, list(hub.handlers))
    except Exception:  # the metrics' own files unreadable, say: a clear 503, never a 500
        log.exception("metrics cannot be read")
        return json_error(503, "metrics_unavailable", "the metrics cannot be read now; see the server's log")
    return Response(text, content_type=CONTENT_TYPE_LATEST)
