"""Weak configuration and careless defaults hookhub refuses or fixes: private store files, blank and
padded provider settings, short secret keys, plain-http provider URLs, the sandbox off loopback,
and the current directory shadowing installed modules."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import hub_of, monri_config
from hookhub import ConfigError, Provider, Setting, create_app, hookimpl, testing
from hookhub.cli import cli
from hookhub.cli.operate import _refuse_sandbox_off_loopback
from hookhub.config import MIN_SECRET_KEY_LENGTH
from hookhub.hub import close_standalone, standalone

HOOKHUB = str(Path(sys.executable).with_name("hookhub"))


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@contextlib.contextmanager
def umask(value: int):
    """The usual umask, which leaves what is created readable by everyone unless hookhub says otherwise."""
    previous = os.umask(value)
    try:
        yield
    finally:
        os.umask(previous)


def run(*args, **env):
    """A `hookhub` command with these HOOKHUB_* variables and none from outside."""
    environ = {k: None for k in os.environ if k.startswith("HOOKHUB_")}
    environ.update(env)
    return CliRunner().invoke(cli, list(args), env=environ, catch_exceptions=False)


# -- item 8: the store and its folder are private ------------------------------------------------------


def test_a_new_instance_folder_and_its_store_are_only_the_owners(make_app, tmp_path):
    with umask(0o022):
        app = make_app(with_moncash=False, with_monri=False)
        # A real write through the app: a refused notification is recorded in the store.
        assert app.test_client().get("/hooks/monext?token=").status_code == 400
        instance = Path(app.instance_path)
        database = instance / "hookhub.sqlite3"
        wal, shm = Path(f"{database}-wal"), Path(f"{database}-shm")
        assert wal.exists() and shm.exists()  # WAL mode, while the store is open
        assert mode(instance) == 0o700
        assert {p.name: mode(p) for p in (database, wal, shm)} == {
            database.name: 0o600, wal.name: 0o600, shm.name: 0o600}


def test_a_store_folder_a_shop_process_creates_is_private(tmp_path):
    folder = tmp_path / "shop" / "store"
    settings = {"HOOKHUB_DATABASE_URL": f"sqlite:///{folder / 'hookhub.sqlite3'}",
                "HOOKHUB_INSTANCE_PATH": str(tmp_path / "instance")}
    with umask(0o022):
        try:
            standalone(settings)
        finally:
            close_standalone()
    assert mode(folder) == 0o700


def test_an_existing_folder_keeps_the_mode_its_owner_gave_it(make_app, tmp_path):
    instance = tmp_path / "instance0"  # the folder make_app's first app uses
    instance.mkdir(mode=0o750)
    instance.chmod(0o750)
    with umask(0o022):
        app = make_app()
    assert Path(app.instance_path) == instance and mode(instance) == 0o750
    assert mode(instance / "hookhub.sqlite3") == 0o600  # hookhub created it, so it is private


def test_check_warns_of_a_store_others_can_read(make_app, tmp_path):
    with umask(0o022):
        app = make_app(with_moncash=False, with_monri=False, with_monext=False)
    instance = Path(app.instance_path)
    hub_of(app).close()
    env = {"HOOKHUB_INSTANCE_PATH": str(instance), "HOOKHUB_SECRET_KEY": "k" * 40}

    private = run("check", "--offline", **env)
    assert private.exit_code == 0, private.output
    assert "store-access" not in private.output

    (instance / "hookhub.sqlite3").chmod(0o644)
    instance.chmod(0o755)
    opened = run("check", "--offline", **env)
    assert opened.exit_code == 0, opened.output  # a warning, not a failure
    warnings = [line for line in opened.output.splitlines() if line.split()[:2] == ["warn", "store-access"]]
    assert len(warnings) == 2, opened.output
    assert any(str(instance / "hookhub.sqlite3") in line and "0644" in line for line in warnings)
    assert any(f"{instance} is open" in line and "0755" in line for line in warnings)
    assert mode(instance / "hookhub.sqlite3") == 0o644  # looking changes nothing


# -- item 13 (a): blank provider settings are unset ------------------------------------------------------


@pytest.mark.parametrize("blank", ["   ", "\t", "\n", " \r\n "])
def test_a_blank_provider_setting_does_not_turn_the_provider_on(make_app, blank):
    app = make_app({"HOOKHUB_MONCASH_CLIENT_ID": blank, "HOOKHUB_MONCASH_CLIENT_SECRET": blank,
                    "HOOKHUB_MONCASH_BASE_URL": blank}, with_moncash=False)
    assert hub_of(app).registry.statuses["moncash"].state == "off"
    assert app.test_client().get("/return/moncash?transactionId=1").status_code == 404


def test_a_blank_monri_key_is_missing_not_an_empty_key(make_app, monri):
    # Monri's key verifies every signature: a blank one must stop hookhub, never be used.
    with pytest.raises(ConfigError, match="HOOKHUB_MONRI_MERCHANT_KEY"):
        make_app({**monri_config(monri), "HOOKHUB_MONRI_MERCHANT_KEY": "   "})


def test_a_blank_optional_setting_takes_its_default(make_app):
    app = make_app({"HOOKHUB_MONEXT_MERCHANT_ID": "1234", "HOOKHUB_MONEXT_ACCESS_KEY": "key",
                    "HOOKHUB_MONEXT_BASE_URL": "  "}, with_monext=False)
    assert hub_of(app).registry.get("monext").config["base_url"] == "https://api-sandbox.retail.monext.com"


@pytest.mark.parametrize("padded", [" key", "key ", "key\n", "\tkey"])
def test_a_provider_setting_with_whitespace_around_it_is_refused(make_app, monri, padded):
    with pytest.raises(ConfigError, match="HOOKHUB_MONRI_MERCHANT_KEY has whitespace"):
        make_app({**monri_config(monri), "HOOKHUB_MONRI_MERCHANT_KEY": padded})


# -- item 13 (b): the secret key is long enough ---------------------------------------------------------


def test_a_short_secret_key_stops_hookhub(tmp_path):
    short = "x" * (MIN_SECRET_KEY_LENGTH - 1)
    with pytest.raises(ConfigError, match=f"HOOKHUB_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH}"):
        create_app({"HOOKHUB_SCHEDULER": False}, instance_path=str(tmp_path / "a"),
                   environ={"HOOKHUB_SECRET_KEY": short})
    refused = run("check", "--offline", HOOKHUB_INSTANCE_PATH=str(tmp_path / "b"), HOOKHUB_SECRET_KEY=short)
    assert refused.exit_code != 0 and "HOOKHUB_SECRET_KEY must be at least 32" in refused.output


def test_a_long_enough_secret_key_is_taken_and_a_blank_one_is_unset(tmp_path):
    key = "x" * MIN_SECRET_KEY_LENGTH
    app = create_app({"HOOKHUB_SCHEDULER": False, "HOOKHUB_SECRET_KEY": key}, instance_path=str(tmp_path / "a"),
                     environ={})
    assert app.config["SECRET_KEY"] == key
    hub_of(app).close()
    app = create_app({"HOOKHUB_SCHEDULER": False, "HOOKHUB_SECRET_KEY": "   "}, instance_path=str(tmp_path / "b"),
                     environ={})
    assert app.config["SECRET_KEY"] == (tmp_path / "b" / "secret_key").read_text().strip()
    assert len(app.config["SECRET_KEY"]) >= MIN_SECRET_KEY_LENGTH
    hub_of(app).close()


def test_the_testing_plugins_key_is_long_enough():
    assert len(testing.SECRET_KEY) >= MIN_SECRET_KEY_LENGTH


# -- item 13 (c): provider URLs are https, or http to loopback ----------------------------------------


class Acme(Provider):
    """A third party's provider: its URL setting is checked because it says it is one."""

    name = "acme"
    settings = (Setting("key", secret=True), Setting("api_url", default="https://api.acme.example", url=True))

    def create_client(self):
        return None

    def read_callback(self, call):
        raise NotImplementedError

    read_return = read_callback

    def fetch(self, trigger):
        raise NotImplementedError


