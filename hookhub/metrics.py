"""The Prometheus metrics hookhub counts as it works; ``hookhub.web.metrics`` serves them.

Counters and histograms are kept per process. With ``PROMETHEUS_MULTIPROC_DIR`` set (``hookhub
serve`` sets it), prometheus_client keeps each worker's in files there and a scrape of any worker
adds them all up.

Label values come from hookhub's own vocabulary (registered provider names, outcome codes, handler
plugin names), never from what a caller sent, so no caller can grow the number of series.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec

from prometheus_client import CollectorRegistry, Counter, Histogram

P = ParamSpec("P")

REGISTRY = CollectorRegistry(auto_describe=True)

INBOUND_CALLS = Counter("hookhub_inbound_calls", "Inbound calls answered, by provider, route and outcome.",
                        ["provider", "route", "outcome"], registry=REGISTRY)
INBOUND_SECONDS = Histogram("hookhub_inbound_call_seconds", "Time to answer an inbound call.",
                            ["provider", "route"], registry=REGISTRY,
                            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
VERIFICATION_FAILURES = Counter("hookhub_verification_failures",
                                "Calls and background re-checks that could not be verified, by reason.",
                                ["provider", "reason"], registry=REGISTRY)
DEDUPE_HITS = Counter("hookhub_dedupe_hits", "Verified calls that changed nothing: a duplicate or a stale state.",
                      ["provider", "route"], registry=REGISTRY)
PROVIDER_API_SECONDS = Histogram("hookhub_provider_api_seconds", "Time for one request to a provider's API.",
                                 ["provider"], registry=REGISTRY,
                                 buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
PROVIDER_API_ERRORS = Counter("hookhub_provider_api_errors",
                              "Requests to a provider's API that failed: timeout, connection, or an HTTP "
                              "status of 400 or more.", ["provider", "reason"], registry=REGISTRY)
HANDLER_SECONDS = Histogram("hookhub_handler_seconds", "Time one handler took on one event.", ["handler"],
                            registry=REGISTRY, buckets=(0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120))
HANDLER_FAILURES = Counter("hookhub_handler_failures", "Delivery attempts that raised or timed out.",
                           ["handler"], registry=REGISTRY)

log = logging.getLogger("hookhub")
_complained = False


def _never_raises(record: Callable[P, None]) -> Callable[P, None]:
    """Counting must never cost a payment: a metric that cannot be written (its multiprocess
    directory gone, say) is logged once and skipped."""

    @functools.wraps(record)
    def safely(*args: P.args, **kwargs: P.kwargs) -> None:
        global _complained
        try:
            record(*args, **kwargs)
        except Exception:
            if not _complained:
                _complained = True
                log.exception("metrics cannot be recorded; going on without them")

    return safely


@_never_raises
def api_request(provider: str, seconds: float, error: str | None) -> None:
    """One request to a provider's API; ``error`` is timeout, connection or http_<status>, if any."""
    PROVIDER_API_SECONDS.labels(provider).observe(seconds)
    if error:
        PROVIDER_API_ERRORS.labels(provider, error).inc()


@_never_raises
def handler_attempt(handler: str, seconds: float) -> None:
    HANDLER_SECONDS.labels(handler).observe(seconds)


@_never_raises
def handler_failed(handler: str) -> None:
    HANDLER_FAILURES.labels(handler).inc()


@_never_raises
def verification_failed(provider: str, reason: str) -> None:
    VERIFICATION_FAILURES.labels(provider, reason).inc()


# Outcomes that are not about the call's verification: the store, hookhub itself, a wrong route.
_NOT_VERIFICATION = frozenset({"store_unavailable", "internal_error", "unknown_provider", "method_not_allowed"})


@_never_raises
def observe_call(provider: str, route: str, outcome: str, refused: bool, seconds: float) -> None:
    """Count one answered inbound call; ``provider`` must be a registered name or ``unknown``."""
    INBOUND_CALLS.labels(provider, route, outcome).inc()
    INBOUND_SECONDS.labels(provider, route).observe(seconds)
    if outcome in ("duplicate", "stale"):
        DEDUPE_HITS.labels(provider, route).inc()
    elif refused and outcome not in _NOT_VERIFICATION:
        VERIFICATION_FAILURES.labels(provider, outcome).inc()
