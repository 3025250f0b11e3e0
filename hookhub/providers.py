"""The contract between hookhub and a payment provider plugin.

A provider plugin subclasses ``Provider`` and registers the class from its
``hookhub_register_providers(register)`` hook. hookhub instantiates it once per app with the
provider's settings, and from then on calls it in this order for every inbound call::

    trigger = provider.read_callback(call)       # or read_return(call): parse and verify
    state = trigger.state or provider.fetch(trigger)  # the authoritative state
    ... hookhub reconciles and records ...
    reply = provider.acknowledge(call)            # callbacks only: what the provider expects back

A provider that can start payments or payouts for a shop (``hookhub.start_payment``,
``hookhub.start_payout``) implements ``start_payment``/``start_payout``, puts what it creates on record
with ``self.watch(...)``, and answers ``poll`` when hookhub's servers ask about it later.

Methods are called from several threads at once (web workers and the background scheduler), so keep
instances free of per-call state.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

from .calls import InboundCall, Reply, Trigger
from .errors import ConfigError
from .outbound import Checkout, PaymentRequest, Payout, PayoutRequest, Watch
from .redact import basic_credentials
from .states import TransactionState


@dataclasses.dataclass(frozen=True)
class Setting:
    """One configuration value of a provider, read from ``HOOKHUB_<PROVIDER>_<NAME>``.

    ``name`` is lower snake case (``client_id`` -> ``HOOKHUB_MONCASH_CLIENT_ID``). A setting with a
    ``default`` is optional. ``secret`` values are kept out of logs, stored calls and error pages.
    ``url`` marks where the provider's API (or its payment page) is: hookhub refuses to start unless
    it is ``https://``, or ``http://`` to this host's loopback (sandboxes and tests).

    A value of only whitespace counts as unset; one with whitespace around it is refused.
    """

    name: str
    secret: bool = False
    default: str | None = None
    help: str = ""
    url: bool = False

    @property
    def required(self) -> bool:
        return self.default is None

    def variable(self, provider: str) -> str:
        return f"HOOKHUB_{provider.upper()}_{self.name.upper()}"


class Memo(Protocol):
    """A small durable key-value memory of one provider, shared by every hookhub process.

    Use it for facts a later call needs, such as the payment id your client got when it created a
    payment, so that the buyer's return can be confirmed against it. Values must be plain JSON.
    """

    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, value: Any) -> None: ...


class LocalMemo:
    """A memo kept in this process only; what a provider has until hookhub attaches the store's."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def get(self, key: str) -> Any | None:
        return self._values.get(key)

    def put(self, key: str, value: Any) -> None:
        self._values[key] = value


class WatchBook(Protocol):
    """Where a provider puts what it created on record: the store the servers watch from."""

    def put(self, provider: str, watch: Watch) -> None: ...


class LocalWatchBook:
    """Watches kept in this process only; what a provider has until hookhub attaches the store's."""

    def __init__(self) -> None:
        self.watches: list[Watch] = []

    def put(self, provider: str, watch: Watch) -> None:
        self.watches.append(watch)


