"""hookhub provider plugin for Monri (WebPay, ipg.monri.com)."""

from __future__ import annotations

from hookhub import hookimpl

from .client import MonriClient
from .provider import Monri

__all__ = ["Monri", "MonriClient"]


@hookimpl
def hookhub_register_providers(register):
    register(Monri)


@hookimpl
def hookhub_register_sandboxes(register):
    from .sandbox import MonriSandbox  # only the sandbox and the tests need the fake

    register(MonriSandbox)
