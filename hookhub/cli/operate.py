"""Commands for running hookhub and seeing how it is set up: serve, providers, plugins, check.

They read the configuration themselves rather than through a built app, so that a configuration
hookhub would refuse to start with is reported, not just raised.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any

import click
from sqlalchemy.engine import make_url

from .. import config, plugins, redact
from ..errors import ConfigError, HookhubError, ProviderError, SchemaError, StoreUnavailable
from ..hub import Hub
from ..loopback import is_loopback
from ..registry import Registry, provider_status
from ..serving import DEFAULT_READ_TIMEOUT, READ_TIMEOUT_VARIABLE
from ..store import Store, migrate

DEFAULT_BIND = "127.0.0.1:8000"
DEFAULT_SANDBOX_URL = "http://127.0.0.1:8100"
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines of text.")


def read_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The configuration a server started now would have (``ConfigError`` becomes a message).

    No secret key is generated: one not set nor generated yet reads as None.
    """
    try:
        # Looking must change nothing: no key is generated here for a server that has not started.
        settings = config.read(environ, {"HOOKHUB_SCHEDULER": False}, generate_key=False)
    except ConfigError as exc:
        raise click.ClickException(f"configuration: {exc}") from None
    return {**settings, "instance_path": settings.instance_path}


def _plugin_manager(settings: Mapping[str, Any]) -> plugins.PluginManager:
    try:
        return plugins.load(dict(settings))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


# -- serve -----------------------------------------------------------------------------------------


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--bind", "-b", default=DEFAULT_BIND, show_default=True,
              help="HOST:PORT (or unix:PATH) to listen on. Keep it on loopback behind a reverse proxy.")
@click.option("--workers", "-w", type=click.IntRange(1), default=2, show_default=True,
              help="Worker processes. Each runs requests and background deliveries; 2 to 4 suit SQLite.")
@click.option("--threads", type=click.IntRange(1), default=4, show_default=True,
              help="Threads per worker, each running one request at a time. Requests are read whole "
                   "before a thread gets them, so a slow client holds none.")
@click.option("--read-timeout", type=click.FloatRange(0, min_open=True), default=DEFAULT_READ_TIMEOUT,
              show_default=True, help="Seconds a client may take to send a whole request (line, headers "
                                      "and body); a slower one gets 408.")
@click.option("--timeout", type=click.IntRange(1), default=30, show_default=True,
              help="Seconds a request may take before gunicorn restarts its worker.")
@click.option("--handlers", metavar="MODULES", help="Comma-separated handler modules (sets HOOKHUB_HANDLERS).")
@click.option("--sandbox", "sandbox_url", is_flag=False, flag_value=DEFAULT_SANDBOX_URL, default=None,
              metavar="URL", help=f"Put every sandboxed provider on `hookhub sandbox` at URL (default "
                                  f"{DEFAULT_SANDBOX_URL}). For trying hookhub out, never for production.")
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def serve(bind: str, workers: int, threads: int, read_timeout: float, timeout: int, handlers: str | None,
          sandbox_url: str | None, gunicorn_args: tuple[str, ...]) -> None:
    """Run hookhub under gunicorn, on the configured store (by default SQLite in the instance folder).

    The configuration is checked first, so a mistake stops here with its reason rather than in
    every worker. /metrics adds up every worker (a fresh PROMETHEUS_MULTIPROC_DIR is made unless
    one is set). Anything after -- goes to gunicorn as it is:

    \b
        hookhub serve -w 4 -- --certfile cert.pem --keyfile key.pem
    """
    environ = dict(os.environ)
    environ[READ_TIMEOUT_VARIABLE] = str(read_timeout)  # for hookhub's worker, which hookhub.serving sets
    if handlers:
        environ["HOOKHUB_HANDLERS"] = handlers
    if sandbox_url:
        _refuse_sandbox_off_loopback([bind, *_gunicorn_binds([*shlex.split(environ.get("GUNICORN_CMD_ARGS", "")),
                                                             *gunicorn_args])])
        environ.update(_sandbox_environ(sandbox_url.rstrip("/"), bind, environ))
    settings = read_config(environ)
    _build_app_once(environ)
    if not environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker keeps its counters in files here, so a scrape of any worker adds up all of
        # them; gunicorn's on_exit removes the directory made for this run.
        # In the instance folder, where no temp cleaner removes it under a running server.
        os.makedirs(settings["instance_path"], exist_ok=True)
        environ["PROMETHEUS_MULTIPROC_DIR"] = environ["_HOOKHUB_METRICS_DIR_OWNED"] = \
            tempfile.mkdtemp(prefix="metrics-", dir=settings["instance_path"])
    enabled = [s.name for s in _statuses(settings) if s.enabled]
    click.echo(f"hookhub: serving on {_bind_url(bind)} with {workers} worker(s); store "
               f"{_safe_url(settings['HOOKHUB_DATABASE_URL'])}; providers: {', '.join(enabled) or 'none configured'}",
               err=True)
    # gunicorn's own script, not ``python -m gunicorn``: its USR2 upgrade re-executes what started it.
    script = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    command = [script] if os.path.exists(script) else [sys.executable, "-m", "gunicorn"]
    args = [*command, "--config", "python:hookhub.serving", "--bind", bind, "--workers", str(workers),
            "--threads", str(threads), "--timeout", str(timeout), *gunicorn_args, "hookhub.app:create_app()"]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(args[0], args, environ)  # gunicorn takes over this process: signals reach it directly


