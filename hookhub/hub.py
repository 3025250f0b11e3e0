"""The Hub: the one composition root. Settings in; plugins, providers, store and the flow out.

The server (``create_app``), the ``hookhub`` commands and a shop's standalone clients
(``hookhub.client``, ``start_payment``) all get theirs from here. A hub starts no thread by being
built: the server starts its scheduler, nothing else does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import make_url

from . import config, logs, plugins, redact
from .delivery import BATCH, Deliverer
from .errors import ConfigError, SchemaError, StoreUnavailable
from .heartbeat import Heartbeat
from .outbound import Watch
from .pipeline import ACCEPTED_BATCH, Pipeline, RecheckLimits
from .registry import Registry
from .retry import RetryPolicy
from .scheduler import Scheduler
from .store import Store, migrate, utcnow

log = logging.getLogger("hookhub")

HOUSEKEEPING_SECONDS = 300.0  # how often a process deletes what outlived its retention
STORE_RECHECK_SECONDS = 1.0  # how often a store at the wrong schema is looked at again
STORE_PROBLEM_LOG_SECONDS = 60.0  # how often the same problem with it is logged again
ROUND_LIMIT = 100  # jobs per round of background work, so a backlog never starves the loop's checks

_live_hubs: weakref.WeakSet[Hub] = weakref.WeakSet()


def _before_fork() -> None:
    for hub in list(_live_hubs):
        hub.scheduler.before_fork()


def _after_fork_in_parent() -> None:
    for hub in list(_live_hubs):
        hub.scheduler.after_fork_in_parent()


def _after_fork_in_child() -> None:
    for hub in list(_live_hubs):
        hub.scheduler.after_fork_in_child()
        hub.heartbeat.after_fork_in_child()
        # Database connections must never be shared across a fork: the child opens its own.
        hub.store.after_fork_in_child()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)


@dataclasses.dataclass
class Creation:
    """What became of the watch a provider put while a shop's ``start_payment``/``start_payout`` ran."""

    provider: str
    kind: str
    order_id: str
    nonce: str | None = None  # the checkout's return nonce, kept with its watch
    watched: bool = False  # whether the watch reached the store


class StoreWatchBook:
    """Puts what providers create on record in the hub's store, for the servers to watch.

    Never raises: the provider has already acted when a watch is put, and an exception here would
    make a shop retry a payout that was made. While a shop's call runs (``creating``), the watch the
    provider puts for its order, on the same thread, carries the checkout's nonce and says whether
    it reached the store.
    """

    def __init__(self, hub: Hub):
        self.hub = hub
        self._local = threading.local()

    @contextlib.contextmanager
    def creating(self, provider: str, kind: str, order_id: str, nonce: str | None = None) -> Iterator[Creation]:
        creation = Creation(provider, kind, order_id, nonce)
        self._local.creation = creation
        try:
            yield creation
        finally:
            self._local.creation = None

    def put(self, provider: str, watch: Watch) -> None:
        creation = getattr(self._local, "creation", None)
        if creation is not None and (creation.provider, creation.kind, creation.order_id) != (
                provider, watch.kind, watch.order_id):
            creation = None  # something else the provider created meanwhile
        try:
            if watch.answer is not None:  # its raw answer is stored: no secret in it
                watch = dataclasses.replace(watch, answer=dataclasses.replace(
                    watch.answer, raw=self.hub.redactor.mapping(watch.answer.raw)))
            self.hub.prepare_store()
            self.hub.store.put_watch(provider, watch, nonce=creation.nonce if creation else None)
        except Exception as exc:  # anything at all: the provider has acted, the caller must not retry
            log.error("%s: %s %s could not be put on record, so nothing will ask the provider about it: %s",
                      provider, watch.kind, watch.order_id, exc)
            if creation is not None:
                creation.watched = False
            return
        if creation is not None:
            creation.watched = True
        self.hub.scheduler.wake()


