"""How a command finds its hub: built from the environment by ``hookhub``, or the app's under
``flask --app wsgi hookhub``."""

from __future__ import annotations

import os
from collections.abc import Callable

import click
from flask.cli import ScriptInfo

from ..errors import ConfigError
from ..hub import Hub


class HubSource:
    """Builds the command's hub on first use, from the same settings as the server."""

    def __init__(self, build: Callable[[], Hub]):
        self._build = build
        self._hub: Hub | None = None

    def hub(self) -> Hub:
        if self._hub is None:
            try:
                self._hub = self._build()
            except ConfigError as exc:
                raise click.ClickException(f"configuration: {exc}") from None
            # Closed with the command: its database connections are not left to the garbage collector.
            click.get_current_context().find_root().call_on_close(self.close)
        return self._hub

    def close(self) -> None:
        if self._hub is not None:
            self._hub.close()
            self._hub = None


def environment_hub() -> Hub:
    """The hub a command run from a shell works with: the environment's settings, no scheduler."""
    from .. import config

    return Hub(config.read(os.environ, {"HOOKHUB_SCHEDULER": False}))


def current_hub() -> Hub:
    """The running command's hub (its store not yet checked)."""
    ctx = click.get_current_context()
    source = ctx.find_object(HubSource)
    if source is not None:
        return source.hub()
    info = ctx.find_object(ScriptInfo)
    if info is None:
        raise click.ClickException("no hookhub configuration: run this as `hookhub ...`")
    return Hub.of(info.load_app())
