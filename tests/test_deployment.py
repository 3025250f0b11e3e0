"""What an operator sets up around hookhub: proxies in front, retention of stored calls, settings."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from conftest import hub_of
from hookhub.errors import ConfigError
from hookhub.store import schema, utcnow

DATABASES = ("sqlite", "postgresql")


@pytest.mark.parametrize("hops", [0, 1, 2])
def test_forwarded_for_counts_only_as_far_as_the_proxies_configured(make_app, moncash, hops):
    app = make_app({"HOOKHUB_PROXY_HOPS": hops})
    moncash.add_payment("px-1", "order-px", 10)
    # The buyer forged the first entry; the load balancer saw 198.51.100.7 and nginx the balancer.
    forwarded = {"X-Forwarded-For": "203.0.113.66, 198.51.100.7, 10.0.0.1", "X-Forwarded-Proto": "http",
                 "X-Forwarded-Host": "evil.example", "X-Forwarded-Prefix": "//evil.example"}
    response = app.test_client().get("/return/moncash?transactionId=px-1", headers=forwarded,
                                     environ_base={"REMOTE_ADDR": "10.0.0.2"})
    [call] = hub_of(app).store.list_calls()
    assert call["peer"] == {0: "10.0.0.2", 1: "10.0.0.1", 2: "198.51.100.7"}[hops]
    # Links never follow forwarded hosts or prefixes, whoever sent them.
    assert response.headers["Location"].startswith("/result/success?")


@pytest.mark.databases("sqlite")
@pytest.mark.parametrize("name,value", [("HOOKHUB_PROXY_HOPS", "-1"), ("HOOKHUB_PROXY_HOPS", "one"),
                                        ("HOOKHUB_DATABASE_POOL_SIZE", "0"),
                                        ("HOOKHUB_DATABASE_URL", "mysql://root@127.0.0.1/test"),
                                        ("HOOKHUB_DATABASE_URL", "postgresql+nodriver://postgres@127.0.0.1/test"),
                                        ("HOOKHUB_DATABASE_URL", "postgresql://u@db:5432:x/hookhub"),
                                        ("HOOKHUB_DATABASE_URL", "not a url")])
def test_impossible_deployment_settings_stop_the_start(make_app, name, value):
    with pytest.raises(ConfigError, match=name):
        make_app({name: value})


def test_old_inbound_calls_are_pruned_but_not_events_or_pending_checks(make_app, recorder, moncash):
    app = make_app(plugins=[recorder])
    client = app.test_client()
    moncash.add_payment("old-1", "order-old-1", 10)
    moncash.add_payment("old-2", "order-old-2", 10, message="processing")  # its re-check stays pending
    moncash.add_payment("new-1", "order-new-1", 10)
    client.post("/hooks/moncash", json={"transactionId": "old-1"})
    client.post("/hooks/moncash", json={"transactionId": "old-1"})
    client.post("/hooks/moncash", json={"transactionId": "old-2"})
    client.post("/hooks/moncash", data=b"{", content_type="application/json")
    store = hub_of(app).store
    with store._write() as conn:  # these four arrived 100 days ago
        conn.execute(update(schema.inbound_calls).values(received_at=utcnow() - timedelta(days=100)))
    client.post("/hooks/moncash", json={"transactionId": "new-1"})

    runner = app.test_cli_runner()
    dry = runner.invoke(args=["hookhub", "calls", "prune", "--older-than", "90d", "--dry-run"])
    assert dry.exit_code == 0 and dry.output.startswith("3 inbound calls") and "would be deleted" in dry.output
    assert len(store.list_calls()) == 5
    pruned = runner.invoke(args=["hookhub", "calls", "prune", "--older-than", "90d"])
    assert pruned.exit_code == 0 and pruned.output.startswith("3 inbound calls")
    kept = store.list_calls()
    assert sorted(c["reference"] or "" for c in kept) == ["new-1", "old-2"]
    assert sorted(e.transaction_id for e in store.list_events()) == ["new-1", "old-1", "old-2"]
    assert runner.invoke(args=["hookhub", "calls", "prune"]).exit_code == 2  # a cutoff is required


@pytest.mark.databases("sqlite")  # the URL under test replaces it
def test_a_database_password_never_reaches_answers_or_logs(make_app, caplog):
    url = "postgresql://hookhub:db-password-never-shown@127.0.0.1:1/hookhub"  # nothing listens there
    app = make_app({"HOOKHUB_DATABASE_URL": url, "HOOKHUB_STORE_TIMEOUT": 1})  # starts, and says why it cannot serve
    client = app.test_client()
    answers = [client.get("/healthz"), client.post("/hooks/moncash", json={"transactionId": "1"})]
    assert [a.status_code for a in answers] == [503, 503]
    listed = app.test_cli_runner().invoke(args=["hookhub", "events", "list"])
    assert listed.exit_code == 1
    seen = caplog.text + listed.output + "".join(a.get_data(as_text=True) for a in answers)
    assert "127.0.0.1" in seen and "db-password-never-shown" not in seen
