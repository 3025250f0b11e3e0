"""Local stand-ins for providers' APIs: ``hookhub sandbox``, ``hookhub simulate`` and ``hookhub.testing``.

A provider plugin may register a ``Sandbox`` subclass from ``hookhub_register_sandboxes``. A sandbox
is two things:

- a fake of the provider's API (``wsgi_app``), with the provider's paths, authentication and
  answer shapes, which hookhub's own client for that provider talks to as it would to the real one;
- a player of the provider and of the buyer: ``pay`` makes a payment the fake then reports, and
  ``callback`` and ``buyer_return`` build the requests the provider or the buyer's browser would
  send hookhub about it, signed where the provider signs them.

``pay`` talks to the fake over HTTP only, so ``hookhub simulate`` can play against a sandbox that
``hookhub sandbox`` serves in another process.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

PAYMENT_STATUSES = ("approved", "declined", "pending")
HTTP_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class SimulatedPayment:
    """A payment a sandbox made; ``details`` holds the provider's own ids (a session, a payment)."""

    provider: str
    order_id: str
    amount: int  # minor units
    currency: str
    status: str
    transaction_id: str
    details: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SimulatedRequest:
    """An HTTP request that a provider or a buyer's browser would send to hookhub.

    ``path`` is relative to hookhub's root (``/hooks/monri``); ``query_string`` is already encoded.
    """

    method: str
    path: str
    query_string: str = ""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body: bytes = b""

    @property
    def target(self) -> str:
        """The path with its query, as sent."""
        return self.path + (f"?{self.query_string}" if self.query_string else "")

    def send(self, to: Any, *, timeout: float = HTTP_TIMEOUT) -> Any:
        """Send it to hookhub and return the answer, redirects not followed.

        ``to`` is hookhub's base URL (sent with ``requests``; a ``requests.Response`` comes back)
        or a Flask test client (a test ``Response`` comes back).
        """
        if isinstance(to, str):
            return requests.request(self.method, to.rstrip("/") + self.target, headers=dict(self.headers),
                                    data=self.body or None, timeout=timeout, allow_redirects=False)
        return to.open(self.target, method=self.method, headers=dict(self.headers), data=self.body)


class Sandbox(abc.ABC):
    """Base class of a provider's sandbox.

    Set ``name`` to the provider's name. Keep the fake's state on the instance, guarded by
    ``self.lock`` (the fake is served from several threads), and forget it in ``reset``. ``url`` is
    where the fake is served: hookhub's sandbox server mounts each sandbox under ``/<name>``.
    """

    name: ClassVar[str]
    currency: ClassVar[str] = "EUR"  # what ``simulate`` pays in unless told
    plays: ClassVar[str] = "callback"  # what ``simulate`` sends unless told: "callback" or "return"

    def __init__(self, url: str | None = None):
        self._url = url.rstrip("/") if url else ""
        self.lock = threading.RLock()
        self.reset()

    @property
    def url(self) -> str:
        """Where the fake is served; asking before it is served is an error, never a silent default."""
        if not self._url:
            raise RuntimeError(f"the {self.name} sandbox is not served anywhere: serve it with SandboxServer "
                               "or give it a url")
        return self._url

    @url.setter
    def url(self, value: str) -> None:
        self._url = value.rstrip("/")

    @property
    def base_url(self) -> str:
        """The provider's API base for hookhub's ``BASE_URL`` setting; override when it has a prefix."""
        return self.url

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget every payment and every request seen; called between tests."""

    @abc.abstractmethod
    def api_app(self) -> Callable[..., Any]:
        """The fake of the provider's API as a WSGI app, its routes relative to ``url``."""

    @abc.abstractmethod
    def make_payment(self, *, order_id: str, amount: int, currency: str, status: str) -> SimulatedPayment:
        """Make, in this process, a payment the fake's API then reports as ``status``.

        ``status`` is one of ``PAYMENT_STATUSES``; ``amount`` is in minor units. Do on the fake
        what the buyer would have done on the provider's payment page. Raise ``ValueError`` for a
        payment the provider cannot make (a currency it does not take, say).
        """

    @abc.abstractmethod
    def settings(self) -> dict[str, str]:
        """The ``HOOKHUB_<PROVIDER>_*`` variables that point hookhub at this fake."""

    @abc.abstractmethod
    def callback(self, payment: SimulatedPayment) -> SimulatedRequest:
        """The server-to-server call the provider makes about ``payment``, signed as the provider signs it."""

    @abc.abstractmethod
    def buyer_return(self, payment: SimulatedPayment, *, public_url: str) -> SimulatedRequest:
        """The buyer's browser coming back from the payment page; ``public_url`` is hookhub's."""

    def wsgi_app(self) -> Callable[..., Any]:
        """``api_app`` plus ``POST /_sandbox/payments``, where ``pay`` asks for a payment."""
        api = self.api_app()

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO") != "/_sandbox/payments":
                return api(environ, start_response)
            request = Request(environ)
            if request.method != "POST":
                response = _json(405, {"error": "method_not_allowed", "message": "POST a payment here"})
            else:
                wanted = _read_payment_request(request.get_json(silent=True))
                if isinstance(wanted, str):
                    response = _json(400, {"error": "invalid_payment", "message": wanted})
                else:
                    try:
                        response = _json(200, dataclasses.asdict(self.make_payment(**wanted)))
                    except ValueError as exc:  # a payment this provider cannot make (a currency, say)
                        response = _json(400, {"error": "invalid_payment", "message": str(exc)})
            return response(environ, start_response)

        return app

    def pay(self, *, order_id: str, amount: int, currency: str, status: str = "approved") -> SimulatedPayment:
        """Make a payment the fake's API then reports, through its ``/_sandbox/payments`` route."""
        if status not in PAYMENT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(PAYMENT_STATUSES)}")
        answer = requests.post(f"{self.url}/_sandbox/payments", timeout=HTTP_TIMEOUT, json={
            "order_id": order_id, "amount": amount, "currency": currency, "status": status})
        if answer.status_code != 200:
            raise RuntimeError(f"the {self.name} sandbox at {self.url} refused the payment: "
                               f"{answer.status_code} {answer.text[:200]}")
        return SimulatedPayment(**answer.json())

    def simulate(self, to: Any, *, plays: str | None = None, public_url: str | None = None,
                 order_id: str | None = None, amount: int = 1000, currency: str | None = None,
                 status: str = "approved") -> tuple[SimulatedPayment, Any]:
        """Make a payment, then send hookhub the provider's callback or the buyer's return about it.

        ``to`` is hookhub's base URL or a Flask test client (see ``SimulatedRequest.send``);
        ``public_url`` is hookhub's ``HOOKHUB_PUBLIC_URL`` (default: ``to`` when it is a URL).
        Returns the payment and hookhub's answer.
        """
        plays = plays or self.plays
        if plays not in ("callback", "return"):
            raise ValueError('plays must be "callback" or "return"')
        if public_url is None:
            public_url = to if isinstance(to, str) else "http://localhost"
        payment = self.pay(order_id=order_id or f"order-{secrets.token_hex(6)}", amount=amount,
                           currency=currency or self.currency, status=status)
        request = self.callback(payment) if plays == "callback" else self.buyer_return(payment, public_url=public_url)
        return payment, request.send(to)


