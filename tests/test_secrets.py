"""After a run through every provider and every kind of failure, no credential is anywhere: not in
logs, stored calls, events, deliveries, re-checks or any answer."""

from __future__ import annotations

import base64
import json
import logging

from conftest import drain, hub_of
from hookhub import hookimpl

DATABASES = ("sqlite", "postgresql")


def plain(value):
    return bytes(value).decode("latin-1") if isinstance(value, (bytes, memoryview)) else str(value)


def test_no_secret_survives_a_full_run(make_app, moncash, monri, monext, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = {
        "moncash client secret": moncash.client_secret,
        "monri merchant key": monri.merchant_key,
        "monri authenticity token": monri.authenticity_token,
        "monext access key": monext.access_key,
        "monext basic credentials": base64.b64encode(f"{monext.merchant_id}:{monext.access_key}".encode()).decode(),
    }

    class Leaky:
        """A handler whose failures quote the credentials it was given."""

        @hookimpl
        def hookhub_handle_event(self, event):
            raise RuntimeError(f"could not reach the ledger with {moncash.client_secret} / {monri.merchant_key}")

    app = make_app({"HOOKHUB_DELIVERY_MAX_ATTEMPTS": 2}, plugins=[Leaky()])
    client = app.test_client()
    answers = []

    def keep(response):
        answers.append(response.get_data(as_text=True) + json.dumps(dict(response.headers)))
        return response

    # MonCash: a return and a callback that carries a caller's bearer token; an outage; a revoked token.
    moncash.add_payment("s-1", "order-s1", 10)
    keep(client.get("/return/moncash?transactionId=s-1"))
    keep(client.post("/hooks/moncash", json={"transactionId": "s-1"}, headers={"Authorization": "Bearer caller-token-1"}))
    moncash.outage = True
    keep(client.post("/hooks/moncash", json={"transactionId": "s-2"}))
    moncash.outage = False
    moncash.revoke_tokens()
    keep(client.post("/hooks/moncash", json={"transactionId": "s-1"}))
    # Monri: a good callback, a forged one, a signed return.
    raw = json.dumps({"order_number": "order-s3", "amount": 100, "currency": "EUR", "status": "approved",
                      "response_code": "0000", "transaction_type": "purchase", "id": 3}).encode()
    good_signature = monri.callback_headers(raw)
    keep(client.post("/hooks/monri", data=raw, headers=good_signature))
    keep(client.post("/hooks/monri", data=raw, headers={"Authorization": "WP3-callback " + "ab" * 64}))
    keep(client.get(monri.signed_return_url("https://hooks.shop.example/hh",
                                            "amount=100&currency=EUR&order_number=order-s4&response_code=0000")
                    [len("https://hooks.shop.example/hh"):]))
    # Monext: a paid session, and the same with credentials Monext refuses.
    session_id = monext.open_session("order-s5", 500)
    monext.settle(session_id, "ACCEPTED")
    keep(client.get(f"/hooks/monext?token={session_id}", headers={"Authorization": "Basic dXNlcjpwYXNz"}))
    monext.unauthorized_as_200 = True
    refused = make_app({"HOOKHUB_MONEXT_ACCESS_KEY": monext.access_key + "-old"}, plugins=[Leaky()])
    keep(refused.test_client().get(f"/hooks/monext?token={session_id}"))
    drain(app)
    drain(refused)

    store = hub_of(app).store
    assert store.list_deliveries(status="dead"), "the leaky handler's tracebacks must have been stored"
    bearer_tokens = set(moncash.tokens) | {"caller-token-1"}
    assert bearer_tokens - {"caller-token-1"}, "hookhub must have been given MonCash bearer tokens"
    inbound_authorizations = {good_signature["Authorization"].split(" ", 1)[1], "dXNlcjpwYXNz"}
    everything = "\n".join([
        caplog.text,
        *answers,
        *(json.dumps(c, default=plain) for s in (store, hub_of(refused).store) for c in s.list_calls(limit=1000)),
        *(json.dumps(e.to_dict()) for s in (store, hub_of(refused).store) for e in s.list_events(limit=1000)),
        *(json.dumps(d, default=str) for s in (store, hub_of(refused).store) for d in s.list_deliveries()),
        *(json.dumps(v, default=str) for s in (store, hub_of(refused).store) for v in s.list_verifications()),
    ])
    assert "could not reach the ledger with [redacted]" in everything  # the tracebacks are there, scrubbed
    found = {name for name, value in secrets.items() if value in everything}
    found |= {f"bearer token {t}" for t in bearer_tokens if t in everything}
    found |= {f"authorization {a[:12]}..." for a in inbound_authorizations if a in everything}
    assert found == set()