class AcmePlugin:
    @hookimpl
    def hookhub_register_providers(self, register):
        register(Acme)


@pytest.mark.parametrize("variable", ["HOOKHUB_MONCASH_BASE_URL", "HOOKHUB_MONCASH_GATEWAY_URL",
                                      "HOOKHUB_MONRI_BASE_URL", "HOOKHUB_MONEXT_BASE_URL"])
@pytest.mark.parametrize("url", ["http://api.provider.example", "http://10.0.0.8:8100/monext", "http://[2001:db8::1]/",
                                 "http://127.0.0.1.example/", "ftp://api.provider.example", "api.provider.example",
                                 "https://"])
def test_a_provider_url_that_is_not_https_stops_hookhub(make_app, variable, url):
    with pytest.raises(ConfigError, match=variable):
        make_app({variable: url})


@pytest.mark.parametrize("url", ["http://127.0.0.1:8100/monext", "http://127.9.9.9/", "http://[::1]:8100",
                                 "http://localhost:8100", "http://LOCALHOST./", "https://api.provider.example"])
def test_https_and_http_to_loopback_are_accepted(make_app, url):
    app = make_app({"HOOKHUB_MONEXT_BASE_URL": url})
    assert hub_of(app).registry.get("monext").config["base_url"] == url


def test_a_third_party_url_setting_gets_the_same_check(make_app):
    with pytest.raises(ConfigError, match="HOOKHUB_ACME_API_URL must be an https:// URL"):
        make_app({"HOOKHUB_ACME_KEY": "k", "HOOKHUB_ACME_API_URL": "http://api.acme.example"}, plugins=[AcmePlugin()])
    app = make_app({"HOOKHUB_ACME_KEY": "k"}, plugins=[AcmePlugin()])
    assert hub_of(app).registry.get("acme").config["api_url"] == "https://api.acme.example"


