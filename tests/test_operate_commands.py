"""`hookhub providers`, `plugins` and `check`: what an operator sees before and after starting hookhub."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from conftest import monri_config
from hookhub.cli import cli


@pytest.fixture
def hookhub(tmp_path):
    """Run a `hookhub` command with these HOOKHUB_* variables (and none from outside)."""

    def invoke(*args, **env):
        environ = {k: None for k in os.environ if k.startswith("HOOKHUB_")}
        environ.update({"HOOKHUB_INSTANCE_PATH": str(tmp_path / "instance"), **env})
        return CliRunner().invoke(cli, list(args), env=environ, catch_exceptions=False)

    return invoke


def test_providers_says_which_are_enabled_and_what_the_others_need(hookhub, monri):
    result = hookhub("providers", "--json", **monri_config(monri), HOOKHUB_MONEXT_MERCHANT_ID="123")
    assert result.exit_code == 0, result.output
    rows = {row["provider"]: row for row in json.loads(result.output)}
    assert (rows["monri"]["state"], rows["monri"]["needs"]) == ("enabled", [])
    assert (rows["monext"]["state"], rows["monext"]["needs"]) == ("half configured", ["HOOKHUB_MONEXT_ACCESS_KEY"])
    assert rows["moncash"]["state"] == "off"
    assert rows["moncash"]["needs"] == ["HOOKHUB_MONCASH_CLIENT_ID", "HOOKHUB_MONCASH_CLIENT_SECRET"]
    secret = {s["variable"]: s["secret"] for s in rows["monri"]["settings"]}
    assert secret == {"HOOKHUB_MONRI_MERCHANT_KEY": True, "HOOKHUB_MONRI_AUTHENTICITY_TOKEN": True,
                      "HOOKHUB_MONRI_BASE_URL": False}
    assert monri.merchant_key not in result.output  # settings are named, never shown

    text = hookhub("providers", **{k: v for k, v in monri_config(monri).items() if k != "HOOKHUB_PUBLIC_URL"})
    assert text.output.splitlines()[0].split() == ["monri", "half", "configured", "hookhub_monri", "set",
                                                   "HOOKHUB_PUBLIC_URL"]


def test_plugins_lists_each_with_its_distribution_and_hooks(hookhub):
    result = hookhub("plugins", "--json", HOOKHUB_HANDLERS="merchant_handler", HOOKHUB_DISABLED_PLUGINS="monext")
    assert result.exit_code == 0, result.output
    rows = {row["plugin"]: row for row in json.loads(result.output)}
    assert set(rows) == {"moncash", "monri", "merchant_handler"}
    assert rows["moncash"]["from"].startswith("hookhub ") and rows["moncash"]["module"] == "hookhub_moncash"
    assert rows["moncash"]["hooks"] == ["hookhub_register_providers", "hookhub_register_sandboxes"]
    assert rows["merchant_handler"]["from"] == "HOOKHUB_HANDLERS"
    assert rows["merchant_handler"]["hooks"] == ["hookhub_handle_event"]
    assert "blocked by HOOKHUB_DISABLED_PLUGINS: monext" in hookhub("plugins", HOOKHUB_DISABLED_PLUGINS="monext").output


def test_plugins_reports_a_misspelled_hook_as_an_error_not_a_traceback(hookhub, tmp_path, monkeypatch):
    (tmp_path / "typo_hooks.py").write_text("def hookhub_handle_events(event):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = hookhub("plugins", HOOKHUB_HANDLERS="typo_hooks")
    assert result.exit_code == 1
    assert "typo_hooks" in result.output and "hookhub_handle_events" in result.output


def test_check_reaches_every_enabled_provider(hookhub, moncash, monri, monext, make_app):
    settings = {**moncash.settings(), **monri_config(monri), **monext.settings(), "HOOKHUB_SECRET_KEY": "s" * 40,
                "HOOKHUB_HANDLERS": "merchant_handler"}
    result = hookhub("check", **settings)
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line.split()[0] for line in result.output.splitlines()}
    assert lines["moncash"] == lines["monri"] == lines["monext"] == lines["store"] == "ok"
    assert lines["handlers"] == "ok"
    assert "secret key" not in result.output  # it was set, so nothing to warn about
    assert moncash.token_requests == 1 and monri.requests == [("GET", "/v2/customers?limit=1")]
    assert monext.requests == [("GET", "/v1/checkout/alive")]


def test_check_fails_on_refused_credentials_and_never_prints_a_secret(hookhub, moncash, monri):
    settings = {**moncash.settings(), **monri_config(monri), "HOOKHUB_MONRI_MERCHANT_KEY": "wrong-key-0123456789"}
    result = hookhub("check", **settings)
    assert result.exit_code == 1
    lines = {line.split()[1]: line for line in result.output.splitlines()}
    assert lines["moncash"].startswith("ok ")
    assert lines["monri"].startswith("FAIL") and "ProviderAuthError" in lines["monri"]
    assert lines["monext"].startswith("off ")
    assert "wrong-key-0123456789" not in result.output and moncash.client_secret not in result.output


@pytest.mark.parametrize("env,subject", [
    ({"HOOKHUB_MONEXT_MERCHANT_ID": "1"}, "providers"),
    ({"HOOKHUB_HANDLERS": "no_such_module_anywhere"}, "plugins"),
    ({"HOOKHUB_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}, "store"),
])
def test_check_names_what_stops_hookhub(hookhub, env, subject):
    result = hookhub("check", "--offline", **env)
    assert result.exit_code == 1, result.output
    assert any(line.startswith("FAIL") and line.split()[1] == subject for line in result.output.splitlines())


def test_check_offline_calls_no_provider(hookhub, moncash):
    result = hookhub("check", "--offline", **moncash.settings())
    assert result.exit_code == 0 and "configured (API not called: --offline)" in result.output
    assert moncash.requests == []


def test_serve_refuses_a_configuration_that_cannot_start(hookhub):
    result = hookhub("serve", HOOKHUB_MONRI_MERCHANT_KEY="only-this")
    assert result.exit_code == 1
    assert "hookhub cannot start" in result.output and "HOOKHUB_MONRI_AUTHENTICITY_TOKEN" in result.output


@pytest.mark.parametrize("command", [[], ["serve"], ["providers"], ["plugins"], ["check"], ["sandbox"],
                                     ["simulate"], ["events"], ["events", "replay"], ["deliveries", "dead"],
                                     ["calls", "rerun"], ["db", "upgrade"]])
def test_every_command_explains_itself(hookhub, command):
    result = hookhub(*command, "--help")
    assert result.exit_code == 0
    description = result.output.split("\n\n")[1]
    assert len(description.split()) >= 5, f"hookhub {' '.join(command)} --help says too little"


def test_looking_writes_nothing(hookhub, tmp_path):
    for command in (["providers"], ["plugins"], ["check", "--offline"]):
        result = hookhub(*command)
        assert result.exit_code == 0, result.output
    instance = tmp_path / "instance"
    assert not (instance / "secret_key").exists() and not (instance / "hookhub.sqlite3").exists()
    assert "no database yet" in hookhub("check", "--offline").output


@pytest.mark.parametrize("args,message", [
    (["simulate", "moncash", "--hookhub", "http://127.0.0.1:9", "--sandbox", "http://127.0.0.1:9"],
     "nothing answers at 127.0.0.1:9"),
    (["simulate", "nopay"], "no sandbox for 'nopay'"),
    (["serve", "--sandbox"], None),
])
def test_play_commands_explain_what_is_wrong(hookhub, args, message):
    if message is None:
        result = hookhub(*args, HOOKHUB_HANDLERS="no_such_module_anywhere")
        assert result.exit_code == 1 and "no_such_module_anywhere" in result.output
        return
    result = hookhub(*args)
    assert result.exit_code != 0 and message in result.output
