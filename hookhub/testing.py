"""A pytest plugin for testing hookhub handlers and provider plugins against sandboxed providers.

pytest loads it by itself wherever hookhub is installed (its ``pytest11`` entry point). A merchant's
test of a handler reads::

    from hookhub import hookimpl
    from hookhub.testing import deliver

    class Fulfilment:
        def __init__(self):
            self.events = []

        @hookimpl
        def hookhub_handle_event(self, event):
            self.events.append(event)

    def test_a_paid_order_is_fulfilled(hookhub_app_factory, hookhub_sandbox):
        shop = Fulfilment()
        app = hookhub_app_factory(plugins=[shop])
        payment, answer = hookhub_sandbox["monri"].simulate(app.test_client(), amount=1999)
        assert answer.status_code == 200
        deliver(app)
        assert [(e.type, e.amount) for e in shop.events] == [("payment.approved", 1999)]

Fixtures:

``hookhub_sandbox``
    Every sandbox the installed plugins register, served on one loopback port and reset for each
    test. ``hookhub_sandbox["moncash"]`` is MonCash's: ``pay(...)`` makes a payment, ``callback``
    and ``buyer_return`` build the signed requests the provider and the buyer send, ``simulate``
    does both and sends them. Payments created with a provider's client have the provider's payment
    page on the sandbox; set the sandbox's ``hookhub_url`` to a server of the test's for its Pay,
    Decline and Cancel buttons to notify it and send the browser back to it.
``hookhub_app_factory``
    Builds apps configured against the sandbox: every sandboxed provider enabled, a fresh SQLite
    store in the test's temporary folder, no background thread (call ``deliver(app)``).
``hookhub_plugins``, ``hookhub_app``, ``hookhub_client``
    The plugins ``hookhub_app`` registers (override the fixture to give yours), that app, and its
    Flask test client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from .app import create_app
from .hub import Hub
from .plugins import load_sandboxes
from .sandbox import SandboxServer

PUBLIC_URL = "http://localhost"  # where Flask's test client sends requests
SECRET_KEY = "hookhub-testing-secret-key-for-result-tokens"  # the 32 characters hookhub wants, and more

__all__ = ["PUBLIC_URL", "SECRET_KEY", "deliver"]


def deliver(app: Flask, *, timeout: float = 10.0) -> int:
    """Run the app's due background work (deliveries, re-checks) until none is left; how many jobs ran.

    Retries that come due within a few milliseconds are waited for, so a handler that fails once
    under a short ``HOOKHUB_RETRY_BASE_SECONDS`` is retried here too.
    """
    hub = Hub.of(app)
    done, idle, deadline = 0, 0, time.monotonic() + timeout
    while idle < 3 and time.monotonic() < deadline:
        ran = hub.run_due_work()
        done += ran
        idle = 0 if ran else idle + 1
        if not ran:
            time.sleep(0.01)
    return done


@pytest.fixture(scope="session")
def hookhub_sandbox_server() -> Iterator[SandboxServer]:
    """Every registered sandbox, served for the whole test session; prefer ``hookhub_sandbox``."""
    server = SandboxServer(load_sandboxes()).start()
    yield server
    server.close()


@pytest.fixture
def hookhub_sandbox(hookhub_sandbox_server: SandboxServer) -> SandboxServer:
    """Every registered sandbox, its state forgotten before this test.

    Each sandbox's ``hookhub_url`` (none unless the test sets one) and ``notify`` (on) are put
    back too, so that what one test points at never receives another test's notifications.
    """
    hookhub_sandbox_server.reset()
    return hookhub_sandbox_server


@pytest.fixture
def hookhub_app_factory(hookhub_sandbox: SandboxServer, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """``make(config=None, plugins=(), providers=None)``: a new app against the sandbox.

    ``config`` overrides settings; ``providers`` limits which sandboxed providers are enabled.
    Apps are closed after the test.
    """
    apps: list[Flask] = []

    def make(config: Mapping[str, Any] | None = None, plugins: Sequence[Any] = (),
             providers: Sequence[str] | None = None) -> Flask:
        chosen = [s for name, s in hookhub_sandbox.sandboxes.items() if providers is None or name in providers]
        settings: dict[str, Any] = {k: v for s in chosen for k, v in s.settings().items()}
        settings.update({
            "HOOKHUB_PUBLIC_URL": PUBLIC_URL, "HOOKHUB_SECRET_KEY": SECRET_KEY, "HOOKHUB_SCHEDULER": False,
            "HOOKHUB_RETRY_BASE_SECONDS": 0.001, "HOOKHUB_RETRY_MAX_SECONDS": 0.002,
            "HOOKHUB_HTTP_TIMEOUT": 5.0,
        })
        settings.update(config or {})
        app = create_app(settings, plugins=plugins, instance_path=str(tmp_path / f"hookhub-{len(apps)}"),
                         environ={})
        apps.append(app)
        return app

    yield make
    for app in apps:
        Hub.of(app).close()


@pytest.fixture
def hookhub_plugins() -> list[Any]:
    """Plugin objects (handlers, providers) for ``hookhub_app``; override this fixture to give yours."""
    return []


@pytest.fixture
def hookhub_app(hookhub_app_factory: Callable[..., Flask], hookhub_plugins: list[Any]) -> Flask:
    """An app with every sandboxed provider and ``hookhub_plugins``."""
    return hookhub_app_factory(plugins=hookhub_plugins)


@pytest.fixture
def hookhub_client(hookhub_app: Flask) -> Any:
    """The Flask test client of ``hookhub_app``."""
    return hookhub_app.test_client()