class Provider(abc.ABC):
    """Base class of every payment provider plugin.

    Class attributes to set:

    ``name``
        Lower-case identifier: the URL segment (``/hooks/<name>``, ``/return/<name>``), the
        configuration prefix (``HOOKHUB_<NAME>_...``) and ``event.provider``.
    ``settings``
        The ``Setting`` values the provider needs. With none of them configured the provider is off;
        with some but not all, hookhub refuses to start and names the missing variable.
    ``callback_methods`` / ``return_methods``
        HTTP methods accepted on the two routes; others get 405.
    ``needs_public_url``
        True when verifying a call needs ``HOOKHUB_PUBLIC_URL`` (a signature over the URL the
        caller used); hookhub then refuses to start without it.
    ``return_url_per_payment``
        True when ``start_payment`` hands the provider ``PaymentRequest.return_url`` for that
        payment alone (rather than a return URL fixed in the provider's back office): hookhub then
        puts a one-time nonce in it, which the buyer's ``result`` token echoes.
    """

    name: ClassVar[str]
    settings: ClassVar[tuple[Setting, ...]] = ()
    callback_methods: ClassVar[frozenset[str]] = frozenset({"POST"})
    return_methods: ClassVar[frozenset[str]] = frozenset({"GET"})
    needs_public_url: ClassVar[bool] = False
    return_url_per_payment: ClassVar[bool] = False

    def __init__(self, config: Mapping[str, str], *, timeout: float = 10.0, memo: Memo | None = None,
                 watches: WatchBook | None = None):
        """``config`` maps each setting's ``name`` to its value (defaults already applied).

        ``timeout`` is the limit in seconds hookhub wants on every outgoing call; ``memo`` is this
        provider's durable memory (see ``Memo``); ``watches`` is where ``watch`` records.
        """
        self.config = dict(config)
        self.timeout = timeout
        self.memo: Memo = memo if memo is not None else LocalMemo()
        self.watches: WatchBook = watches if watches is not None else LocalWatchBook()

    @functools.cached_property
    def client(self) -> Any:
        """The provider's signed API client, made once by ``create_client`` and then reused."""
        return self.create_client()

    def secrets(self) -> list[str]:
        """Values that must never be shown anywhere: the secret settings, and each of them as the
        password of an HTTP Basic credential whose user is another setting's value (how most APIs
        are called with an id and a key). hookhub also hides every one of them base64- and
        percent-encoded. Override to add credentials of other shapes, calling ``super()``.
        """
        secret = [s.name for s in self.settings if s.secret and self.config.get(s.name)]
        values = [self.config[name] for name in secret]
        users = [v for name, v in self.config.items() if name not in secret and isinstance(v, str) and v]
        return values + [basic_credentials(user, value) for value in values for user in users]

    @abc.abstractmethod
    def create_client(self) -> Any:
        """Build the API client from ``self.config``; called once, on first use of ``client``."""

    @abc.abstractmethod
    def read_callback(self, call: InboundCall) -> Trigger | None:
        """Parse and verify a server-to-server call to ``/hooks/<name>``.

        Raise ``InvalidSignature`` for a missing or wrong signature and ``InvalidRequest`` for
        anything malformed (no reference, wrong types, oversized ids). Never trust the call's own
        claims about the payment unless a signature covers them; return a ``Trigger`` naming what
        to fetch, or carrying a ``state`` only when the call is signed and complete. Return None for
        a genuine call that concerns no payment's state (a card-saved notice, say): it is
        acknowledged and recorded, and creates nothing.
        """

    @abc.abstractmethod
    def read_return(self, call: InboundCall) -> Trigger:
        """Parse and verify a buyer's return to ``/return/<name>``; same rules as ``read_callback``."""

    @abc.abstractmethod
    def fetch(self, trigger: Trigger) -> TransactionState:
        """Ask the provider's API for the authoritative state of ``trigger.reference``.

        Raise ``ProviderNotFound`` when the provider does not know it, ``ProviderUnavailable`` when it
        cannot answer now (hookhub then answers 503 to callbacks and retries returns in the
        background), and any other ``ProviderError`` for refusals. Amounts in the result are ints in
        minor units.
        """

    def ping(self) -> str | None:
        """Make one cheap, authenticated call to the provider's API; called by ``hookhub check``.

        Return a few words on what answered; raise ``ProviderError`` when the API cannot be reached
        or refuses the credentials. The default returns None: the plugin does not say how to reach
        its API, and ``hookhub check`` reports the provider as not checked.
        """
        return None

    # -- the outbound half: what a shop starts, and what hookhub watches ------------------------------

    def watch(self, watch: Watch) -> None:
        """Put what this provider just created on record, so that hookhub's servers watch it.

        Call it from your client's create/transfer methods (and so from ``start_payment`` and
        ``start_payout``) as soon as the provider answered, and also when a payout's creation got
        a 5xx or no answer: the provider may have acted. Recording the same order again replaces
        the earlier watch (a buyer who starts over).
        """
        self.watches.put(self.name, watch)

    def start_payment(self, request: PaymentRequest) -> Checkout:
        """Create a payment at the provider for ``request`` and say where the buyer goes next.

        Called by ``hookhub.start_payment`` after the order id, amount and currency were checked.
        Raise ``ValidationError`` naming the field for input the provider would refuse, before
        sending anything; raise a ``ProviderError`` for the provider's refusals. Record the
        payment with ``self.watch``. The default refuses: the plugin cannot start payments.
        """
        raise ConfigError(f"provider {self.name!r} cannot start payments (its plugin does not implement it)")

    def start_payout(self, request: PayoutRequest) -> Payout:
        """Make a payout for ``request``; same rules as ``start_payment``.

        A definite refusal (a 4xx) raises. A 5xx or no answer must not: record the watch and
        answer a ``Payout`` with status ``pending``, since the provider may have paid.
        """
        raise ConfigError(f"provider {self.name!r} cannot make payouts (its plugin does not implement it)")

    def poll(self, watch: Watch) -> TransactionState | None:
        """Ask the provider about a watched payment or payout; called by the servers' background work.

        Answer its state (``kind`` and ``key`` as ``watch`` says), or None while the provider
        knows nothing of it yet (a payment the buyer has not paid). Raise ``ProviderUnavailable``
        when the provider cannot answer now (hookhub asks again with backoff). The default says
        nothing is known, so an unpaid payment of such a plugin ends as ``payment.expired``.
        """
        return None

    def acknowledge(self, call: InboundCall) -> Reply:
        """The answer the provider expects once its callback is durably recorded.

        The default is ``200`` with ``{"status": "received"}``; override for providers that want
        something else (an empty body, a fixed word).
        """
        return Reply(200, b'{"status": "received"}', "application/json")
