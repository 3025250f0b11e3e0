"""How a command finds its hub: built from the environment by ``hookhub``, or the app's under
``flask --app wsgi hookhub``."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import click
from flask.cli import ScriptInfo

from ..errors import ConfigError
from ..hub import Hub


# Control characters but newline and tab, DEL, and the C1 controls some terminals act on (CSI, OSC):
# what a caller put in a URL, a header or a body must never reach the operator's terminal as a command.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with every control character shown as its escape (``\\x1b``)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def echo(text: Any = "", **kwargs: Any) -> None:
    """``click.echo`` for anything that may hold what a caller sent: control characters escaped."""
    click.echo(printable(str(text)), **kwargs)


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
