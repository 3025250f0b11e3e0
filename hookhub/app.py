"""The app factory."""

from __future__ import annotations

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

    The store is made ready first: an empty database gets the schema. A store that cannot be
    reached, or has another schema than the newest (``hookhub db upgrade`` fixes an older one),
    is logged, and calls get 503 until it is ready. ``prepare_store=False`` leaves the database
    alone until first used (the ``hookhub`` command line builds its app so). Raises
    ``ConfigError`` when the configuration cannot work.
    """
    settings = config.read(environ, test_config, instance_path=instance_path)
    app = Flask("hookhub", instance_path=settings.instance_path)
    config.apply(app, settings)
    hub = Hub(settings, plugins)
    if prepare_store:
        hub.store_ready()  # creates the schema in an empty database; logs any other problem
    app.extensions["hookhub"] = hub
    if app.config["HOOKHUB_PROXY_HOPS"]:
        # Behind that many proxies, each appending to X-Forwarded-For, the caller's address is that
        # many entries from the end; with no proxy configured the header is the caller's own
        # writing and is ignored. Nothing else is taken from forwarded headers: links hookhub
        # builds are relative, and signed URLs are built from HOOKHUB_PUBLIC_URL.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["HOOKHUB_PROXY_HOPS"], x_proto=0,  # type: ignore[method-assign]
                                x_host=0, x_port=0, x_prefix=0)
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
