"""hookhub provider plugin for Monext (Monext Online, formerly Payline)."""

from __future__ import annotations

from hookhub import hookimpl

from .client import MonextClient, Page
from .provider import Monext

__all__ = ["Monext", "MonextClient", "Page"]


@hookimpl
def hookhub_register_providers(register):
    register(Monext)


@hookimpl
def hookhub_register_sandboxes(register):
    from .sandbox import MonextSandbox  # only the sandbox and the tests need the fake

    register(MonextSandbox)
