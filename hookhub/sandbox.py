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

A sandbox also serves the provider's payment page for the payments a shop creates through the
provider's API (MonCash's gateway, Monext's ``redirectURL``, a page standing for Monri Components),
with Pay, Decline and Cancel buttons. As the provider would, the page then notifies the merchant
(``hookhub_url``, unless ``notify`` is off) and sends the buyer back to hookhub. Notifications leave
from a short background thread, as a provider sends them on its own time: hookhub being down never
breaks the page, and each attempt is kept in ``sent``.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import html
import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

PAYMENT_STATUSES = ("approved", "declined", "pending")
HTTP_TIMEOUT = 10.0
NOTIFY_TIMEOUT = 5.0  # seconds a notification to the merchant may take; a provider does not wait longer
# What a buyer can do on a sandbox's payment page: the ``action`` of its form.
PAGE_ACTIONS = ("pay", "decline", "cancel")
# What a sandbox's payout test controls can make of a payout: done, refused by the provider, done
# although the creating call got a 5xx, or left pending until settled.
PAYOUT_OUTCOMES = ("succeed", "fail", "error_after_success", "pending")

log = logging.getLogger("hookhub.sandbox")


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
    # True when the sandbox completed a payment the shop had created through the provider's API
    # (its amount and currency are then the created ones), False for one it made up.
    from_checkout: bool = False


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

    ``hookhub_url`` is where the merchant's hookhub is reachable, for what the provider sends it
    (notifications, the buyer coming back); ``public_url`` is hookhub's ``HOOKHUB_PUBLIC_URL``
    (default: ``hookhub_url``), over which Monri signs returns. ``notify`` (reset to True) says
    whether payment pages notify hookhub; ``sent`` lists each notification sent as
    ``(method, url, status)``, the status an int, or the error's name when nothing answered.
    """

    name: ClassVar[str]
    currency: ClassVar[str] = "EUR"  # what ``simulate`` pays in unless told
    plays: ClassVar[str] = "callback"  # what ``simulate`` sends unless told: "callback" or "return"

    def __init__(self, url: str | None = None, *, hookhub_url: str | None = None, public_url: str | None = None):
        self._url = url.rstrip("/") if url else ""
        self.hookhub_url = hookhub_url
        self.public_url = public_url
        self.lock = threading.RLock()
        self.reset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Sandboxes write their own ``reset`` without calling this class's: wrap it, so that what the
        # base class keeps (``notify``, ``sent``) is forgotten too, whoever wrote the sandbox.
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("reset")
        if own is None or getattr(own, "_resets_base", False):
            return

        @functools.wraps(own)
        def reset(self: Sandbox) -> None:
            self._reset_base()
            own(self)

        reset._resets_base = True  # type: ignore[attr-defined]
        cls.reset = reset  # type: ignore[method-assign]

    def _reset_base(self) -> None:
        with self.lock:
            self.notify = True
            self.sent: list[tuple[str, str, int | str]] = []
            self._senders: list[threading.Thread] = []

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

    @property
    def hookhub_url(self) -> str | None:
        """Where the merchant's hookhub is reachable, or None when the sandbox is not told."""
        return self._hookhub_url

    @hookhub_url.setter
    def hookhub_url(self, value: str | None) -> None:
        self._hookhub_url = value.rstrip("/") if value else None

    @property
    def public_url(self) -> str | None:
        """hookhub's ``HOOKHUB_PUBLIC_URL``: as set, else ``hookhub_url``."""
        return self._public_url or self._hookhub_url

    @public_url.setter
    def public_url(self, value: str | None) -> None:
        self._public_url = value.rstrip("/") if value else None

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

    # -- notifying the merchant and serving the buyer ---------------------------------------------

    def send_later(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                   body: bytes = b"") -> bool:
        """Send a request to the merchant from a short background thread, if ``notify`` is on.

        The page that caused it answers at once, as a provider's does; the outcome goes to ``sent``
        (and the log when nothing answers), never to the buyer. True when a request is on its way.
        """
        if not self.notify:
            return False
        with self.lock:  # started under the lock, so that pruning never drops a thread not yet started
            # The outcome goes to this ``sent``: one sent after a reset belongs to the state reset.
            thread = threading.Thread(target=self._send, args=(method, url, dict(headers or {}), body, self.sent),
                                      name=f"hookhub-sandbox-{self.name}-notify", daemon=True)
            thread.start()
            self._senders = [t for t in self._senders if t.is_alive()] + [thread]
        return True

    def notify_hookhub(self, request: SimulatedRequest) -> bool:
        """``send_later`` a request built for hookhub (``callback``) to ``hookhub_url``, when it is known."""
        if not self.hookhub_url:
            return False
        return self.send_later(request.method, self.hookhub_url + request.target, headers=request.headers,
                               body=request.body)

    def _send(self, method: str, url: str, headers: dict[str, str], body: bytes,
              sent: list[tuple[str, str, int | str]]) -> None:
        outcome: int | str
        try:
            outcome = requests.request(method, url, headers=headers, data=body or None, timeout=NOTIFY_TIMEOUT,
                                       allow_redirects=False).status_code
        except requests.RequestException as exc:  # the merchant is down: a provider would retry later
            outcome = type(exc).__name__
            log.warning("the %s sandbox could not notify %s %s: %s", self.name, method, url, exc)
        with self.lock:
            sent.append((method, url, outcome))

    def wait_sent(self, timeout: float = NOTIFY_TIMEOUT + 1) -> list[tuple[str, str, int | str]]:
        """Wait until every notification started so far has been sent (or given up); ``sent`` then."""
        with self.lock:
            senders = list(self._senders)
        for thread in senders:
            thread.join(timeout)
        with self.lock:
            return list(self.sent)

    def pay_page(self, title: str, facts: Sequence[tuple[str, str]]) -> Response:
        """The provider's payment page: ``facts`` (label, value) and Pay / Decline / Cancel buttons.

        The buttons POST ``action`` (one of ``PAGE_ACTIONS``) back to the page's own URL, so the
        page works without JavaScript; every value is escaped.
        """
        rows = "".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
                       for label, value in facts)
        buttons = "".join(f'<button type="submit" name="action" value="{action}">{action.capitalize()}</button> '
                          for action in PAGE_ACTIONS)
        return self.page(200, title, f'<table>{rows}</table><form method="post">{buttons}</form>', markup=True)

    def page(self, status: int, title: str, message: str, *, markup: bool = False) -> Response:
        """A small HTML page; ``message`` is escaped unless ``markup`` says it is HTML already."""
        body = message if markup else f"<p>{html.escape(message)}</p>"
        heading = html.escape(f"{title} - {self.name} sandbox")
        return Response(f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{heading}</title>'
                        f"</head><body><h1>{heading}</h1>{body}</body></html>", status,
                        content_type="text/html; charset=utf-8")

    def send_buyer(self, url: str | None, done: str) -> Response:
        """The buyer's browser sent on to ``url`` (303), or told ``done`` when there is nowhere to go."""
        if url:
            return Response(status=303, headers={"Location": url})
        return self.page(200, "Done", f"{done} The sandbox does not know where hookhub is (its hookhub_url), "
                                      "so it cannot send you back.")

    @staticmethod
    def with_query(url: str, **params: str) -> str:
        """``url`` with ``params`` added to its query, keeping the query it already has."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
        return urlunsplit(parts._replace(query=urlencode(query)))

    def page_action(self, form: Mapping[str, str]) -> str | None:
        """The button the buyer pressed on ``pay_page``, or None for anything else."""
        action = form.get("action")
        return action if action in PAGE_ACTIONS else None

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
    """Every sandbox on one loopback port, each under ``/<name>``, served from a background thread.

    ``hookhub_url`` and ``public_url`` are given to every sandbox (see ``Sandbox``); ``reset`` gives
    them again, after forgetting every sandbox's state.
    """

    def __init__(self, sandboxes: Iterable[Sandbox], host: str = "127.0.0.1", port: int = 0, *,
                 hookhub_url: str | None = None, public_url: str | None = None):
        self.sandboxes = {s.name: s for s in sandboxes}
        self.hookhub_url, self.public_url = hookhub_url, public_url
        mounts = {f"/{name}": sandbox.wsgi_app() for name, sandbox in self.sandboxes.items()}
        self._server = make_server(host, port, DispatcherMiddleware(_not_found, mounts), threaded=True)
        self.url = f"http://{host}:{self._server.server_port}"
        for name, sandbox in self.sandboxes.items():
            sandbox.url = f"{self.url}/{name}"
            sandbox.hookhub_url, sandbox.public_url = hookhub_url, public_url
        self._thread: threading.Thread | None = None

    def reset(self) -> None:
        """Forget every sandbox's state, and point each at this server's hookhub again."""
        for sandbox in self.sandboxes.values():
            sandbox.reset()
            sandbox.hookhub_url, sandbox.public_url = self.hookhub_url, self.public_url

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
