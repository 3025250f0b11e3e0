"""The worked example of docs/writing_a_provider_plugin.md: a third-party provider plugin for the
imaginary AcmePay, written against hookhub's public API only and loaded through a real entry point.

``tests/example_plugin`` holds the package and its ``hookhub_acmepay-0.1.0.dist-info``, as pip would
install them. The tests that want the plugin put that folder on ``sys.path`` for themselves only
(``monkeypatch`` takes it off again), so every other test sees the built-in providers alone.
"""

from __future__ import annotations

import ast
import json
import os
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from click.testing import CliRunner

import hookhub
from hookhub import (ProviderAuthError, ProviderNotFound, ProviderUnavailable, SandboxServer, Trigger, hookimpl,
                     read_result)
from hookhub.cli import cli
from hookhub.testing import PUBLIC_URL, SECRET_KEY, deliver

EXAMPLE = Path(__file__).resolve().parent / "example_plugin"
PACKAGE = EXAMPLE / "hookhub_acmepay"


class Shop:
    """A merchant's handler: remembers every event it is given."""

    def __init__(self):
        self.events = []

    @hookimpl
    def hookhub_handle_event(self, event):
        self.events.append(event)


@pytest.fixture
def acmepay_installed(hookhub_sandbox_server, monkeypatch):
    """hookhub-acmepay 0.1.0 visible to ``importlib.metadata`` for this test only.

    Asking for ``hookhub_sandbox_server`` first makes the session's sandboxes load before the path is
    added, so the plugin's sandbox never joins them.
    """
    monkeypatch.syspath_prepend(str(EXAMPLE))  # also runs importlib.invalidate_caches()


@pytest.fixture(scope="module")
def acmepay_server(hookhub_sandbox_server):
    """AcmePay's sandbox on a loopback port of its own, for this module's tests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXAMPLE))
        from hookhub_acmepay.sandbox import AcmePaySandbox
    server = SandboxServer([AcmePaySandbox()]).start()
    yield server
    server.close()


@pytest.fixture
def acmepay(acmepay_server, acmepay_installed):
    """AcmePay's sandbox, its state forgotten before this test; the plugin installed."""
    sandbox = acmepay_server["acmepay"]
    sandbox.reset()
    return sandbox


@pytest.fixture
def shop():
    return Shop()


@pytest.fixture
def app(hookhub_app_factory, acmepay, shop):
    """hookhub with AcmePay on its sandbox, and no other provider."""
    return hookhub_app_factory(config=acmepay.settings(), plugins=[shop], providers=[])


def hookhub_command(tmp_path, *args, **env):
    """Run ``hookhub ARGS`` with these HOOKHUB_* variables and none from outside."""
    environ = {k: None for k in os.environ if k.startswith("HOOKHUB_")}
    environ.update({"HOOKHUB_INSTANCE_PATH": str(tmp_path / "cli-instance"), **env})
    return CliRunner().invoke(cli, list(args), env=environ, catch_exceptions=False)


def result_of(response):
    """The page a return redirected to, and its verified result token."""
    assert response.status_code == 303, response.get_data(as_text=True)
    location = urlsplit(response.headers["Location"])
    return location.path, read_result(parse_qs(location.query)["result"][0], secret_key=SECRET_KEY)


# -- loading ---------------------------------------------------------------------------------------