def test_check_fails_on_a_plain_http_provider_url(tmp_path, monext):
    settings = {**monext.settings(), "HOOKHUB_MONEXT_BASE_URL": "http://api.monext.example",
                "HOOKHUB_INSTANCE_PATH": str(tmp_path / "instance"), "HOOKHUB_SECRET_KEY": "k" * 40}
    result = run("check", "--offline", **settings)
    assert result.exit_code == 1
    [line] = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert "HOOKHUB_MONEXT_BASE_URL must be an https:// URL" in line
    assert run("check", "--offline", **{**settings, "HOOKHUB_MONEXT_BASE_URL": monext.base_url}).exit_code == 0


# -- item 13 (d): the sandbox's published keys stay on loopback ---------------------------------------


@pytest.fixture
def no_gunicorn(monkeypatch):
    """`hookhub serve` ends by replacing its process with gunicorn's: here that would be pytest's."""
    def execve(*args):
        raise AssertionError(f"serve started gunicorn: {args[1]}")
    monkeypatch.setattr(os, "execve", execve)


@pytest.mark.parametrize("args", [
    ["--bind", "0.0.0.0:8000"],
    ["-b", "[::]:8000"],
    ["--bind", "192.0.2.10:8000"],
    ["--bind", "hooks.shop.example:8000"],
    ["--bind", ":8000"],
    ["--bind", "127.0.0.1:8000", "--", "--bind", "0.0.0.0:8001"],
    ["--", "-b0.0.0.0:8001"],
])
def test_serve_with_the_sandbox_refuses_an_address_off_loopback(tmp_path, no_gunicorn, args):
    result = run("serve", "--sandbox", *args, HOOKHUB_INSTANCE_PATH=str(tmp_path / "instance"))
    assert result.exit_code == 2, result.output
    assert "--sandbox uses published sandbox keys" in result.output
    assert not (tmp_path / "instance").exists()  # refused before anything was built


def test_serve_with_the_sandbox_refuses_gunicorn_cmd_args_off_loopback(tmp_path, no_gunicorn):
    result = run("serve", "--sandbox", HOOKHUB_INSTANCE_PATH=str(tmp_path / "instance"),
                 GUNICORN_CMD_ARGS="--bind 0.0.0.0:8001")
    assert result.exit_code == 2 and "0.0.0.0:8001" in result.output


@pytest.mark.parametrize("bind", ["127.0.0.1:8000", "127.0.0.1", "localhost:8000", "[::1]:8000", "unix:/tmp/hh.sock"])
def test_loopback_and_unix_sockets_are_allowed_with_the_sandbox(bind):
    _refuse_sandbox_off_loopback([bind])


# -- item 13 (e): the current directory never shadows an installed module ------------------------------


def test_a_module_in_the_current_directory_does_not_shadow_an_installed_one(tmp_path):
    for name in ("json", "requests", "colorsys"):
        (tmp_path / f"{name}.py").write_text(f"raise SystemExit('the current directory shadowed {name}')\n")
    # The handler, imported from the current directory, imports a module hookhub has not imported yet
    # (colorsys), and asks where a fresh import of json and requests would come from.
    (tmp_path / "shop_hooks.py").write_text(textwrap.dedent("""\
        import colorsys
        import os
        from importlib.machinery import PathFinder

        from hookhub import hookimpl

        for name in ("json", "requests"):
            origin = PathFinder.find_spec(name).origin
            if os.path.dirname(origin) == os.getcwd():
                raise SystemExit(f"{name} would be imported from the current directory")


        @hookimpl
        def hookhub_handle_event(event):
            pass
        """))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKHUB_") and k != "PYTHONPATH"}
    env.update(HOOKHUB_HANDLERS="shop_hooks", HOOKHUB_INSTANCE_PATH=str(tmp_path / "instance"))
    done = subprocess.run([HOOKHUB, "plugins"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "shop_hooks" in done.stdout and "HOOKHUB_HANDLERS" in done.stdout
