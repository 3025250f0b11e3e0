"""What the security review found, each with the fix that answers it: result tokens bound to their
order and checkout, refused calls that cost little, made-up references that cost the provider's API
nothing, secrets scrubbed in every form, references and names that cannot smuggle control
characters, and buyers' pages kept out of caches."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from conftest import PUBLIC_URL, SECRET_KEY, drain, hub_of
from servers import Gunicorn

import hookhub
from hookhub import (InboundCall, InvalidResultToken, Provider, ProviderUnavailable, Setting, Trigger, hookimpl,
                     read_result, tokens)
from hookhub.redact import Redactor
from hookhub.store.store import REFUSED_BODY_BYTES


def token_of(response) -> dict:
    assert response.status_code == 303, response.get_data(as_text=True)
    [token] = parse_qs(urlsplit(response.headers["Location"]).query)["result"]
    return read_result(token, secret_key=SECRET_KEY)


def raw_token(response) -> str:
    return parse_qs(urlsplit(response.headers["Location"]).query)["result"][0]


# -- 1. result tokens: what they say, and about which order and checkout ------------------------------


def test_a_result_token_says_the_amount_currency_and_transaction(client, moncash):
    moncash.add_payment("t-100", "order-100", 1050)
    result = token_of(client.get("/return/moncash?transactionId=t-100"))
    assert (result["order_id"], result["status"], result["amount"], result["currency"], result["transaction_id"]) == \
        ("order-100", "approved", 105000, "HTG", "t-100")
    assert result["nonce"] is None  # MonCash's return URL is fixed in its portal: no checkout nonce


def test_a_token_minted_for_another_order_is_refused_by_the_shop_page(client, moncash):
    # MonCash returns are unsigned: anyone who knows a paid transaction id gets a token for its order.
    moncash.add_payment("t-victim", "order-victim", 500)
    token = raw_token(client.get("/return/moncash?transactionId=t-victim"))
    assert read_result(token, secret_key=SECRET_KEY, expected_order_id="order-victim")["status"] == "approved"
    with pytest.raises(InvalidResultToken, match="another order"):
        read_result(token, secret_key=SECRET_KEY, expected_order_id="order-attacker")


def test_the_checkout_nonce_is_echoed_by_the_first_return_only(app, client, monext):
    checkout = hookhub.start_payment("monext", order_id="order-n1", amount=700, currency="EUR", app=app,
                                     point_of_sale_reference="POS_WEB-1")
    assert checkout.nonce and len(checkout.nonce) >= 16
    asked = monext.sessions[checkout.reference]["request"]["returnURL"]
    assert asked == f"{PUBLIC_URL}/return/monext?hookhub_nonce={checkout.nonce}"
    monext.settle(checkout.reference, "ACCEPTED")
    back = f"/return/monext?hookhub_nonce={checkout.nonce}&paylinetoken={checkout.reference}"

    first = raw_token(client.get(back))
    result = read_result(first, secret_key=SECRET_KEY, expected_order_id="order-n1", expected_nonce=checkout.nonce)
    assert (result["status"], result["amount"], result["nonce"]) == ("approved", 700, checkout.nonce)
    # The same return URL again (a replay, or someone who saw it): a genuine token, but not this checkout's.
    replayed = raw_token(client.get(back))
    assert read_result(replayed, secret_key=SECRET_KEY)["nonce"] is None
    with pytest.raises(InvalidResultToken, match="checkout"):
        read_result(replayed, secret_key=SECRET_KEY, expected_order_id="order-n1", expected_nonce=checkout.nonce)


def test_a_nonce_put_on_another_orders_return_is_neither_echoed_nor_used_up(app, client, monext):
    mine = hookhub.start_payment("monext", order_id="order-mine", amount=100, currency="EUR", app=app,
                                 point_of_sale_reference="POS_WEB-1")
    other = monext.open_session("order-other", 100)
    monext.settle(other, "ACCEPTED")
    stolen = read_result(raw_token(client.get(f"/return/monext?hookhub_nonce={mine.nonce}&paylinetoken={other}")),
                         secret_key=SECRET_KEY)
    assert (stolen["order_id"], stolen["nonce"]) == ("order-other", None)
    monext.settle(mine.reference, "ACCEPTED")
    own = read_result(raw_token(client.get(f"/return/monext?hookhub_nonce={mine.nonce}&paylinetoken={mine.reference}")),
                      secret_key=SECRET_KEY, expected_nonce=mine.nonce)
    assert own["order_id"] == "order-mine"


def test_a_return_the_provider_cannot_confirm_yet_still_binds_its_checkout(app, client, monext):
    checkout = hookhub.start_payment("monext", order_id="order-later", amount=300, currency="EUR", app=app,
                                     point_of_sale_reference="POS_WEB-1")
    monext.outage = True
    try:
        response = client.get(f"/return/monext?hookhub_nonce={checkout.nonce}&paylinetoken={checkout.reference}")
    finally:
        monext.outage = False
    result = read_result(raw_token(response), secret_key=SECRET_KEY, expected_order_id="order-later",
                         expected_nonce=checkout.nonce)
    assert (result["status"], result["event_id"]) == ("pending", None)


def test_a_checkout_with_the_shops_own_return_url_has_no_nonce(app, monext):
    checkout = hookhub.start_payment("monext", order_id="order-own-url", amount=100, currency="EUR", app=app,
                                     point_of_sale_reference="POS_WEB-1", return_url="https://shop.example/back")
    assert checkout.nonce is None and checkout.watched
    assert monext.sessions[checkout.reference]["request"]["returnURL"] == "https://shop.example/back"


def test_providers_with_a_fixed_return_url_get_no_nonce(app, moncash):
    checkout = hookhub.start_payment("moncash", order_id="order-fixed", amount=100, currency="HTG", app=app)
    assert checkout.nonce is None and checkout.watched


def test_tokens_from_before_amounts_still_read():
    from itsdangerous import URLSafeTimedSerializer

    old = URLSafeTimedSerializer(SECRET_KEY, salt=tokens.SALT).dumps(
        {"event_id": "evt_1", "order_id": "o-1", "provider": "moncash", "status": "approved"})
    result = read_result(old, secret_key=SECRET_KEY, expected_order_id="o-1")
    assert (result["status"], result["amount"], result["nonce"]) == ("approved", None, None)


# -- 3. made-up references cost the provider's API (almost) nothing -------------------------------------


def test_rechecks_are_capped_per_caller_address_and_overall(make_app, moncash):
    app = make_app({"HOOKHUB_RECHECKS_PER_ADDRESS": 3, "HOOKHUB_RECHECKS_MAX": 5})
    client = app.test_client()
    moncash.outage = True  # every call to MonCash's API answers 503: the returns are checked later
    try:
        outcomes = [client.get(f"/return/moncash?transactionId=a{i}", environ_base={"REMOTE_ADDR": "203.0.113.7"})
                    for i in range(6)]
        outcomes += [client.get(f"/return/moncash?transactionId=b{i}", environ_base={"REMOTE_ADDR": "198.51.100.9"})
                     for i in range(6)]
    finally:
        moncash.outage = False
    assert all(r.status_code == 303 and "/result/pending" in r.headers["Location"] for r in outcomes)
    pending = hub_of(app).store.list_verifications()
    assert sorted(v["reference"] for v in pending) == ["a0", "a1", "a2", "b0", "b1"]
    recorded = {c["reference"]: c["outcome"] for c in hub_of(app).store.list_calls(limit=100)}
    assert recorded["a3"] == recorded["b2"] == "unchecked_provider_unavailable"
    assert recorded["a0"] == "deferred_provider_unavailable"


def test_a_made_up_reference_is_given_up_at_once_when_the_provider_says_it_does_not_know_it(app, client, moncash):
    moncash.outage = True
    try:
        client.get("/return/moncash?transactionId=never-made")
    finally:
        moncash.outage = False
    asked = moncash.count("/Api/v1/RetrieveTransactionPayment")
    drain(app)
    [job] = hub_of(app).store.list_verifications()
    assert job["status"] == "gave_up"
    assert moncash.count("/Api/v1/RetrieveTransactionPayment") == asked + 1  # one re-check, then never again


def test_a_reference_hookhub_started_is_known_as_such(app, monext):
    checkout = hookhub.start_payment("monext", order_id="order-own", amount=100, currency="EUR", app=app,
                                     point_of_sale_reference="POS_WEB-1")
    store = hub_of(app).store
    assert store.started_here("monext", checkout.reference)
    assert not store.started_here("monext", "made-up-session") and not store.started_here("moncash", checkout.reference)


def test_refused_calls_and_given_up_rechecks_are_deleted_after_their_retention(make_app, moncash):
    app = make_app({"HOOKHUB_REFUSED_RETENTION_SECONDS": 0.001})
    client = app.test_client()
    moncash.add_payment("kept-1", "order-kept", 10)
    client.get("/return/moncash?transactionId=kept-1")
    client.post("/hooks/monri", data=b"{}", headers={"Authorization": "WP3-callback 00"})
    client.get("/return/moncash?transactionId=made-up-7", data=b"x" * 10_000)  # MonCash does not know it
    moncash.outage = True
    try:
        client.get("/return/moncash?transactionId=junk-9")
    finally:
        moncash.outage = False
    watch = hookhub.start_payment("moncash", order_id="order-watched", amount=10, currency="HTG", app=app)
    assert watch.watched
    store = hub_of(app).store
    [made_up] = store.list_calls(outcome="unknown_transaction")
    assert (made_up["refused"], made_up["body_size"], len(made_up["body"])) == (True, 10_000, REFUSED_BODY_BYTES)
    hub_of(app)._next_housekeeping = float("inf")
    drain(app)  # the re-check of junk-9 gives up
    assert [v["status"] for v in store.list_verifications() if v["reference"] == "junk-9"] == ["gave_up"]
    hub_of(app)._next_housekeeping = 0.0
    hub_of(app).run_due_work()
    assert [c["outcome"] for c in store.list_calls()] == ["deferred_provider_unavailable", "event"]
    assert [v["reference"] for v in store.list_verifications() if v["kind"] == "recheck"] == []  # gone
    assert store.get_watch("moncash", "order-watched", "payment") is not None  # watches are kept


# -- 2. a flood of refused calls, through a real server -------------------------------------------------


@pytest.fixture(scope="module")
def host(tmp_path_factory, moncash_server, monri_server, monext_server):
    server = Gunicorn(tmp_path_factory.mktemp("hardening"), moncash_server, monri_server, monext_server)
    yield server
    server.close()


def _store_bytes(server: Gunicorn) -> int:
    """The store file's size once its write-ahead log is folded in (the log's own size is reused space)."""
    with contextlib.closing(sqlite3.connect(server.instance / "hookhub.sqlite3")) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return (server.instance / "hookhub.sqlite3").stat().st_size


@pytest.mark.server
def test_a_flood_of_large_refused_calls_keeps_only_the_start_of_each(host):
    body = b'{"order_number": "x", "padding": "' + b"A" * 64_900 + b'"}'
    assert 64_000 < len(body) < 64 * 1024  # under the body limit: each one is read and refused
    before = _store_bytes(host)
    with requests.Session() as session:
        for _ in range(200):
            response = session.post(f"{host.url}/hooks/monri", data=body,
                                    headers={"Authorization": "WP3-callback " + "0" * 128,
                                             "Content-Type": "application/json"})
            assert response.status_code == 401 and response.json()["error"] == "invalid_signature"
    grown = _store_bytes(host) - before
    assert grown < 3 * 1024 * 1024, f"200 refused calls of 65 kB grew the store by {grown} bytes"
    with host.store() as store:
        refused = [c for c in store.list_calls(limit=500) if c["outcome"] == "invalid_signature"]
    assert len(refused) == 200
    for call in refused:
        assert len(call["body"]) == REFUSED_BODY_BYTES and bytes(call["body"]) == body[:REFUSED_BODY_BYTES]
        assert (call["body_size"], call["body_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
        assert call["headers"]["Authorization"] == "WP3-callback [redacted]"


@pytest.mark.server
def test_a_refused_call_with_huge_headers_keeps_only_the_start_of_them(host):
    headers = {f"X-Padding-{i}": "B" * 4000 for i in range(40)}
    response = requests.post(f"{host.url}/hooks/monri", data=b"{}",
                             headers={"Authorization": "WP3-callback " + "0" * 128, **headers})
    assert response.status_code == 401
    with host.store() as store:
        [call] = [c for c in store.list_calls(limit=500) if "X-Padding-0" in c["headers"]]
    kept = sum(len(k) + len(v) for k, v in call["headers"].items())
    assert kept < 5000, kept  # of 160 kB
    assert "more header(s) not kept" in call["headers"]["..."]


@pytest.mark.server
def test_returns_and_result_pages_are_kept_out_of_caches_and_referers(host, moncash_server):
    moncash_server.add_payment("t-cache", "order-cache", 10)
    response = requests.get(f"{host.url}/return/moncash?transactionId=t-cache", allow_redirects=False)
    assert response.status_code == 303
    page = requests.get(requests.compat.urljoin(host.url, response.headers["Location"]))
    assert page.status_code == 200 and "order-cache" in page.text
    for answer in (response, page):
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.server
def test_a_provider_name_with_terminal_escapes_is_stored_as_unknown_and_printed_escaped(host):
    evil = "\x1b]0;owned\x07\x1b[31m"
    response = requests.post(f"{host.url}/hooks/{quote(evil)}", data=b"{}", headers={"X-Note": "\x9b31m"})
    assert response.status_code == 404 and response.json()["error"] == "unknown_provider"
    with host.store() as store:
        [call] = [c for c in store.list_calls(limit=500) if c["outcome"] == "unknown_provider"]
    assert call["provider"] == "unknown" and evil in call["path"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKHUB_")}
    env.update(HOOKHUB_DATABASE_URL=host.database_url, HOOKHUB_INSTANCE_PATH=str(host.instance),
               HOOKHUB_SECRET_KEY=SECRET_KEY)
    hookhub_command = str(Path(sys.executable).parent / "hookhub")
    listed = subprocess.run([hookhub_command, "calls", "list"], env=env, capture_output=True, check=True)
    shown = subprocess.run([hookhub_command, "calls", "show", str(call["id"])], env=env, capture_output=True,
                           check=True)
    for output in (listed.stdout, shown.stdout):
        text = output.decode()
        assert not any(ch in text for ch in "\x1b\x07\x9b"), text
    assert "\\x9b31m" in shown.stdout.decode() and "unknown" in listed.stdout.decode()


# -- 4. secrets, in every form, out of every stored column and log line ---------------------------------


class Leaky(Provider):
    """A third-party provider whose API quotes the request back in its errors, credentials and all."""

    name = "leaky"
    settings = (Setting("account"), Setting("password", secret=True))

    def create_client(self):
        return None

    def read_callback(self, call: InboundCall) -> Trigger:
        return Trigger(call.json_object()["id"])

    read_return = read_callback

    def fetch(self, trigger: Trigger):
        basic = base64.b64encode(f"{self.config['account']}:{self.config['password']}".encode()).decode()
        raise ProviderUnavailable(self.name, (
            f"503 for GET /tx/{trigger.reference} with Authorization: Basic {basic}; "
            f"form password={quote(self.config['password'])}; issued access_token=eyJrb3Vnaz.runtime-token; "
            f'retry with header "Authorization: Bearer eyJhbGciOi.runtime.bearer"'))


class LeakyPlugin:
    @hookimpl
    def hookhub_register_providers(self, register):
        register(Leaky)


SECRET = "s3cr&t/pass+word=value"


def test_provider_errors_quoting_credentials_are_stored_and_logged_without_them(make_app, caplog):
    app = make_app({"HOOKHUB_LEAKY_ACCOUNT": "acct-42", "HOOKHUB_LEAKY_PASSWORD": SECRET}, plugins=[LeakyPlugin()])
    client = app.test_client()
    caplog.set_level(logging.INFO, logger="hookhub")
    assert client.post("/hooks/leaky", json={"id": "tx-1"}).status_code == 503
    client.get("/return/leaky", json={"id": "tx-2"})
    drain(app)
    store = hub_of(app).store
    stored = repr(store.list_calls()) + repr(store.list_verifications())
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    basic = base64.b64encode(f"acct-42:{SECRET}".encode()).decode()
    for text in (stored, logged):
        for leaked in (SECRET, quote(SECRET), quote(SECRET, safe=""), basic, "runtime-token", "runtime.bearer"):
            assert leaked not in text
    assert "Basic [redacted]" in stored and "Bearer [redacted]" in stored and "access_token=[redacted]" in stored
    assert "503 for GET /tx/tx-1" in stored  # what the operator needs stays


@pytest.mark.parametrize("user", ["", "a", "ab", "abc", "merchant-0042"])
def test_a_secret_inside_any_basic_credential_or_encoding_is_hidden(user):
    redactor = Redactor([SECRET])
    basic = base64.b64encode(f"{user}:{SECRET}".encode()).decode()
    for text in (basic, quote(basic, safe=""), quote(SECRET, safe="").lower(), SECRET.replace("/", "\\/"),
                 base64.urlsafe_b64encode(SECRET.encode()).decode()):
        assert "[redacted]" in redactor.secrets_only(f"seen: {text}")
        assert SECRET not in redactor.secrets_only(text)
    # Enough of the encoded secret is gone that what is left cannot be decoded back to it.
    left = redactor.secrets_only(basic).replace("[redacted]", "")
    assert len(left) <= 4 * (len(user) + 1) // 3 + 4


def test_moncash_basic_credentials_are_among_its_secrets(app, moncash):
    basic = base64.b64encode(f"{moncash.client_id}:{moncash.client_secret}".encode()).decode()
    assert basic in hub_of(app).secrets


def test_a_configured_secret_sent_in_any_header_query_or_body_is_not_stored(app, client, moncash):
    secret = moncash.client_secret
    client.post(f"/hooks/moncash?note={quote(secret)}", data=f"transactionId=zz&echo={secret}",
                headers={"X-Forwarded-Note": secret, "Content-Type": "application/x-www-form-urlencoded"})
    [call] = hub_of(app).store.list_calls()
    assert secret not in repr(call) and quote(secret) not in repr(call)
    assert call["headers"]["X-Forwarded-Note"] == "[redacted]"


# -- 5. references: exactly the characters a provider id has -------------------------------------------


@pytest.mark.parametrize("junk", ["abc\n", "abc\r\ninjected", "abc\x00", "abc\u2028"])
def test_a_reference_with_a_trailing_newline_never_reaches_the_provider(make_app, junk):
    app = make_app({"HOOKHUB_LEAKY_ACCOUNT": "acct-42", "HOOKHUB_LEAKY_PASSWORD": SECRET}, plugins=[LeakyPlugin()])
    # Leaky passes the id on as it came; any fetch of it would answer 503.
    response = app.test_client().post("/hooks/leaky", json={"id": junk})
    assert response.status_code == 400 and response.get_json()["error"] == "malformed_reference"
