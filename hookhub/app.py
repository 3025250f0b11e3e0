"""The app factory."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import click
from flask import Flask

from . import cli, config, web
from .hub import Hub


def create_app(test_config: Mapping[str, Any] | None = None, *, plugins: Iterable[Any] = (),
               instance_path: str | None = None, environ: Mapping[str, str] | None = None) -> Flask:
    """Build a hookhub WSGI app.

    Configuration comes from ``HOOKHUB_*`` variables in ``environ`` (default ``os.environ``), an
    optional ``hookhub.cfg`` in the instance folder, and ``test_config`` last. ``plugins`` are extra
    plugin objects (modules or instances) registered after the entry points and ``HOOKHUB_HANDLERS``.
    Raises ``ConfigError`` when the configuration cannot work.
    """
    environ = os.environ if environ is None else environ
    app = Flask("hookhub", instance_path=instance_path or environ.get("HOOKHUB_INSTANCE_PATH") or None)
    config.load(app, test_config, environ)
    hub = Hub(app.config, plugins)
    app.extensions["hookhub"] = hub
    web.init_app(app)
    app.cli.add_command(cli.cli)
    if app.config["HOOKHUB_SCHEDULER"]:
        # A command line (``flask --app wsgi hookhub ...``) loads the app inside a click command: no
        # background work there, or the command could exit in the middle of a delivery.
        if click.get_current_context(silent=True) is None:
            hub.scheduler.ensure_started()
        # gunicorn --preload forks after this point; the thread must then start in each worker.
        app.before_request(hub.scheduler.ensure_started)
    return app