class Hub:
    def __init__(self, settings: Mapping[str, Any], extra_plugins: Iterable[Any] = (), *, handlers: bool = True):
        """Build everything ``settings`` (``hookhub.config.read``) describe.

        ``handlers=False`` is a shop's standalone client: no handler module is imported and no
        logging is configured (the shop's process has its own).
        """
        self.settings = settings
        self.pm = plugins.load(settings, extra_plugins, handlers=handlers)
        self.hooks = plugins.Hooks(self.pm)
        self.store = Store(settings["HOOKHUB_DATABASE_URL"], timeout=settings["HOOKHUB_STORE_TIMEOUT"],
                           pool_size=settings["HOOKHUB_DATABASE_POOL_SIZE"])
        self._store_ready = False
        self._store_checked_at = -STORE_RECHECK_SECONDS
        self._store_problem = ""
        self._store_problem_logged_at = 0.0
        self._store_check_lock = threading.Lock()
        self.watches = StoreWatchBook(self)
        try:
            self.registry = Registry(self.hooks.register_providers(), settings, memo_for=self.store.memo,
                                     watches=self.watches)
        except BaseException:
            self.store.close()
            raise
        self.handlers = self.hooks.handlers() if handlers else {}
        self.secrets = self.registry.secrets() + [v for v in (settings["HOOKHUB_SECRET_KEY"],
                                                              settings.get("HOOKHUB_METRICS_TOKEN")) if v]
        if self.store.engine.url.password:  # a driver's error may quote its connection string
            self.secrets.append(str(self.store.engine.url.password))
        self.redactor = redact.Redactor(self.secrets)
        self.store.redactor = self.redactor  # every text the store keeps goes through it
        self.secret_filter = redact.SecretFilter(self.redactor)
        log.addFilter(self.secret_filter)
        if handlers:
            logs.configure(settings, self.secret_filter)

        def policy(attempts_key: str) -> RetryPolicy:
            return RetryPolicy(settings["HOOKHUB_RETRY_BASE_SECONDS"], settings["HOOKHUB_RETRY_MAX_SECONDS"],
                               settings[attempts_key])

        self.scheduler = Scheduler(self.run_due_work, settings["HOOKHUB_SCHEDULER_INTERVAL"])
        # Started by the first claim of background work, never by a hub that only starts payments.
        self.heartbeat = Heartbeat(self.store, before_stop=self.scheduler.stop)
        # A lease must outlast the longest attempt, or a slow handler's job would be claimed twice.
        self.lease = max(settings["HOOKHUB_LEASE_SECONDS"], settings["HOOKHUB_HANDLER_TIMEOUT"] * 2)
        self.deliverer = Deliverer(self.store, self.handlers, policy("HOOKHUB_DELIVERY_MAX_ATTEMPTS"),
                                   self.redactor, lease=self.lease, timeout=settings["HOOKHUB_HANDLER_TIMEOUT"],
                                   claimant=self.heartbeat.ensure_started)
        self.pipeline = Pipeline(self.store, self.registry, self.hooks, list(self.handlers),
                                 policy("HOOKHUB_VERIFY_MAX_ATTEMPTS"), self.redactor,
                                 on_new_work=self.scheduler.wake,
                                 watch_after=settings["HOOKHUB_WATCH_AFTER_SECONDS"],
                                 watch_give_up=settings["HOOKHUB_WATCH_GIVE_UP_SECONDS"],
                                 recheck_limits=RecheckLimits(settings["HOOKHUB_RECHECKS_PER_ADDRESS"],
                                                              settings["HOOKHUB_RECHECKS_MAX"]),
                                 accept_callbacks=settings["HOOKHUB_ANSWER_ON_RECORD"])
        self._next_housekeeping = 0.0
        self._pruned_until: datetime | None = None
        _live_hubs.add(self)

    @staticmethod
    def of(app: Any) -> Hub:
        try:
            return app.extensions["hookhub"]
        except (KeyError, AttributeError):
            raise ConfigError("this Flask app was not made by hookhub.create_app") from None

    def prepare_store(self) -> None:
        """Make sure the store has the newest schema before anything uses it (once per hub).

        An empty database gets the schema; any other schema but the newest raises ``SchemaError``.
        """
        if not self._store_ready:
            migrate.ensure_ready(self.store)
            self._store_ready = True

    def store_ready(self) -> bool:
        """True once the store answers and has the newest schema (see ``prepare_store``).

        Until then, what needs the store is refused with 503 and the background work waits. The
        check is repeated (a wrong schema at most once a second), so a database that comes back,
        or an upgrade run by the operator, is noticed without a restart. A worker never fails to
        boot over it: gunicorn would then stop the whole host.
        """
        if self._store_ready:
            return True
        if not self._store_check_lock.acquire(blocking=False):
            return False  # another thread is looking right now; don't queue up behind it
        try:
            now = time.monotonic()
            if self._store_ready or now - self._store_checked_at < STORE_RECHECK_SECONDS:
                return self._store_ready
            try:
                self.prepare_store()
            except (SchemaError, StoreUnavailable) as exc:
                # A wrong schema is looked at again a second later; a store that could not be
                # reached or was locked, at once by the next caller, which would have waited
                # for it anyway.
                if isinstance(exc, SchemaError):
                    self._store_checked_at = now
                problem = str(exc)
                if problem != self._store_problem or now - self._store_problem_logged_at > STORE_PROBLEM_LOG_SECONDS:
                    log.error("the store is not ready, answering 503 until it is: %s", problem)
                    self._store_problem, self._store_problem_logged_at = problem, now
                return False
        finally:
            self._store_check_lock.release()
        if self._store_problem:
            log.warning("the store is ready again")
        return True

    def run_due_work(self) -> int:
        """One round of background work: callbacks answered before their reconciliation, due checks
        with providers (re-checks and watches), then due deliveries; how many jobs ran."""
        if not self.store_ready():
            return 0
        providers = list(self.registry.enabled)
        owner = self.heartbeat.ensure_started()
        # Callbacks already answered come first (their events are what the merchant waits for), in
        # a share of their own: a backlog of them never holds up checks and deliveries.
        reconciled = 0
        try:
            while reconciled < ROUND_LIMIT and self.store.has_accepted(providers):
                taken = self.pipeline.reconcile_accepted(limit=min(ACCEPTED_BATCH, ROUND_LIMIT - reconciled))
                if not taken:  # another process's batch holds them
                    break
                reconciled += taken
            if reconciled or self.pipeline.backlogged:
                self.pipeline.note_backlog(self.store.count_due_accepted(providers))
        except Exception:  # the store, or a bug: checks and deliveries still get their turn
            log.exception("reconciling answered callbacks failed")
        done = 0
        while done < ROUND_LIMIT // 2:  # checks never take the whole round: deliveries get theirs
            job = self.store.claim_verification(providers, lease=self.lease, claimed_by=owner)
            if job is None:
                break
            self.pipeline.run_verification(job)
            done += 1
        while done < ROUND_LIMIT:
            attempted = self.deliverer.run(limit=min(BATCH, ROUND_LIMIT - done))
            if not attempted:
                break
            done += attempted
        done += reconciled
        self._housekeeping()
        return done

    def _housekeeping(self) -> None:
        """Now and then, delete refused calls and given-up re-checks older than their retention, so
        that a flood of bad calls costs disk for a while, not for good."""
        if time.monotonic() < self._next_housekeeping:
            return
        self._next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
        cutoff = utcnow() - timedelta(seconds=self.settings["HOOKHUB_REFUSED_RETENTION_SECONDS"])
        try:
            # Only what came in since the last cutoff is looked at: older refused calls are gone.
            calls = self.store.prune_calls(before=cutoff, refused_only=True, since=self._pruned_until)
            rechecks = self.store.prune_gave_up(before=cutoff)
        except StoreUnavailable as exc:
            log.warning("could not delete refused calls past their retention now: %s", exc)
            return
        self._pruned_until = cutoff
        if calls or rechecks:
            log.info("deleted %d refused call(s) and %d given-up re-check(s) past their retention", calls, rechecks)

    def close(self) -> None:
        _live_hubs.discard(self)
        self.scheduler.stop()
        self.heartbeat.stop()
        log.removeFilter(self.secret_filter)
        logs.forget(self.secret_filter)
        self.store.close()