def test_the_plugin_comes_in_through_its_distribution_entry_point(app, acmepay, tmp_path):
    plugins = hookhub_command(tmp_path, "plugins", "--json", **acmepay.settings())
    assert plugins.exit_code == 0, plugins.output
    rows = {row["plugin"]: row for row in json.loads(plugins.stdout)}
    assert rows["acmepay"] == {"plugin": "acmepay", "module": "hookhub_acmepay", "from": "hookhub-acmepay 0.1.0",
                               "hooks": ["hookhub_register_providers", "hookhub_register_sandboxes"]}

    providers = hookhub_command(tmp_path, "providers", "--json", **acmepay.settings())
    assert providers.exit_code == 0, providers.output
    row = {row["provider"]: row for row in json.loads(providers.stdout)}["acmepay"]
    assert (row["state"], row["plugin"], row["needs"]) == ("enabled", "hookhub_acmepay", [])
    assert {s["variable"]: (s["required"], s["secret"]) for s in row["settings"]} == {
        "HOOKHUB_ACMEPAY_API_KEY": (True, True), "HOOKHUB_ACMEPAY_WEBHOOK_SECRET": (True, True),
        "HOOKHUB_ACMEPAY_BASE_URL": (False, False)}

    # `hookhub check` makes one authenticated call through the plugin's ping
    check = hookhub_command(tmp_path, "check", **acmepay.settings())
    assert check.exit_code == 0, check.output
    line = next((line for line in check.stdout.splitlines() if line.split()[:2] == ["ok", "acmepay"]), "")
    assert "API key accepted for account acct_sandbox" in line, check.output
    wrong_key = hookhub_command(tmp_path, "check", **{**acmepay.settings(), "HOOKHUB_ACMEPAY_API_KEY": "sk_nope"})
    assert wrong_key.exit_code == 1
    assert any(line.split()[:3] == ["FAIL", "acmepay", "ProviderAuthError:"] for line in wrong_key.stdout.splitlines())
    for result in (plugins, providers, check, wrong_key):
        assert acmepay.api_key not in result.output and acmepay.webhook_secret not in result.output

    from hookhub_acmepay import AcmePayClient

    assert isinstance(hookhub.client("acmepay", app), AcmePayClient)


# -- callbacks -------------------------------------------------------------------------------------


def test_signed_callback_makes_one_approved_event_and_a_repeat_makes_none(app, acmepay, shop):
    client = app.test_client()
    payment, answer = acmepay.simulate(client, plays="callback", order_id="order-1001", amount=1999, currency="EUR")
    assert (answer.status_code, answer.get_data()) == (200, b"ok")
    deliver(app)
    [event] = shop.events
    assert (event.type, event.provider, event.order_id, event.transaction_id, event.amount, event.currency,
            event.source) == ("payment.approved", "acmepay", "order-1001", payment.transaction_id, 1999, "EUR",
                              "callback")
    assert event.raw["state"] == "succeeded"

    again = acmepay.callback(payment).send(client)
    assert (again.status_code, again.get_data()) == (200, b"ok")
    deliver(app)
    assert [e.id for e in shop.events] == [event.id]
    assert acmepay.count(f"/v1/payments/{payment.transaction_id}") == 2  # each callback was checked with the API
    assert acmepay.refused_auth == 0


def test_the_state_comes_from_the_api_not_from_the_callback(app, acmepay, shop):
    client = app.test_client()
    payment = acmepay.pay(order_id="order-1002", amount=500, currency="EUR", status="pending")
    assert acmepay.callback(payment).send(client).status_code == 200
    acmepay.set_state(payment.transaction_id, "succeeded")
    assert acmepay.callback(payment).send(client).status_code == 200  # the same body, a new truth
    deliver(app)
    assert [(e.type, e.source) for e in shop.events] == [("payment.pending", "callback"),
                                                         ("payment.approved", "callback")]


@pytest.mark.parametrize("tamper", [
    lambda request, acmepay: {**request.headers, "X-Acme-Signature": ""},
    lambda request, acmepay: {k: v for k, v in request.headers.items() if k != "X-Acme-Signature"},
    lambda request, acmepay: {**request.headers, "X-Acme-Signature": acmepay.signed_callback(
        request.body, secret="whsec_someone_else").headers["X-Acme-Signature"]},
    lambda request, acmepay: {**request.headers, "X-Acme-Signature": acmepay.signed_callback(
        {"payment_id": "pay_another"}).headers["X-Acme-Signature"]},
    lambda request, acmepay: {**request.headers, "X-Acme-Signature": request.headers["X-Acme-Signature"][:-1] + "g"},
    lambda request, acmepay: {**request.headers, "X-Acme-Signature": request.headers["X-Acme-Signature"].replace(
        "sha256=", "sha1=")},
], ids=["empty", "missing", "other-secret", "other-body", "not-hex", "other-scheme"])
def test_a_bad_signature_is_a_401_and_makes_nothing(app, acmepay, shop, tamper):
    payment = acmepay.pay(order_id="order-1003", amount=700, currency="EUR")
    request = acmepay.callback(payment)
    response = app.test_client().post(request.path, headers=tamper(request, acmepay), data=request.body)
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_signature"
    deliver(app)
    assert shop.events == []
    assert acmepay.requests == []  # nothing unsigned reaches the provider's API


