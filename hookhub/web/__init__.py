"""Thin Flask views: read the request, call the pipeline, shape the answer."""

from __future__ import annotations

from flask import Flask

from . import errors, metrics, pages, routes


def init_app(app: Flask) -> None:
    app.register_blueprint(routes.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(metrics.bp)
    errors.init_app(app)
