"""Every error answer is JSON, and none of them shows internals."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, InternalServerError

from ..errors import StoreUnavailable

log = logging.getLogger("hookhub")


def json_error(status: int, code: str, message: str) -> Response:
    response = jsonify(error=code, message=message)
    response.status_code = status
    return response


def store_unavailable() -> Response:
    # 503 tells a provider to retry: nothing was recorded, so nothing may be acknowledged.
    response = json_error(503, "store_unavailable", "hookhub cannot record calls right now; retry later")
    response.headers["Retry-After"] = "5"
    return response


def init_app(app: Flask) -> None:
    @app.after_request
    def _no_sniffing(response: Response) -> Response:
        # Error bodies may quote what the caller sent; never let a browser run them as HTML.
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        response = json_error(exc.code or 500, code, exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(StoreUnavailable)
    def _store_error(exc: StoreUnavailable) -> Response:
        log.error("store unavailable: %s", exc)
        return store_unavailable()

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # HTTPExceptions never get here: Flask picks the most specific handler, the one above.
        log.exception("unexpected error")
        return json_error(500, "internal_error", InternalServerError.description)