@pytest.mark.parametrize("body,code", [
    (b"payment_id=pay_1", "malformed_json"),
    (b'["pay_1"]', "malformed_json"),
    (b"{}", "missing_payment_id"),
    (b'{"payment_id": 42}', "invalid_payment_id"),
    (b'{"payment_id": "pay 1"}', "invalid_payment_id"),
    (json.dumps({"payment_id": "p" * 65}).encode(), "invalid_payment_id"),
])
def test_a_signed_but_malformed_callback_is_a_400_naming_what_is_wrong(app, acmepay, shop, body, code):
    response = acmepay.signed_callback(body).send(app.test_client())
    assert (response.status_code, response.get_json()["error"]) == (400, code)
    deliver(app)
    assert shop.events == [] and acmepay.requests == []


# -- returns ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status,page", [("approved", "success"), ("declined", "failure"), ("pending", "pending")])
def test_a_return_is_confirmed_with_the_api_and_redirected(app, acmepay, shop, status, page):
    payment = acmepay.pay(order_id="order-2001", amount=4250, currency="EUR", status=status)
    response = acmepay.buyer_return(payment, public_url=PUBLIC_URL).send(app.test_client())
    path, result = result_of(response)
    assert path == f"/result/{page}"
    assert (result["status"], result["order_id"], result["provider"]) == (status, "order-2001", "acmepay")
    assert acmepay.count(f"/v1/payments/{payment.transaction_id}") >= 1
    deliver(app)
    assert [(e.type, e.order_id, e.amount, e.currency, e.source) for e in shop.events] == [
        (f"payment.{status}", "order-2001", 4250, "EUR", "return")]
    assert result["event_id"] == shop.events[0].id


@pytest.mark.parametrize("query,code", [
    ("", "missing_payment_id"),
    ("payment_id=", "missing_payment_id"),
    ("payment_id=pay_1&payment_id=pay_2", "ambiguous_payment_id"),
    ("payment_id=%3Cscript%3E", "invalid_payment_id"),
])
def test_a_malformed_return_is_a_400(app, acmepay, shop, query, code):
    response = app.test_client().get(f"/return/acmepay?{query}")
    assert (response.status_code, response.get_json()["error"]) == (400, code)
    assert acmepay.requests == []


# -- unknown payments and unreadable answers -------------------------------------------------------


def test_an_unknown_payment_is_refused_on_callback_and_pending_on_return(app, acmepay, shop):
    client = app.test_client()
    response = acmepay.signed_callback({"payment_id": "pay_unknown"}).send(client)
    assert (response.status_code, response.get_json()["error"]) == (404, "unknown_transaction")

    path, result = result_of(client.get("/return/acmepay?" + urlencode({"payment_id": "pay_unknown"})))
    assert (path, result["status"], result["event_id"]) == ("/result/pending", "pending", None)
    deliver(app)  # a reference hookhub did not start, which the provider does not know: not asked again
    assert shop.events == []
    assert acmepay.count("/v1/payments/pay_unknown") == 2  # once for the callback, once for the return
    assert acmepay.refused_auth == 0


