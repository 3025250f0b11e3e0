"""A fast local fake of MonCash's REST API for the benchmark: the two routes a verification uses.

The paths, credentials checks and answer shapes follow MonCash's API document, as the test fake
does, but this one is a bare WSGI app so that it costs the machine little beside hookhub:

- ``POST /Api/oauth/token``: HTTP Basic ``client_id:client_secret`` and the form fields
  ``grant_type=client_credentials`` and ``scope=read,write``; a bearer token living 59 seconds.
- ``POST /Api/v1/RetrieveTransactionPayment`` ``{"transactionId": ...}`` with a valid bearer token:
  every all-digit transaction id is a successful payment of 1234.50 HTG for order ``order-<id>``;
  anything else is MonCash's 404.
- ``GET /_stats`` (the benchmark's own): how many tokens and retrievals were asked for.

Run it in one process (gunicorn ``-w 1``, threads as needed) so that the counts are whole.
"""

import base64
import json
import os
import threading
import time
import uuid
from urllib.parse import parse_qs

CLIENT_ID = os.environ.get("HOOKHUB_MONCASH_CLIENT_ID", "bench-client")
CLIENT_SECRET = os.environ.get("HOOKHUB_MONCASH_CLIENT_SECRET", "bench-secret")
BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
TOKEN_LIFETIME = 59

_lock = threading.Lock()
_tokens: dict[str, float] = {}
_counts = {"token_requests": 0, "retrievals": 0, "refused": 0}


def _answer(start_response, status: int, body: dict):
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}.get(status, "Error")
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def _body(environ) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


def _token(environ, start_response):
    form = parse_qs(_body(environ).decode("latin-1"))
    if environ.get("HTTP_AUTHORIZATION") != BASIC:
        return _answer(start_response, 401, {"error": "unauthorized", "error_description": "Bad credentials"})
    if form.get("grant_type") != ["client_credentials"] or form.get("scope") != ["read,write"]:
        return _answer(start_response, 400, {"error": "invalid_request",
                                             "error_description": "grant_type and scope are required"})
    token = uuid.uuid4().hex
    with _lock:
        _tokens[token] = time.monotonic() + TOKEN_LIFETIME
        _counts["token_requests"] += 1
    return _answer(start_response, 200, {"access_token": token, "token_type": "bearer",
                                         "expires_in": TOKEN_LIFETIME, "scope": "read,write",
                                         "jti": uuid.uuid4().hex})


def _retrieve(environ, start_response):
    auth = environ.get("HTTP_AUTHORIZATION", "")
    with _lock:
        expires = _tokens.get(auth[len("Bearer "):]) if auth.startswith("Bearer ") else None
        valid = expires is not None and expires > time.monotonic()
        _counts["retrievals" if valid else "refused"] += 1
    if not valid:
        return _answer(start_response, 401, {"error": "invalid_token", "error_description": "Invalid access token"})
    try:
        transaction_id = str(json.loads(_body(environ)).get("transactionId", ""))
    except (ValueError, AttributeError):
        transaction_id = ""
    path = "/v1/RetrieveTransactionPayment"
    stamp = int(time.time() * 1000)
    if not transaction_id.isdigit():
        return _answer(start_response, 404, {"path": path, "error": "Not Found",
                                             "message": "Can't find this transaction", "timestamp": stamp,
                                             "status": 404})
    payment = {"reference": f"order-{transaction_id}", "transaction_id": transaction_id, "cost": 1234.50,
               "message": "successful", "payer": "50937007294"}
    return _answer(start_response, 200, {"path": path, "payment": payment, "timestamp": stamp, "status": 200})


def app(environ, start_response):
    route = (environ["REQUEST_METHOD"], environ["PATH_INFO"])
    if route == ("POST", "/Api/oauth/token"):
        return _token(environ, start_response)
    if route == ("POST", "/Api/v1/RetrieveTransactionPayment"):
        return _retrieve(environ, start_response)
    if route == ("GET", "/_stats"):
        with _lock:
            return _answer(start_response, 200, dict(_counts))
    return _answer(start_response, 404, {"error": "Not Found", "message": "No such route"})