def _read_payment_request(data: Any) -> dict[str, Any] | str:
    """The keyword arguments of ``make_payment`` from a ``/_sandbox/payments`` body, or what is wrong."""
    if not isinstance(data, dict):
        return "the body must be a JSON object"
    order_id, amount, currency = data.get("order_id"), data.get("amount"), data.get("currency")
    status = data.get("status", "approved")
    if not isinstance(order_id, str) or not 1 <= len(order_id) <= 40:
        return "order_id must be a string of 1 to 40 characters"
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount < 10**11:
        return "amount must be a positive integer in minor units"
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        return "currency must be an ISO 4217 code"
    if status not in PAYMENT_STATUSES:
        return f"status must be one of {', '.join(PAYMENT_STATUSES)}"
    return {"order_id": order_id, "amount": amount, "currency": currency.upper(), "status": status}


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status, content_type="application/json")


class SandboxServer:
    """Every sandbox on one loopback port, each under ``/<name>``, served from a background thread."""

    def __init__(self, sandboxes: Iterable[Sandbox], host: str = "127.0.0.1", port: int = 0):
        self.sandboxes = {s.name: s for s in sandboxes}
        mounts = {f"/{name}": sandbox.wsgi_app() for name, sandbox in self.sandboxes.items()}
        self._server = make_server(host, port, DispatcherMiddleware(_not_found, mounts), threaded=True)
        self.url = f"http://{host}:{self._server.server_port}"
        for name, sandbox in self.sandboxes.items():
            sandbox.url = f"{self.url}/{name}"
        self._thread: threading.Thread | None = None

    def __getitem__(self, name: str) -> Sandbox:
        return self.sandboxes[name]

    def settings(self) -> dict[str, str]:
        """Every sandbox's ``HOOKHUB_*`` variables."""
        return {k: v for sandbox in self.sandboxes.values() for k, v in sandbox.settings().items()}

    def start(self) -> SandboxServer:
        # A short poll interval: closing waits for the loop to look, and tests close often.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="hookhub-sandbox", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()


def _not_found(environ: Any, start_response: Any) -> Any:
    return _json(404, {"error": "not_found", "message": "no sandbox is mounted here"})(environ, start_response)
