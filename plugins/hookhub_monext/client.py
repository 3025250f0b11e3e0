"""Monext's Checkout and Payout REST APIs, with HTTP Basic ``merchant_id:access_key``.

Each method names one operation of Monext's published OpenAPI documents; its request is checked
against that operation's schema (``schema.Spec``) before anything is sent, and the answer is
Monext's JSON as a dict (fractions as ``Decimal``; amounts are already ints in minor units).

Errors are typed from the HTTP status and Monext's ``result`` object; each carries ``result.code``
as ``code`` and ``result.detail`` as ``message``:

* 401/403, or a 200 whose ``result.title`` is ``Unauthorized`` (how Monext answers some bad
  credentials): ``ProviderAuthError``;
* 404, or result code ``02304`` (no session or transaction by that id): ``ProviderNotFound``;
* 429, 5xx, timeouts and unreadable answers: ``ProviderUnavailable``;
* any other 4xx: ``ProviderAPIError`` (a 400 lists Monext's ``invalidParams`` in the message).

A 2xx answer is returned whatever its ``result.title``: for a session or a transaction the title is
the payment's state, not a failure of the call.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

from hookhub import (ApiClient, ApiResponse, ProviderAPIError, ProviderAuthError, ProviderNotFound,
                     ProviderUnavailable, TransactionState, ValidationError, Watch, basic_auth)

from .schema import Spec

UNKNOWN_SESSION_CODE = "02304"
# result.title of a payout transaction -> the payout's status (Monext's return-code families).
PAYOUT_TITLE_STATUS = {
    "ACCEPTED": "succeeded", "REFUSED": "failed", "ERROR": "failed", "CANCELLED": "failed",
    "INPROGRESS": "pending", "ONHOLD_PARTNER": "pending", "PENDING_RISK": "pending",
}


def payout_key(reference: str) -> str:
    """A payout's lock key, apart from payments' (keyed by session id)."""
    return f"payout:{reference}"


def payout_state(reference: str, answer: dict[str, Any], amount: int, currency: str) -> TransactionState:
    """The payout a ``sepatransfers`` or ``payout/transactions/{id}`` answer describes."""
    title = result_of(answer).get("title")
    if title not in PAYOUT_TITLE_STATUS:
        raise ProviderUnavailable("monext", f"unknown payout result title {title!r}")
    transaction = answer.get("transaction") if isinstance(answer.get("transaction"), dict) else {}
    return TransactionState(kind="payout", status=PAYOUT_TITLE_STATUS[title],
                            transaction_id=str(transaction.get("id") or reference), order_id=reference,
                            amount=amount, currency=currency, raw=answer, key=payout_key(reference))
MAX_PATH_ID_LENGTH = 200
_SORT = re.compile(r"^[A-Za-z0-9_.]+(,(asc|desc|ASC|DESC))?$")
_PATH_PARAMETER = re.compile(r"\{(\w+)\}")


@functools.lru_cache(maxsize=None)
def _specs() -> tuple[Spec, ...]:
    return Spec.load("CheckoutAPI.json"), Spec.load("PayoutAPI.json")


def result_of(data: Any) -> dict[str, Any]:
    """The ``result`` object of a Monext answer (empty when there is none)."""
    result = data.get("result") if isinstance(data, dict) else None
    return result if isinstance(result, dict) else {}


@dataclasses.dataclass(frozen=True)
class Page:
    """One page of a list answer, with the seed's pagination fields.

    ``count`` is how many items this page holds, ``start_index``/``end_index`` the sort-order
    indexes of its first and last item, ``record_total`` the number of records in all pages.
    """

    items: list[dict[str, Any]]
    page: int
    size: int | None
    count: int | None
    start_index: int | None
    end_index: int | None
    record_total: int | None
    raw: dict[str, Any]


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class MonextClient(ApiClient):
    provider = "monext"

    def __init__(self, merchant_id: str, access_key: str, base_url: str, *, timeout: float = 10.0,
                 on_created: Callable[[Watch], None] | None = None):
        """``on_created`` is told of every session and payout created, for hookhub to watch."""
        super().__init__(base_url, timeout=timeout)
        self._on_created = on_created or (lambda watch: None)
        self.merchant_id = merchant_id
        self._authorization = basic_auth(merchant_id, access_key)

    def authenticate(self, method: str, fullpath: str, body: bytes) -> dict[str, str]:
        return {"Authorization": self._authorization}

    def check(self, response: ApiResponse) -> None:
        data = response.data if isinstance(response.data, dict) else {}
        result = result_of(data)
        title, code = str(result.get("title") or ""), result.get("code")
        code = code if isinstance(code, str) else None
        message = str(result.get("detail") or title or f"HTTP {response.status}")
        invalid = data.get("invalidParams")
        if isinstance(invalid, list) and invalid:
            named = [f"{p.get('name')}: {p.get('reason')}" for p in invalid if isinstance(p, dict)]
            message += " (" + "; ".join(named) + ")"
        status = response.status
        if status in (401, 403) or title.lower() == "unauthorized":
            raise ProviderAuthError(self.provider, f"Monext refused the credentials: {message}", status=status,
                                    code=code, payload=data)
        if status == 404 or code == UNKNOWN_SESSION_CODE:
            raise ProviderNotFound(self.provider, message, status=status, code=code, payload=data)
        if status == 429 or status >= 500 or status < 200 or 300 <= status < 400:
            raise ProviderUnavailable(self.provider, message, status=status, code=code, payload=data)
        if status >= 400:
            raise ProviderAPIError(self.provider, message, status=status, code=code, payload=data)

    # -- one operation ----------------------------------------------------------------------------

    def operation(self, method: str, template: str, body: Mapping[str, Any] | None = None,
                  **path_values: Any) -> dict[str, Any]:
        """Call the documented operation ``method template`` with its path values and body.

        The public methods below are thin names for this; it is public so that an operation of
        Monext's documents without a method here can still be called, checked the same way.
        """
        spec = next((s for s in _specs() if s.has(method, template)), None)
        if spec is None:
            raise ValidationError("operation", f"{method} {template} is not in Monext's API documents")
        path = template
        for name in _PATH_PARAMETER.findall(template):
            value = path_values.get(name)
            if value is None:
                raise ValidationError(name, "is required")
            value = spec.prepare(spec.parameter_schema(method, template, name), value, name)
            text = str(value)
            if not text or len(text) > MAX_PATH_ID_LENGTH:
                raise ValidationError(name, f"must be 1 to {MAX_PATH_ID_LENGTH} characters long")
            if text in (".", ".."):  # dot segments survive escaping, and URLs resolve them away
                raise ValidationError(name, "cannot be . or ..")
            path = path.replace("{" + name + "}", quote(text, safe=""))
        schema = spec.body_schema(method, template)
        if schema is None:
            return self.call(method, path)
        return self.call(method, path, json=spec.prepare(schema, dict(body or {})))

    # -- payment sessions and transactions --------------------------------------------------------

    def create_session(self, **fields: Any) -> dict[str, Any]:
        """``POST /v1/checkout/payments/sessions``: a hosted payment page for one order.

        Required: ``point_of_sale_reference``, ``order`` (``reference``, ``amount`` in minor units,
        ``currency``) and ``return_url``; set ``notification_url`` to hookhub's
        ``/hooks/monext``. Gives ``sessionId`` and the ``redirectURL`` to send the buyer to.
        """
        answer = self.operation("POST", "/v1/checkout/payments/sessions", fields)
        order, session_id = fields.get("order") or {}, answer.get("sessionId")
        if isinstance(session_id, str) and session_id and isinstance(order, Mapping):
            self._on_created(Watch(kind="payment", order_id=str(order["reference"]), reference=session_id,
                                   amount=order["amount"], currency=str(order["currency"]), key=session_id))
        return answer

    def get_session(self, session_id: str) -> dict[str, Any]:
        """``GET /v1/checkout/payments/sessions/{sessionId}``: ``result``, ``order``, ``transactions``."""
        return self.operation("GET", "/v1/checkout/payments/sessions/{sessionId}", sessionId=session_id)

    def get_transaction(self, transaction_id: str) -> dict[str, Any]:
        """``GET /v1/checkout/transactions/{id}``: one transaction with its associated ones."""
        return self.operation("GET", "/v1/checkout/transactions/{id}", id=transaction_id)

    def capture(self, transaction_id: str, amount: int, **fields: Any) -> dict[str, Any]:
        """``POST /v1/checkout/transactions/{id}/captures`` of ``amount`` (minor units).

        ``option`` may be ``STANDARD``, ``LATE_DELIVERY`` or ``FINAL``.
        """
        return self.operation("POST", "/v1/checkout/transactions/{id}/captures", {"amount": amount, **fields},
                              id=transaction_id)

    def refund(self, transaction_id: str, amount: int, **fields: Any) -> dict[str, Any]:
        """``POST /v1/checkout/transactions/{id}/refunds`` of ``amount`` (minor units)."""
        return self.operation("POST", "/v1/checkout/transactions/{id}/refunds", {"amount": amount, **fields},
                              id=transaction_id)

    def cancel(self, transaction_id: str, amount: int, **fields: Any) -> dict[str, Any]:
        """``POST /v1/checkout/transactions/{id}/cancels``: void ``amount`` of an authorization."""
        return self.operation("POST", "/v1/checkout/transactions/{id}/cancels", {"amount": amount, **fields},
                              id=transaction_id)

    def alive(self) -> dict[str, Any]:
        """``GET /v1/checkout/alive``: whether the API answers (with these credentials)."""
        return self.operation("GET", "/v1/checkout/alive")

    # -- MX wallets -------------------------------------------------------------------------------

    _WALLETS = "/v1/checkout/merchants/{merchantId}/mxwallets"
    _WALLET = _WALLETS + "/{mxWalletId}"
    _INSTRUMENTS = _WALLET + "/paymentinstruments"
    _INSTRUMENT = _INSTRUMENTS + "/{paymentInstrumentRank}"

    def create_wallet(self, mx_wallet_id: str, payment_instrument_origin: Mapping[str, Any],
                      **fields: Any) -> dict[str, Any]:
        """``POST .../mxwallets``: a wallet holding the card of an accepted transaction.

        ``payment_instrument_origin`` is ``{"origin": "ExistingTransaction", "transaction_id": ...}``.
        """
        body = {"mxWalletId": mx_wallet_id, "paymentInstrumentOrigin": payment_instrument_origin, **fields}
        return self.operation("POST", self._WALLETS, body, merchantId=self.merchant_id)

    def get_wallet(self, mx_wallet_id: str) -> dict[str, Any]:
        """``GET .../mxwallets/{mxWalletId}``: the wallet and its payment instruments."""
        return self.operation("GET", self._WALLET, merchantId=self.merchant_id, mxWalletId=mx_wallet_id)

    def update_wallet(self, mx_wallet_id: str, **fields: Any) -> dict[str, Any]:
        """``PUT .../mxwallets/{mxWalletId}``: change ``holder`` or ``comment``."""
        return self.operation("PUT", self._WALLET, fields, merchantId=self.merchant_id, mxWalletId=mx_wallet_id)

    def set_wallet_status(self, mx_wallet_id: str, status: str) -> dict[str, Any]:
        """``PUT .../mxwallets/{mxWalletId}/status`` to ``ACTIVE`` or ``INACTIVE``."""
        return self.operation("PUT", self._WALLET + "/status", {"status": status}, merchantId=self.merchant_id,
                              mxWalletId=mx_wallet_id)

    def add_payment_instrument(self, mx_wallet_id: str, payment_instrument_origin: Mapping[str, Any],
                               **fields: Any) -> dict[str, Any]:
        """``POST .../paymentinstruments``: one more instrument; Monext gives it the next rank."""
        body = {"paymentInstrumentOrigin": payment_instrument_origin, **fields}
        return self.operation("POST", self._INSTRUMENTS, body, merchantId=self.merchant_id, mxWalletId=mx_wallet_id)

    def get_payment_instrument(self, mx_wallet_id: str, rank: int) -> dict[str, Any]:
        """``GET .../paymentinstruments/{paymentInstrumentRank}``."""
        return self.operation("GET", self._INSTRUMENT, merchantId=self.merchant_id, mxWalletId=mx_wallet_id,
                              paymentInstrumentRank=rank)

    def update_payment_instrument(self, mx_wallet_id: str, rank: int,
                                  payment_instrument_origin: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
        """``PUT .../paymentinstruments/{paymentInstrumentRank}``: replace the instrument at ``rank``."""
        body = {"paymentInstrumentOrigin": payment_instrument_origin, **fields}
        return self.operation("PUT", self._INSTRUMENT, body, merchantId=self.merchant_id, mxWalletId=mx_wallet_id,
                              paymentInstrumentRank=rank)

    def set_payment_instrument_status(self, mx_wallet_id: str, rank: int, status: str) -> dict[str, Any]:
        """``PUT .../paymentinstruments/{paymentInstrumentRank}/status`` to ``ACTIVE`` or ``INACTIVE``."""
        return self.operation("PUT", self._INSTRUMENT + "/status", {"status": status}, merchantId=self.merchant_id,
                              mxWalletId=mx_wallet_id, paymentInstrumentRank=rank)

    def set_default_payment_instrument(self, mx_wallet_id: str, rank: int) -> dict[str, Any]:
        """``PUT .../paymentinstruments/{paymentInstrumentRank}/default``."""
        return self.operation("PUT", self._INSTRUMENT + "/default", merchantId=self.merchant_id,
                              mxWalletId=mx_wallet_id, paymentInstrumentRank=rank)

    def create_wallet_session(self, **fields: Any) -> dict[str, Any]:
        """``POST /v1/checkout/mxwallets/sessions``: a page where the buyer manages their wallet.

        Required: ``point_of_sale_reference``, ``payment_method_ids``, ``mx_wallet_id``, ``return_url``.
        """
        return self.operation("POST", "/v1/checkout/mxwallets/sessions", fields)

    def get_wallet_session(self, mx_wallet_session_id: str) -> dict[str, Any]:
        """``GET /v1/checkout/mxwallets/sessions/{mxWalletSessionId}``."""
        return self.operation("GET", "/v1/checkout/mxwallets/sessions/{mxWalletSessionId}",
                              mxWalletSessionId=mx_wallet_session_id)

    # -- payouts ----------------------------------------------------------------------------------

    def create_sepa_transfer(self, amount: int, currency: str, payer_bank_account: Mapping[str, Any],
                             payee_bank_account: Mapping[str, Any], *, reference: str | None = None,
                             **fields: Any) -> dict[str, Any]:
        """``POST /v1/payout/sepatransfers``: pay ``amount`` (minor units) to a bank account.

        ``payer_bank_account`` is ``{"payment_method_id": ...}`` (your BANKTRANSFER method);
        ``payee_bank_account`` needs ``bic``, ``holder_name`` and ``iban``. ``reference`` is your own
        unique reference of the payout: sent in ``privateData`` as ``reference``, and what hookhub
        watches the transfer under (a transfer without one is not watched).
        """
        if reference is not None:
            if not isinstance(reference, str) or not 0 < len(reference) <= MAX_PATH_ID_LENGTH:
                raise ValidationError("reference", f"must be a string of 1 to {MAX_PATH_ID_LENGTH} characters")
            fields["private_data"] = {**(fields.get("private_data") or {}), "reference": reference}
        body = {"amount": amount, "currency": currency, "payerBankAccount": payer_bank_account,
                "payeeBankAccount": payee_bank_account, **fields}
        try:
            answer = self.operation("POST", "/v1/payout/sepatransfers", body)
        except ProviderUnavailable:
            # A 5xx or no answer: Monext may have paid. On record under the merchant's reference,
            # though Monext's API finds a transfer by its transaction id only.
            if reference:
                self._on_created(Watch(kind="payout", order_id=reference, reference=reference, amount=amount,
                                       currency=currency, key=payout_key(reference)))
            raise
        transaction = answer.get("transaction") if isinstance(answer.get("transaction"), dict) else {}
        transaction_id = str(transaction["id"]) if transaction.get("id") else None
        if reference:
            try:
                state: TransactionState | None = payout_state(reference, answer, amount, currency)
            except ProviderUnavailable:
                state = None  # an answer it cannot read: the watch asks again by the transaction id
            # On record before the answer is judged further: the transfer was made.
            self._on_created(Watch(kind="payout", order_id=reference, reference=transaction_id or reference,
                                   amount=amount, currency=currency, key=payout_key(reference), answer=state,
                                   context={"transaction_id": transaction_id} if transaction_id else {}))
        return answer

    def get_payout(self, transaction_id: str) -> dict[str, Any]:
        """``GET /v1/payout/transactions/{id}``: a payout transaction and its state."""
        return self.operation("GET", "/v1/payout/transactions/{id}", id=transaction_id)

    # -- lists ------------------------------------------------------------------------------------

    def list_page(self, path: str, *, page: int = 0, size: int | None = None, sort: str | None = None,
                  items: str | None = None, **filters: str | int) -> Page:
        """One page of the collection at ``path`` (``/v1/...``), with the seed's query parameters.

        ``size`` is the number of items per page, ``page`` the page index (from 0), ``sort``
        ``field`` or ``field,asc|desc``; other keywords are the collection's filters. ``items`` names
        the answer's list field; by default it is the answer's one list.
        """
        if not isinstance(path, str) or not path.startswith("/v1/") or "?" in path or "#" in path:
            raise ValidationError("path", "must be an API path such as /v1/...")
        if isinstance(page, bool) or not isinstance(page, int) or page < 0:
            raise ValidationError("page", "must be an int from 0")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValidationError("size", "must be a positive int")
        if sort is not None and (not isinstance(sort, str) or not _SORT.fullmatch(sort)):
            raise ValidationError("sort", "must be a field name, optionally followed by ,asc or ,desc")
        for name, value in filters.items():
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise ValidationError(name, "filters must be strings or ints")
        data = self.call("GET", path, params={"size": size, "page": page, "sort": sort, **filters})
        lists = {key: value for key, value in data.items() if isinstance(value, list)}
        if items is None and len(lists) != 1:
            raise ProviderUnavailable(self.provider, f"GET {path}: cannot tell the items among {sorted(lists)}")
        found = lists.get(items or next(iter(lists)), [])
        return Page(items=found, page=page, size=size, count=_int_or_none(data.get("count")),
                    start_index=_int_or_none(data.get("startIndex")), end_index=_int_or_none(data.get("endIndex")),
                    record_total=_int_or_none(data.get("recordTotal")), raw=data)

    def iterate(self, path: str, *, size: int = 50, sort: str | None = None, items: str | None = None,
                first_page: int = 0, **filters: str | int) -> Iterator[dict[str, Any]]:
        """Every item of the collection at ``path`` from ``first_page`` on, page after page.

        It stops at ``recordTotal`` (Monext may serve fewer items per page than ``size`` asked for,
        so a short page alone does not end the walk), at an empty page, or, when the answer gives
        no ``recordTotal``, at a short page. A page that does not move forward raises
        ``ProviderUnavailable`` rather than yield the same items again.
        """
        page, previous, seen = first_page, None, 0
        while True:
            current = self.list_page(path, page=page, size=size, sort=sort, items=items, **filters)
            if previous is not None and (current.items == previous.items or (
                    current.start_index is not None and current.start_index == previous.start_index)):
                raise ProviderUnavailable(self.provider, f"GET {path}: page {page} repeats page {page - 1}")
            yield from current.items
            seen += len(current.items)
            if not current.items:
                return
            total = current.record_total
            if total is None:
                if len(current.items) < size:
                    return
            elif current.end_index is not None:
                if current.end_index + 1 >= total:
                    return
            elif current.start_index is not None:
                if current.start_index + len(current.items) >= total:
                    return
            elif first_page * size + seen >= total:
                return
            page, previous = page + 1, current
