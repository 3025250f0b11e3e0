"""`GET /metrics` and the log line of each inbound call, through the app."""

from __future__ import annotations

import json
import logging

import pytest

from conftest import drain, hub_of
from hookhub import hookimpl
from hookhub.logs import JsonFormatter
from hookhub.metrics import REGISTRY


def sample(name, **labels):
    """This process's current value of one series (0 when it has none yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(client, name, **labels):
    text = client.get("/metrics").get_data(as_text=True)
    for line in text.splitlines():
        if line.startswith(name + ("{" if labels else " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


class Failing:
    @hookimpl
    def hookhub_handle_event(self, event):
        raise RuntimeError("the shop's database is down")


def test_calls_dedupe_hits_and_verification_failures_are_counted(app, client, moncash):
    moncash.add_payment("m-1", "order-m1", 10)
    before = {key: sample(*key[:1], **dict(key[1:])) for key in [
        ("hookhub_inbound_calls_total", ("provider", "moncash"), ("route", "return"), ("outcome", "event")),
        ("hookhub_dedupe_hits_total", ("provider", "moncash"), ("route", "return")),
        ("hookhub_verification_failures_total", ("provider", "moncash"), ("reason", "unknown_transaction")),
        ("hookhub_inbound_calls_total", ("provider", "unknown"), ("route", "callback"),
         ("outcome", "unknown_provider")),
        ("hookhub_provider_api_seconds_count", ("provider", "moncash")),
        ("hookhub_provider_api_errors_total", ("provider", "moncash"), ("reason", "http_404")),
    ]}
    client.get("/return/moncash?transactionId=m-1")
    client.get("/return/moncash?transactionId=m-1")
    client.post("/hooks/moncash", json={"transactionId": "no-such-payment"})
    client.post("/hooks/made-up-provider-name", json={})
    after = {key: sample(*key[:1], **dict(key[1:])) for key in before}
    assert [after[k] - before[k] for k in before] == [1, 1, 1, 1, 4, 1]  # token + 3 fetches; one 404
    assert scraped(client, "hookhub_inbound_calls_total", provider="made-up-provider-name") is None


def test_delivery_gauges_come_from_the_store(make_app, moncash):
    app = make_app({"HOOKHUB_DELIVERY_MAX_ATTEMPTS": 1}, plugins=[Failing()])
    client = app.test_client()
    assert scraped(client, "hookhub_oldest_pending_delivery_age_seconds") == 0
    failures = sample("hookhub_handler_failures_total", handler=f"{Failing.__module__}.Failing")
    moncash.add_payment("g-1", "order-g1", 10)
    client.get("/return/moncash?transactionId=g-1")
    handler = f"{Failing.__module__}.Failing"
    assert scraped(client, "hookhub_deliveries", handler=handler, status="pending") == 1
    assert scraped(client, "hookhub_oldest_pending_delivery_age_seconds") >= 0
    assert scraped(client, "hookhub_store_up") == 1
    drain(app)
    assert scraped(client, "hookhub_deliveries", handler=handler, status="pending") == 0
    assert scraped(client, "hookhub_deliveries", handler=handler, status="dead") == 1
    assert sample("hookhub_handler_failures_total", handler=handler) == failures + 1


def test_metrics_can_ask_for_a_bearer_token(make_app):
    client = make_app({"HOOKHUB_METRICS_TOKEN": "scrape-token-0123456789"}).test_client()
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.get_json()["error"] == "unauthorized"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    answer = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-0123456789"})
    assert answer.status_code == 200 and answer.content_type.startswith("text/plain")
    assert "hookhub_inbound_calls" in answer.get_data(as_text=True)


def test_one_log_line_per_inbound_call_with_its_fields(client, moncash, caplog):
    caplog.set_level(logging.INFO, logger="hookhub")
    moncash.add_payment("l-1", "order-l1", 10)
    client.get("/return/moncash?transactionId=l-1")
    client.post("/hooks/moncash", data=b"not json", content_type="application/json")
    lines = [r for r in caplog.records if getattr(r, "hookhub", None)]
    assert [(r.hookhub["provider"], r.hookhub["route"], r.hookhub["outcome"], r.hookhub["status"],
             r.hookhub["transaction"]) for r in lines] == [
        ("moncash", "return", "event", 303, "l-1"), ("moncash", "callback", lines[1].hookhub["outcome"], 400, None)]
    assert all(r.hookhub["latency_ms"] >= 0 for r in lines)
    entry = json.loads(JsonFormatter().format(lines[0]))
    assert {k: entry[k] for k in ("level", "logger", "provider", "route", "outcome", "status", "transaction")} == {
        "level": "INFO", "logger": "hookhub", "provider": "moncash", "route": "return", "outcome": "event",
        "status": 303, "transaction": "l-1"}
    assert "moncash return GET -> 303 event transaction=l-1" in entry["message"]


def test_secrets_never_reach_the_structured_fields(make_app, moncash, caplog):
    caplog.set_level(logging.INFO, logger="hookhub")
    app = make_app()
    secret = moncash.client_secret
    # A caller who knows a secret puts it where the log line quotes the request.
    app.test_client().get(f"/return/moncash?transactionId={secret}")
    entries = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    assert entries and secret not in json.dumps(entries) and secret not in caplog.text


@pytest.mark.parametrize("name,value", [("HOOKHUB_LOG_FORMAT", "xml"), ("HOOKHUB_LOG_LEVEL", "LOUD")])
def test_bad_log_settings_stop_the_start(make_app, name, value):
    from hookhub import ConfigError

    with pytest.raises(ConfigError, match=name):
        make_app({name: value})


def test_the_metrics_token_is_a_secret(make_app):
    app = make_app({"HOOKHUB_METRICS_TOKEN": "scrape-token-0123456789"})
    assert "scrape-token-0123456789" in hub_of(app).secrets


def test_metrics_that_cannot_be_written_never_cost_a_payment(make_app, recorder, moncash, monkeypatch, caplog):
    from hookhub import metrics

    def broken(*args, **kwargs):
        raise FileNotFoundError("the metrics directory is gone")

    for metric in (metrics.INBOUND_CALLS, metrics.PROVIDER_API_SECONDS, metrics.HANDLER_SECONDS):
        monkeypatch.setattr(metric, "labels", broken)
    app = make_app(plugins=[recorder])
    moncash.add_payment("b-1", "order-b1", 10)
    assert app.test_client().get("/return/moncash?transactionId=b-1").status_code == 303
    drain(app)
    assert [e.order_id for e in recorder.events] == ["order-b1"]
    assert "metrics cannot be recorded" in caplog.text or metrics._complained


def test_a_scrape_that_cannot_read_the_metrics_is_a_503(client, monkeypatch):
    def broken():
        raise ValueError("a metrics file is unreadable")

    monkeypatch.setattr(REGISTRY, "collect", broken)
    answer = client.get("/metrics")
    assert answer.status_code == 503 and answer.get_json()["error"] == "metrics_unavailable"


def test_calls_refused_before_the_store_is_ready_are_logged_and_counted(make_app, caplog):
    app = make_app(prepare_store=False, config={"HOOKHUB_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
                                                "HOOKHUB_STORE_TIMEOUT": 0.5})
    caplog.set_level(logging.INFO, logger="hookhub")
    before = sample("hookhub_inbound_calls_total", provider="monri", route="callback", outcome="store_unavailable")
    assert app.test_client().post("/hooks/monri", data=b"{}").status_code == 503
    after = sample("hookhub_inbound_calls_total", provider="monri", route="callback", outcome="store_unavailable")
    assert after == before + 1
    [line] = [r for r in caplog.records if getattr(r, "hookhub", None)]
    assert (line.hookhub["outcome"], line.hookhub["status"]) == ("store_unavailable", 503)
    # The scrape still answers, saying the store did not.
    assert scraped(app.test_client(), "hookhub_store_up") == 0


def test_each_handler_has_its_delivery_series_before_its_first_event(client):
    handler = next(iter(hub_of(client.application).handlers))
    assert scraped(client, "hookhub_deliveries", handler=handler, status="pending") == 0
    assert scraped(client, "hookhub_deliveries", handler=handler, status="dead") == 0
