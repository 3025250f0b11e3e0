"""The hooks a hookhub plugin may implement.

Every hook name starts with ``hookhub_``; a plugin that defines a ``hookhub_*`` function not listed
here stops hookhub at startup, so a misspelled hook never fails silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .events import Event
    from .providers import Provider
    from .sandbox import Sandbox

hookspec = pluggy.HookspecMarker("hookhub")
hookimpl = pluggy.HookimplMarker("hookhub")


@hookspec
def hookhub_register_providers(register: Callable[[type[Provider]], None]) -> None:
    """Register provider plugins: call ``register(ProviderSubclass)`` once for each.

    Called once per app while it starts, before any request. Register the class, not an instance:
    hookhub reads its ``settings``, decides whether it is configured, and instantiates it.
    """


@hookspec
def hookhub_register_sandboxes(register: Callable[[type[Sandbox]], None]) -> None:
    """Register local fakes of provider APIs: call ``register(SandboxSubclass)`` once for each.

    Called by ``hookhub sandbox``, ``hookhub simulate``, ``hookhub serve --sandbox`` (for the settings)
    and the ``hookhub.testing`` fixtures, never by a server handling calls. Register the class;
    hookhub instantiates it and serves it under ``/<name>``.
    A provider plugin that brings a sandbox lets merchants try it, and test their handlers against
    it, with no credentials and no network.
    """


@hookspec
def hookhub_handle_event(event: Event) -> None:
    """Receive one normalized event; filter on ``event.type``.

    Called once per event per handler plugin, from hookhub's background scheduler (never inside the
    provider's request). Delivery is at least once: use ``event.id`` as your idempotency key. If
    the hook raises, the failure and its traceback are recorded and the call is retried later with
    backoff; other handlers are not affected and are not called again.
    """


@hookspec(firstresult=True)
def hookhub_expected_payment(provider: str, order_id: str) -> tuple[int, str] | None:
    """Say what an order should cost: ``(amount_in_minor_units, currency)``, or None if unknown.

    Called once per payment, before its approval (the authorized amount, or the amount paid in
    one step) is booked. When that amount or currency differs, the event is ``payment.mismatch``
    instead of ``payment.approved``. The first non-None answer
    wins. An exception here postpones the verification (callbacks get 503 and are retried).
    """


@hookspec(firstresult=True)
def hookhub_return_response(event: Event | None, request: Any) -> Any:
    """Shape the buyer's page after a return; return a Flask response, or None for the default.

    Called on every return once it is reconciled. ``event`` is the event that holds the
    transaction's current state, or None while the payment is still being confirmed (the provider
    could not be reached, or does not know the transaction yet). ``request`` is the Flask request.
    The default is a 303 redirect to the configured success, failure or pending page with a signed
    ``result`` token. The first non-None answer wins.
    """
