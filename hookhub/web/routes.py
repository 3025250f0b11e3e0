"""The provider-facing routes: callbacks, buyers' returns, and the health check."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, make_response, redirect, request, url_for
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .. import metrics, tokens
from ..calls import InboundCall
from ..errors import InvalidRequest, StoreUnavailable
from ..hub import Hub
from ..pipeline import Handled
from ..states import buyer_outcome
from ..store import utcnow
from .errors import json_error, store_unavailable

log = logging.getLogger("hookhub")

bp = Blueprint("hookhub", __name__)

# Accept every common method so that a wrong one is recorded and answered by the pipeline.
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@bp.route("/hooks/<provider>", methods=METHODS)
def callback(provider: str) -> Response:
    return _receive("callback", provider)


@bp.route("/return/<provider>", methods=METHODS)
def buyer_return(provider: str) -> Response:
    return _receive("return", provider)


@bp.before_request
def _store_ready() -> Response | None:
    # Nothing is recorded in a store that cannot be reached or whose schema this hookhub does not
    # know: 503, so the provider retries, and a load balancer takes this host out of rotation.
    if Hub.of(current_app).store_ready():
        return None
    route = _ROUTES.get(request.endpoint or "")
    if route is not None:
        _account(route, (request.view_args or {}).get("provider", ""), None, 503, "store_unavailable", 0.0)
    return store_unavailable()


_ROUTES = {"hookhub.callback": "callback", "hookhub.buyer_return": "return"}


@bp.route("/healthz")
def healthz() -> Response:
    try:
        Hub.of(current_app).store.ping()
    except StoreUnavailable:
        response = jsonify(status="unavailable")
        response.status_code = 503
        return response
    return jsonify(status="ok")


def _read_body(limit: int) -> bytes | None:
    """The raw body, or None when it is larger than ``limit`` bytes."""
    try:
        body = request.get_data(cache=False)
        if request.content_length is None and len(body) >= limit:
            # A body without Content-Length (chunked) is cut at the limit, silently: asking for
            # one byte more raises if anything is left.
            request.stream.read(1)
    except RequestEntityTooLarge:
        return None
    return body


def _receive(route: str, provider: str) -> Response:
    started = time.perf_counter()
    hub = Hub.of(current_app)
    handled: Handled | None = None
    response: Response | None = None
    status, outcome = 500, "internal_error"  # unless something better is known below
    try:
        handled, response = _handle(hub, route, provider)
        status, outcome = response.status_code, handled.outcome
    except StoreUnavailable as exc:
        log.error("store unavailable, answering 503: %s", exc)
        response = store_unavailable()
        status, outcome = 503, "store_unavailable"
    except HTTPException as exc:  # werkzeug's own refusals (a body cut short, say): their status stands
        status, outcome = exc.code or 400, "bad_request"
        raise
    finally:
        # Also when something else escapes (an unexpected error, a worker's timeout): the call is
        # logged and counted, and the error goes on to Flask's handlers or to gunicorn.
        _account(route, provider, handled, status, outcome, time.perf_counter() - started)
    return response


def _handle(hub: Hub, route: str, provider: str) -> tuple[Handled, Response]:
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    body = _read_body(limit)
    call = InboundCall(
        provider=provider, route=route, method=request.method, path=request.path,
        query_string=request.query_string.decode("latin-1"), headers=request.headers, body=body or b"",
        peer=request.remote_addr or "", received_at=utcnow(),
        public_url=current_app.config["HOOKHUB_PUBLIC_URL"],
    )
    if body is None:
        handled = hub.pipeline.refuse(call, InvalidRequest(
            f"the body is larger than {limit} bytes", code="body_too_large", status=413))
    else:
        handled = hub.pipeline.handle(call)
    if handled.refused:
        response = json_error(handled.http_status, handled.outcome, handled.message or "")
        if handled.http_status == 503:
            response.headers["Retry-After"] = "30"
        return handled, response
    if route == "callback":
        assert handled.reply is not None
        return handled, Response(handled.reply.body, handled.reply.status, content_type=handled.reply.content_type)
    return handled, _buyer_answer(hub, handled)


def _account(route: str, provider: str, handled: Handled | None, status: int, outcome: str,
             seconds: float) -> None:
    """One log line and the metrics of one inbound call, whatever became of it; never raises."""
    try:
        # A provider name from the URL is only a label once it is known: a caller cannot add series.
        known = provider if Hub.of(current_app).registry.get(provider) is not None else "unknown"
        metrics.observe_call(known, route, outcome, handled.refused if handled else True, seconds)
        transaction = (handled.event.transaction_id if handled.event else handled.reference) if handled else None
        fields = {"provider": known, "route": route, "method": request.method, "outcome": outcome,
                  "status": status, "transaction": transaction or None, "latency_ms": round(seconds * 1000, 1)}
        log.log(logging.WARNING if status >= 500 else logging.INFO, "%s %s %s -> %d %s transaction=%s %.1f ms",
                known, route, request.method, status, outcome, transaction or "-", fields["latency_ms"],
                extra={"hookhub": fields})
    except Exception:  # the answer matters more than its log line
        log.exception("could not account for an inbound call")


def _buyer_answer(hub: Hub, handled: Handled) -> Response:
    try:
        custom = hub.hooks.return_response(handled.event, request)
    except Exception:  # a broken merchant hook must not strand the buyer on an error page
        log.exception("hookhub_return_response failed; using the default redirect")
        custom = None
    if custom is not None:
        return private(make_response(custom))
    event = handled.event
    # A payment's amount is what was authorized (or paid at once); a decline's, what was asked.
    amount = ((event.totals or {}).get("authorized") or event.amount) if event is not None else None
    token = tokens.issue(current_app.config["SECRET_KEY"], event_id=event.id if event else None,
                         order_id=handled.order, provider=handled.provider,
                         status=handled.status, amount=amount, currency=event.currency if event else None,
                         transaction_id=event.transaction_id if event else None, nonce=handled.nonce)
    page = buyer_outcome(handled.status)
    base = current_app.config[f"HOOKHUB_{page.upper()}_URL"] or url_for("pages.result", page=page)
    separator = "&" if "?" in base else "?"
    return private(redirect(f"{base}{separator}{urlencode({'result': token})}", 303))


def private(response: Response) -> Response:
    """``response`` kept out of caches and of the next page's ``Referer``: it holds a result token."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
