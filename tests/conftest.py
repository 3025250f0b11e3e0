from __future__ import annotations

import itertools
import os
import signal
import time
import uuid

import psycopg
import pytest
from sqlalchemy.engine import make_url

from hookhub import create_app, hookimpl

SECRET_KEY = "test-secret-key-for-result-tokens"
PUBLIC_URL = "https://hooks.shop.example/hh"


class Recorder:
    """A merchant handler that remembers what it was given, and can be told to fail."""

    def __init__(self, fail_times: int = 0):
        self.events = []
        self.calls = 0
        self.fail_times = fail_times

    @hookimpl
    def hookhub_handle_event(self, event):
        self.calls += 1
        if self.calls <= self.fail_times:
            raise RuntimeError(f"handler failure number {self.calls}")
        self.events.append(event)


def hub_of(app):
    return app.extensions["hookhub"]


def drain(app, rounds: int = 50) -> None:
    """Run background work until nothing is due, waiting out the tests' millisecond backoffs."""
    idle = 0
    for _ in range(rounds):
        if hub_of(app).run_due_work():
            idle = 0
            continue
        idle += 1
        if idle == 2:
            return
        time.sleep(0.01)


@pytest.fixture(scope="session")
def moncash_server(hookhub_sandbox_server):
    """A provider's sandbox as the whole session shares it (``hookhub.testing`` serves them)."""
    return hookhub_sandbox_server["moncash"]


@pytest.fixture(scope="session")
def monri_server(hookhub_sandbox_server):
    return hookhub_sandbox_server["monri"]


@pytest.fixture(scope="session")
def monext_server(hookhub_sandbox_server):
    return hookhub_sandbox_server["monext"]


@pytest.fixture
def moncash(hookhub_sandbox):
    """MonCash's sandbox, its state forgotten before this test."""
    return hookhub_sandbox["moncash"]


@pytest.fixture
def monri(hookhub_sandbox):
    return hookhub_sandbox["monri"]


@pytest.fixture
def monext(hookhub_sandbox):
    return hookhub_sandbox["monext"]


def monri_config(sandbox) -> dict:
    return {**sandbox.settings(), "HOOKHUB_PUBLIC_URL": PUBLIC_URL}


def moncash_config(sandbox) -> dict:
    return sandbox.settings()


def monext_config(sandbox) -> dict:
    return sandbox.settings()


# The PostgreSQL server the tests may use; each test run creates its own database on it.
POSTGRESQL_URL = os.environ.get("HOOKHUB_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test")


def pytest_generate_tests(metafunc):
    """Tests that take ``database`` run on each database their ``databases`` mark names, else on
    those their module lists in ``DATABASES``, else on SQLite."""
    if "database" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("databases")
        names = marker.args if marker else getattr(metafunc.module, "DATABASES", ("sqlite",))
        metafunc.parametrize("database", names, indirect=True)


@pytest.fixture(scope="session")
def postgresql_database():
    """A fresh database for this test run on the PostgreSQL server, dropped when the run ends."""
    admin = make_url(POSTGRESQL_URL)
    try:
        connection = psycopg.connect(POSTGRESQL_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("HOOKHUB_TEST_REQUIRE_POSTGRESQL", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"PostgreSQL is required here but unreachable at {admin.render_as_string()}: {exc}")
        pytest.skip(f"no PostgreSQL server reachable at {admin.render_as_string()} "
                    f"(set HOOKHUB_TEST_POSTGRESQL_URL): {exc}")
    name = f"hookhub_test_{uuid.uuid4().hex[:12]}"
    with connection:
        connection.execute(f'CREATE DATABASE "{name}"')
        try:
            yield admin.set(database=name)
        finally:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


_schemas = itertools.count()


def new_postgresql_schema(database) -> str:
    """A URL of a new, empty schema of ``database`` (the URL puts it first on the search path)."""
    schema = f"test_{next(_schemas)}"
    with psycopg.connect(database.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return database.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


@pytest.fixture
def postgresql_url(postgresql_database):
    """An empty schema of this run's database, for one test."""
    return new_postgresql_schema(postgresql_database)


@pytest.fixture
def database(request):
    """The store's URL: None for SQLite in the app's instance folder, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgresql_url")


@pytest.fixture
def url(tmp_path, database):
    """A URL for a store of one's own: a fresh SQLite file, or the fresh PostgreSQL schema."""
    return database or f"sqlite:///{tmp_path / 'store.sqlite3'}"


@pytest.fixture
def make_app(tmp_path, moncash, monri, monext, database):
    """Build a fresh app: every built-in provider on its fake, no scheduler thread (tests drain work)."""
    apps = []

    def make(config=None, plugins=(), with_moncash=True, with_monri=True, with_monext=True, prepare_store=True):
        settings = {
            "HOOKHUB_SECRET_KEY": SECRET_KEY,
            "HOOKHUB_SCHEDULER": False,
            "HOOKHUB_RETRY_BASE_SECONDS": 0.001,
            "HOOKHUB_RETRY_MAX_SECONDS": 0.002,
            # Millisecond backoffs: one round of background work could otherwise use up every
            # re-check of a pending payment on a slower store, before the test changes its state.
            "HOOKHUB_VERIFY_MAX_ATTEMPTS": 1000,
            # The fakes answer in milliseconds; a loaded 2-core CI machine has been seen to take
            # over 2 s, which turned a payout's definite answer into "no answer" (pending).
            "HOOKHUB_HTTP_TIMEOUT": 10.0,
        }
        if with_moncash:
            settings.update(moncash_config(moncash))
        if with_monri:
            settings.update(monri_config(monri))
        if with_monext:
            settings.update(monext_config(monext))
        if database:
            settings["HOOKHUB_DATABASE_URL"] = database
        settings.update(config or {})
        app = create_app(settings, plugins=plugins, instance_path=str(tmp_path / f"instance{len(apps)}"),
                         environ={}, prepare_store=prepare_store)
        apps.append(app)
        return app

    yield make
    for app in apps:
        hub_of(app).close()


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def app(make_app, recorder):
    return make_app(plugins=[recorder])


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def start_host(tmp_path, postgresql_url, moncash, monri, monext):
    """Start a gunicorn host named ``name`` on the shared PostgreSQL database; every host is stopped
    after the test (woken first, if the test froze it)."""
    from servers import Gunicorn

    hosts = []

    def start(name: str, **env: str):
        folder = tmp_path / name
        folder.mkdir()
        host = Gunicorn(folder, moncash, monri, monext, env={"HOOKHUB_DATABASE_URL": postgresql_url, **env})
        hosts.append(host)
        return host

    yield start
    for host in hosts:
        try:
            host.signal_everything(signal.SIGCONT)
        except ProcessLookupError:
            pass
        host.close()
