"""Plugin loading, configuration checks and the hook contract."""

from __future__ import annotations

import inspect
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from conftest import drain, hub_of
from hookhub import ConfigError, InboundCall, Provider, Setting, TransactionState, Trigger, hookimpl, hookspecs


def test_builtin_provider_comes_in_through_the_entry_point(app):
    pm = hub_of(app).pm
    assert {pm.get_name(plugin): dist.project_name for plugin, dist in pm.list_plugin_distinfo()} == {
        "moncash": "hookhub", "monri": "hookhub", "monext": "hookhub"}
    for name in ("moncash", "monri", "monext"):
        assert hub_of(app).registry.statuses[name].enabled


def test_misspelled_hook_stops_startup(make_app):
    class Typo:
        @hookimpl
        def hookhub_handle_evnt(self, event):
            pass

    with pytest.raises(ConfigError, match="hookhub_handle_evnt"):
        make_app(plugins=[Typo()])


def test_misspelled_undecorated_hook_stops_startup_too(make_app):
    class Typo:
        def hookhub_expected_paymnt(self, provider, order_id):
            pass

    with pytest.raises(ConfigError, match="hookhub_expected_paymnt"):
        make_app(plugins=[Typo()])


def test_handlers_load_from_hookhub_handlers(make_app, tmp_path, monkeypatch, moncash):
    module = tmp_path / "shop_hooks_for_test.py"
    module.write_text(textwrap.dedent("""
        from hookhub import hookimpl
        seen = []

        @hookimpl
        def hookhub_handle_event(event):
            seen.append(event.type)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    app = make_app({"HOOKHUB_HANDLERS": "shop_hooks_for_test"})
    moncash.add_payment("1", "o-1", 10)
    app.test_client().get("/return/moncash?transactionId=1")
    drain(app)
    import shop_hooks_for_test

    assert shop_hooks_for_test.seen == ["payment.approved"]
    assert list(hub_of(app).handlers) == ["shop_hooks_for_test"]


def test_unimportable_handler_module_stops_startup(make_app):
    with pytest.raises(ConfigError, match="cannot import 'no_such_module_here'"):
        make_app({"HOOKHUB_HANDLERS": "no_such_module_here"})


def test_disabled_plugin_is_not_loaded(make_app):
    app = make_app({"HOOKHUB_DISABLED_PLUGINS": "moncash"})
    assert "moncash" not in hub_of(app).registry.statuses
    response = app.test_client().get("/return/moncash?transactionId=1")
    assert response.status_code == 404 and response.get_json()["error"] == "unknown_provider"


def test_half_configured_provider_names_the_missing_variable(make_app, moncash):
    with pytest.raises(ConfigError, match="HOOKHUB_MONCASH_CLIENT_SECRET"):
        make_app({"HOOKHUB_MONCASH_CLIENT_ID": "id"}, with_moncash=False)


def test_unconfigured_provider_is_off_and_listed_with_what_is_missing(make_app):
    app = make_app(with_moncash=False)
    status = hub_of(app).registry.statuses["moncash"]
    assert not status.enabled
    assert status.missing == ("HOOKHUB_MONCASH_CLIENT_ID", "HOOKHUB_MONCASH_CLIENT_SECRET")
    assert app.test_client().post("/hooks/moncash", json={"transactionId": "1"}).status_code == 404


def test_bad_number_in_config_stops_startup(make_app):
    with pytest.raises(ConfigError, match="HOOKHUB_HTTP_TIMEOUT"):
        make_app({"HOOKHUB_HTTP_TIMEOUT": "soon"})


class Toy(Provider):
    """A provider with no API: what a third-party plugin minimally looks like."""

    name = "toy"
    settings = (Setting("key", secret=True),)
    states: dict[str, TransactionState] = {}

    def create_client(self):
        return {"key": self.config["key"]}

    def read_callback(self, call: InboundCall) -> Trigger:
        return Trigger(call.json_object()["id"])

    read_return = read_callback

    def fetch(self, trigger: Trigger) -> TransactionState:
        return self.states[trigger.reference]


class ToyPlugin:
    @hookimpl
    def hookhub_register_providers(self, register):
        register(Toy)


def test_third_party_provider_gets_its_routes(make_app, recorder):
    app = make_app({"HOOKHUB_TOY_KEY": "toy-secret"}, plugins=[ToyPlugin(), recorder])
    Toy.states["t1"] = TransactionState("approved", "t1", "order-t", 999, "EUR", {"id": "t1"})
    response = app.test_client().post("/hooks/toy", json={"id": "t1"})
    assert response.status_code == 200 and response.get_json() == {"status": "received"}
    drain(app)
    assert [(e.provider, e.type, e.amount, e.currency) for e in recorder.events] == [("toy", "payment.approved", 999, "EUR")]
    with app.app_context():
        from hookhub import client

        assert client("toy") == {"key": "toy-secret"}


def test_two_providers_with_one_name_stop_startup(make_app):
    class Again(ToyPlugin):
        pass

    with pytest.raises(ConfigError, match="registered twice"):
        make_app(plugins=[ToyPlugin(), Again()])


def test_wrong_method_is_a_recorded_405(app, client):
    response = client.put("/return/moncash?transactionId=1")
    assert response.status_code == 405 and response.get_json()["error"] == "method_not_allowed"
    assert hub_of(app).store.list_calls()[0]["status_code"] == 405


def test_healthz_and_callbacks_answer_503_when_the_store_is_gone(app, client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    store = hub_of(app).store
    path = store.engine.url.database
    store.engine.dispose()
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    os.mkdir(path)  # nothing can open a directory as a database
    try:
        assert client.get("/healthz").status_code == 503
        response = client.post("/hooks/moncash", json={"transactionId": "1"})
        assert response.status_code == 503 and response.get_json()["error"] == "store_unavailable"
    finally:
        shutil.rmtree(path)


def test_every_hook_is_specified_typed_and_documented():
    specs = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("hookhub_")]
    assert {f.__name__ for f in specs} == {
        "hookhub_register_providers", "hookhub_register_sandboxes", "hookhub_handle_event",
        "hookhub_expected_payment", "hookhub_return_response"}
    for spec in specs:
        assert spec.__doc__ and "Called" in spec.__doc__, f"{spec.__name__} must say how it is called"
        assert "return" in spec.__annotations__


def test_every_hook_has_a_section_in_the_plugin_docs_naming_its_arguments():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "plugin_hooks.md").read_text()
    sections = {}
    for part in docs.split("\n## ")[1:]:
        heading, _, body = part.partition("\n")
        sections[heading.split("(")[0]] = (heading, body)
    specs = dict(f for f in inspect.getmembers(hookspecs, inspect.isfunction) if f[0].startswith("hookhub_"))
    assert set(sections) == set(specs)
    for name, spec in specs.items():
        heading, body = sections[name]
        arguments = list(inspect.signature(spec).parameters)
        assert heading == f"{name}({', '.join(arguments)})", "the heading shows the hook's signature"
        for argument in arguments:
            assert f"`{argument}`" in body, f"{name}: the section must say what `{argument}` is"
        assert "Called" in body, f"{name}: the section must say when hookhub calls it"
        assert "```python" in body, f"{name}: the section must show an implementation"


def test_provider_contract_is_documented_for_implementers():
    for name in ("create_client", "read_callback", "read_return", "fetch", "acknowledge"):
        assert getattr(Provider, name).__doc__, name
    assert {"create_client", "read_callback", "read_return", "fetch"} == Provider.__abstractmethods__


class Broken(Toy):
    """A provider whose fetch fails in the ways plugins do fail."""

    name = "broken"
    settings = ()
    failure: Exception = KeyError("no such thing")

    def fetch(self, trigger: Trigger) -> TransactionState:
        raise self.failure


class BrokenPlugin:
    @hookimpl
    def hookhub_register_providers(self, register):
        register(Broken)


@pytest.mark.parametrize("failure,status,code", [
    (KeyError("bug"), 503, "provider_unavailable"),
    (__import__("hookhub").ProviderAPIError("broken", "bad request", status=400), 422, "provider_refused"),
    (__import__("hookhub").ProviderAuthError("broken", "bad credentials", status=401), 503, "provider_unavailable"),
    (__import__("hookhub").ValidationError("id", "too long"), 400, "invalid_reference"),
])
def test_fetch_failures_map_to_clear_answers_never_500(make_app, recorder, failure, status, code):
    Broken.failure = failure
    app = make_app(plugins=[BrokenPlugin(), recorder])
    response = app.test_client().post("/hooks/broken", json={"id": "b1"})
    assert (response.status_code, response.get_json()["error"]) == (status, code)
    drain(app)
    assert recorder.events == []