def _gunicorn_binds(args: list[str]) -> list[str]:
    """The addresses ``--bind``/``-b`` options among gunicorn's own arguments add."""
    binds = []
    for i, arg in enumerate(args):
        if arg in ("-b", "--bind") and i + 1 < len(args):
            binds.append(args[i + 1])
        elif arg.startswith("--bind="):
            binds.append(arg[len("--bind="):])
        elif arg.startswith("-b") and not arg.startswith("--") and len(arg) > 2:
            binds.append(arg[2:])
    return binds


def _bind_host(bind: str) -> str:
    if bind.startswith("["):
        return bind[1:].split("]", 1)[0]
    return bind.rsplit(":", 1)[0] if ":" in bind else bind


def _refuse_sandbox_off_loopback(binds: list[str]) -> None:
    """The sandbox's keys are published: a hookhub on them must not be reachable from the network,
    where anyone could feed it payments the sandbox says were made. A unix socket is local."""
    for bind in binds:
        if not bind.startswith("unix:") and not is_loopback(_bind_host(bind)):
            raise click.UsageError(f"--sandbox uses published sandbox keys, so hookhub listens on loopback only "
                                   f"with it, not on {bind}: use --bind 127.0.0.1:PORT")


def _sandbox_environ(url: str, bind: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Settings that put every sandboxed provider on ``hookhub sandbox`` at ``url``."""
    settings = read_config(environ)
    extra: dict[str, str] = {}
    try:
        sandboxes = plugins.load_sandboxes(settings)
    except ConfigError as exc:
        raise click.ClickException(f"hookhub cannot start: {exc}") from None
    for sandbox in sandboxes:
        sandbox.url = f"{url}/{sandbox.name}"
        extra.update(sandbox.settings())
    if not environ.get("HOOKHUB_PUBLIC_URL"):
        extra["HOOKHUB_PUBLIC_URL"] = _bind_url(bind)
    return extra


def _build_app_once(environ: Mapping[str, str]) -> None:
    """Build what each worker will build, once, so a configuration mistake stops here."""
    try:
        hub = Hub(config.read(environ, {"HOOKHUB_SCHEDULER": False}))
    except ConfigError as exc:
        raise click.ClickException(f"hookhub cannot start: {exc}") from None
    hub.close()


def _bind_url(bind: str) -> str:
    return bind if bind.startswith("unix:") else f"http://{bind}"


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


# -- providers ---------------------------------------------------------------------------------------


def _statuses(settings: Mapping[str, Any]) -> list[Any]:
    classes = plugins.Hooks(_plugin_manager(settings)).register_providers()
    try:
        return [provider_status(cls, settings) for cls in classes]
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@AS_JSON
def providers(as_json: bool) -> None:
    """List every registered provider: enabled, off, or half configured, and what it still needs.

    A provider with none of its settings is off. One with some but not all stops hookhub at startup:
    set the variables listed. Settings are HOOKHUB_<PROVIDER>_<SETTING>.
    """
    settings = read_config()
    rows = []
    for status in _statuses(settings):
        state, needs = status.state, list(status.missing)
        if status.enabled and status.cls.needs_public_url and not settings.get("HOOKHUB_PUBLIC_URL"):
            state, needs = "half configured", ["HOOKHUB_PUBLIC_URL"]
        rows.append({"provider": status.name, "state": state, "needs": needs,
                     "plugin": status.cls.__module__.split(".")[0],
                     "settings": [{"variable": s.variable(status.name), "set": s.name in status.given,
                                   "required": s.required, "secret": s.secret, "default": s.default}
                                  for s in status.cls.settings]})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        needs = f"  set {', '.join(row['needs'])}" if row["needs"] else ""
        click.echo(f"{row['provider']:<12} {row['state']:<16} {row['plugin']:<20}{needs}")


# -- plugins -----------------------------------------------------------------------------------------


@click.command("plugins")
@AS_JSON
def plugins_command(as_json: bool) -> None:
    """List every loaded plugin: where it came from, the hooks it implements, and for handlers what
    their deliveries came to (from the store, when it can be reached).

    Plugins come from installed distributions' `hookhub` entry points (the built-in providers too)
    and from HOOKHUB_HANDLERS; HOOKHUB_DISABLED_PLUGINS blocks some.
    """
    settings = read_config()
    pm = _plugin_manager(settings)
    distributions = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    counts = _delivery_counts(settings)
    rows = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue  # blocked
        dist = distributions.get(id(plugin))
        source = f"{dist.project_name} {dist.version}" if dist else "HOOKHUB_HANDLERS"
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())
        row: dict[str, Any] = {"plugin": name, "module": getattr(plugin, "__name__", type(plugin).__name__),
                               "from": source, "hooks": hooks}
        if "hookhub_handle_event" in hooks and counts is not None:
            row["deliveries"] = {status: counts.get((name, status), 0) for status in ("done", "pending", "dead")}
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(f"{row['plugin']:<20} {row['from']:<20} {', '.join(row['hooks'])}")
        if "deliveries" in row:
            d = row["deliveries"]
            click.echo(f"{'':<20} deliveries: {d['done']} done, {d['pending']} pending, {d['dead']} dead")
    blocked = [name for name, plugin in pm.list_name_plugin() if plugin is None]
    if blocked and not as_json:
        click.echo(f"blocked by HOOKHUB_DISABLED_PLUGINS: {', '.join(blocked)}")


def _existing_store(settings: Mapping[str, Any]) -> Store | None:
    """The store, if there is one to look at: a SQLite file is not created by looking for it."""
    url = settings["HOOKHUB_DATABASE_URL"]
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not os.path.exists(parsed.database):
        return None
    return Store(url, timeout=settings["HOOKHUB_STORE_TIMEOUT"])


def _delivery_counts(settings: Mapping[str, Any]) -> dict[tuple[str, str], int] | None:
    try:
        store = _existing_store(settings)
    except Exception:  # a URL the server would refuse too; `hookhub check` says why
        return None
    if store is None:
        return {}
    try:
        if not migrate.status(store).up_to_date:
            return None
        return store.delivery_counts()
    except (SchemaError, StoreUnavailable):
        return None
    finally:
        store.close()


# -- check -------------------------------------------------------------------------------------------


class _Report:
    def __init__(self, secrets: list[str]) -> None:
        self.failed = False
        self.secrets = secrets

    def line(self, mark: str, subject: str, text: str) -> None:
        self.failed = self.failed or mark == "FAIL"
        click.echo(f"{mark:<5} {subject:<12} {redact.scrub(text, self.secrets)}")


@click.command()
@click.option("--offline", is_flag=True, help="Do not call the providers' APIs.")
def check(offline: bool) -> None:
    """Check that hookhub would start and work: configuration, plugins, providers, store, and one
    authenticated call to each enabled provider's API.

    Prints one line per check (ok, warn, FAIL, off) and exits with status 1 if any failed, so it
    fits a deploy script or a container's start.
    """
    settings = read_config()
    secret_values = [v for k, v in settings.items() if isinstance(v, str) and v and
                     any(w in k for w in ("SECRET", "KEY", "TOKEN", "PASSWORD"))]
    report = _Report(secret_values)
    report.line("ok", "config", f"read; instance folder {settings['instance_path']}")
    if not settings["HOOKHUB_SECRET_KEY"] or _generated_secret_key(settings):
        report.line("warn", "secret key", "HOOKHUB_SECRET_KEY is not set: the key generated in the instance "
                                          "folder signs result tokens (set one for production; every host the same)")
    if settings.get("HOOKHUB_PUBLIC_URL") and not str(settings["HOOKHUB_PUBLIC_URL"]).startswith("https://"):
        report.line("warn", "public url", f"{settings['HOOKHUB_PUBLIC_URL']} is not https")
    try:
        pm = plugins.load(dict(settings))
    except ConfigError as exc:
        report.line("FAIL", "plugins", str(exc))
        sys.exit(1)
    hooks = plugins.Hooks(pm)
    report.line("ok", "plugins", ", ".join(name for name, p in pm.list_name_plugin() if p is not None))
    handlers = list(hooks.handlers())
    report.line("ok" if handlers else "warn", "handlers",
                ", ".join(handlers) if handlers else "none: events are recorded but nobody receives them "
                                                     "(set HOOKHUB_HANDLERS)")
    _check_store(report, settings)
    _check_store_access(report, settings)
    try:
        registry = Registry(hooks.register_providers(), settings)
    except ConfigError as exc:
        report.line("FAIL", "providers", str(exc))
        sys.exit(1)
    report.secrets += registry.secrets()
    for name, status in registry.statuses.items():
        if not status.enabled:
            report.line("off", name, f"not configured (set {', '.join(status.missing)} to use it)")
            continue
        if offline:
            report.line("ok", name, "configured (API not called: --offline)")
            continue
        _check_provider(report, name, registry.enabled[name])
    if report.failed:
        sys.exit(1)


def _generated_secret_key(settings: Mapping[str, Any]) -> bool:
    """Whether the secret key is the one generated in the instance folder, not one that was set."""
    try:
        with open(os.path.join(settings["instance_path"], "secret_key")) as handle:
            return handle.read().strip() == settings["HOOKHUB_SECRET_KEY"]
    except OSError:
        return False


def _check_store(report: _Report, settings: Mapping[str, Any]) -> None:
    try:
        where = _safe_url(settings["HOOKHUB_DATABASE_URL"])
        store = _existing_store(settings)
    except Exception as exc:  # noqa: BLE001 - an unusable URL is this check's finding
        report.line("FAIL", "store", f"HOOKHUB_DATABASE_URL cannot be used: {type(exc).__name__}: {exc}")
        return
    if store is None:
        report.line("ok", "store", f"{where}: no database yet; the first server start creates it")
        return
    try:
        status = migrate.status(store)
    except (SchemaError, StoreUnavailable) as exc:
        report.line("FAIL", "store", f"{where}: {exc}")
        return
    finally:
        store.close()
    if status.up_to_date:
        report.line("ok", "store", f"{where}: {status.describe()}")
    elif status.empty:
        report.line("ok", "store", f"{where}: empty; the first server start creates the schema")
    else:
        report.line("FAIL", "store", f"{where}: {status.describe()}; run `hookhub db upgrade`")


def _check_store_access(report: _Report, settings: Mapping[str, Any]) -> None:
    """Warn of a SQLite store, its -wal/-shm files or its folder open to other users: they hold buyers'
    data. hookhub makes them private itself, but only when it creates them."""
    try:
        parsed = make_url(settings["HOOKHUB_DATABASE_URL"])
    except Exception:  # noqa: BLE001 - the store check has said why
        return
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return
    database = os.path.abspath(database)
    paths = [os.path.dirname(database), database, database + "-wal", database + "-shm"]
    for path in paths:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            continue  # not there (yet): whoever creates it makes it private
        if mode & 0o077:
            private = "0700" if path == paths[0] else "0600"
            report.line("warn", "store-access", f"{path} is open to group or others (mode {mode:04o}): it holds "
                                                f"buyers' data; chmod {private} it")


def _check_provider(report: _Report, name: str, provider: Any) -> None:
    started = time.monotonic()
    try:
        answer = provider.ping()
    except ProviderError as exc:
        report.line("FAIL", name, f"{type(exc).__name__}: {exc}")
        return
    except HookhubError as exc:
        report.line("FAIL", name, str(exc))
        return
    except Exception as exc:  # a plugin's bug: say so, and go on checking the others
        report.line("FAIL", name, f"ping raised {type(exc).__name__}")
        return
    if answer is None:
        report.line("warn", name, "configured; its plugin offers no way to reach its API from here")
    else:
        report.line("ok", name, f"{answer} ({time.monotonic() - started:.2f} s, {provider.config.get('base_url', '')})")