# -- standalone hubs: a shop's own process using the clients ----------------------------------------

_standalone: dict[tuple[tuple[str, str], ...], Hub] = {}
_standalone_lock = threading.Lock()


def standalone(settings: Mapping[str, Any] | None = None) -> Hub:
    """The hub of a process that is not hookhub's server, for its clients; built once per settings.

    Without ``settings`` it reads the ``HOOKHUB_*`` environment (and the instance config file)
    as the server does; with them, those settings alone. It loads no handler, starts no thread,
    writes no secret key, and opens the store only when a watch is put on record.
    """
    source = dict(os.environ) if settings is None else {str(k): v for k, v in settings.items()}
    key = tuple(sorted((k, repr(v)) for k, v in source.items() if k.startswith("HOOKHUB_")))
    with _standalone_lock:
        hub = _standalone.get(key)
        if hub is None:
            if settings is None:
                read = config.read(source, generate_key=False)
            else:
                read = config.read({}, source, instance_path=source.get("HOOKHUB_INSTANCE_PATH"), generate_key=False)
            _ensure_sqlite_folder(read["HOOKHUB_DATABASE_URL"])
            hub = _standalone[key] = Hub(read, handlers=False)
        return hub


def _ensure_sqlite_folder(url: str) -> None:
    """The folder of a SQLite store, made when missing, so a shop that starts payments before the
    server ever ran still records them."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        config.make_private_folder(os.path.dirname(os.path.abspath(parsed.database)))


def close_standalone() -> None:
    """Close every standalone hub of this process (their store connections); the next use builds anew."""
    with _standalone_lock:
        hubs = list(_standalone.values())
        _standalone.clear()
    for hub in hubs:
        hub.close()
