"""hookhub provider plugin for MonCash (Digicel Haiti)."""

from __future__ import annotations

from hookhub import hookimpl

from .client import MonCashClient
from .provider import MonCash

__all__ = ["MonCash", "MonCashClient"]


@hookimpl
def hookhub_register_providers(register):
    register(MonCash)


@hookimpl
def hookhub_register_sandboxes(register):
    from .sandbox import MonCashSandbox  # only the sandbox and the tests need the fake

    register(MonCashSandbox)
