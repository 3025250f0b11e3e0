"""The app factory."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import click
from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import cli, config, web
from .hub import Hub


def create_app(test_config: Mapping[str, Any] | None = None, *, plugins: Iterable[Any] = (),
               instance_path: str | None = None, environ: Mapping[str, str] | None = None,
               prepare_store: bool = True) -> Flask:
    """Build a hookhub WSGI app.

    Configuration comes from ``HOOKHUB_*`` variables in ``environ`` (default ``os.environ``), an
    optional ``hookhub.cfg`` in the instance folder, and ``test_config`` last. ``plugins`` are extra
    plugin objects (modules or instances) registered after the entry points and ``HOOKHUB_HANDLERS``.

    The store is made ready first: an empty database gets the schema; a database at an older
    schema raises ``SchemaError`` until ``hookhub db upgrade`` has run. ``prepare_store=False``
    leaves the database alone (the ``hookhub db`` commands build their app so). Raises
    ``ConfigError`` when the configuration cannot work.
    """
    environ = os.environ if environ is None else environ
    app = Flask("hookhub", instance_path=instance_path or environ.get("HOOKHUB_INSTANCE_PATH") or None)
    config.load(app, test_config, environ)
    hub = Hub(app.config, plugins)
    if prepare_store:
        try:
            hub.prepare_store()
        except BaseException:
            hub.close()
            raise
    app.extensions["hookhub"] = hub
    if app.config["HOOKHUB_PROXY_HOPS"]:
        # Behind that many proxies, the client address, scheme and host come from their headers;
        # with no proxy configured those headers are the caller's own and are ignored.
        hops = app.config["HOOKHUB_PROXY_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_prefix=hops)  # type: ignore[method-assign]
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