def test_fetch_raises_the_typed_errors(acmepay):
    from hookhub_acmepay import AcmePay

    config = {"api_key": acmepay.api_key, "webhook_secret": acmepay.webhook_secret, "base_url": acmepay.url}
    provider = AcmePay(config, timeout=5.0)
    payment = acmepay.make_payment(order_id="order-3001", amount=1050, currency="eur", status="approved")
    state = provider.fetch(Trigger(payment.transaction_id))
    assert (state.status, state.transaction_id, state.order_id, state.amount, state.currency) == (
        "approved", payment.transaction_id, "order-3001", 1050, "EUR")

    with pytest.raises(ProviderNotFound):
        provider.fetch(Trigger("pay_unknown"))
    with pytest.raises(ProviderAuthError):
        AcmePay({**config, "api_key": "sk_wrong"}).fetch(Trigger(payment.transaction_id))
    with pytest.raises(ProviderUnavailable):
        AcmePay({**config, "base_url": "http://127.0.0.1:9"}, timeout=1.0).fetch(Trigger(payment.transaction_id))
    recorded = dict(acmepay.payments[payment.transaction_id])
    for field, value in [("state", "refunded_partially"), ("amount", 10.5), ("amount", True), ("id", "pay_other"),
                         ("order_ref", None)]:
        acmepay.payments[payment.transaction_id] = {**recorded, field: value}
        with pytest.raises(ProviderUnavailable, match="unreadable"):
            provider.fetch(Trigger(payment.transaction_id))
    acmepay.payments[payment.transaction_id] = recorded
    assert provider.fetch(Trigger(payment.transaction_id)) == state


# -- payments a shop starts -----------------------------------------------------------------------


def test_a_payment_started_through_hookhub_is_watched_until_paid(hookhub_app_factory, acmepay, shop):
    app = hookhub_app_factory(config={**acmepay.settings(), "HOOKHUB_WATCH_AFTER_SECONDS": 0}, plugins=[shop],
                              providers=[])
    checkout = hookhub.start_payment("acmepay", order_id="order-3100", amount=2500, currency="EUR", app=app)
    assert checkout.redirect_url == f"{acmepay.url}/checkout/{checkout.reference}"
    deliver(app)  # open: not paid yet, and nothing is made of it
    assert shop.events == []
    acmepay.set_state(checkout.reference, "succeeded")
    deliver(app)
    assert [(e.type, e.order_id, e.amount, e.source) for e in shop.events] == [
        ("payment.approved", "order-3100", 2500, "poll")]
    with pytest.raises(hookhub.ValidationError, match="colour"):
        hookhub.start_payment("acmepay", order_id="order-3101", amount=1, currency="EUR", app=app, colour="red")


# -- the public API is enough ----------------------------------------------------------------------


def hookhub_imports(path: Path) -> list[str]:
    """Every module named by an import of hookhub or of something under it, in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "hookhub"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "hookhub":
            found.append(node.module)
            # `from hookhub import testing` would reach past the public face too
            found += [f"hookhub.{a.name}" for a in node.names if a.name not in hookhub.__all__]
    return found


def test_the_plugin_imports_only_the_public_hookhub_package():
    sources = sorted(PACKAGE.glob("*.py"))
    assert {p.name for p in sources} >= {"__init__.py", "provider.py", "client.py", "sandbox.py"}
    imported = {p.name: hookhub_imports(p) for p in sources}
    assert all(imported.values()), "every module uses hookhub"
    assert {name: sorted(set(modules)) for name, modules in imported.items()} == {
        name: ["hookhub"] for name in imported}


def test_the_plugin_is_seen_only_while_its_folder_is_on_the_path(hookhub_app_factory, hookhub_sandbox_server,
                                                                 tmp_path):
    """Last in this module: the tests above left nothing behind for the rest of the suite."""

    def seen() -> bool:
        app = hookhub_app_factory()
        in_app = "acmepay" in app.extensions["hookhub"].registry.statuses
        in_cli = "acmepay" in {row["plugin"] for row in json.loads(
            hookhub_command(tmp_path, "plugins", "--json").stdout)}
        try:
            distribution("hookhub-acmepay")
        except PackageNotFoundError:
            in_metadata = False
        else:
            in_metadata = True
        assert in_app == in_cli == in_metadata
        return in_app

    assert str(EXAMPLE) not in sys.path and not seen()
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXAMPLE))
        assert seen()
    # importlib.metadata keeps no stale view, and an imported module alone loads nothing.
    assert "hookhub_acmepay" in sys.modules
    assert str(EXAMPLE) not in sys.path and not seen()
    assert "acmepay" not in hookhub_sandbox_server.sandboxes  # the session's sandboxes loaded without it
