"""The Hub: one per app, holding the plugin manager, providers, store, pipeline and scheduler."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

from flask import Flask

from . import logs, plugins, redact
from .delivery import BATCH, Deliverer
from .errors import ConfigError, SchemaError, StoreUnavailable
from .pipeline import Pipeline
from .registry import Registry
from .retry import RetryPolicy
from .scheduler import Scheduler
from .store import Store, migrate

log = logging.getLogger("hookhub")

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
        # Database connections must never be shared across a fork: the child opens its own.
        hub.store.engine.dispose(close=False)


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)


class Hub:
    def __init__(self, config: dict[str, Any], extra_plugins: Iterable[Any] = ()):
        self.pm = plugins.load(config, extra_plugins)
        self.hooks = plugins.Hooks(self.pm)
        self.store = Store(config["HOOKHUB_DATABASE_URL"], timeout=config["HOOKHUB_STORE_TIMEOUT"],
                           pool_size=config["HOOKHUB_DATABASE_POOL_SIZE"])
        self._store_ready = False
        self._store_checked_at = -STORE_RECHECK_SECONDS
        self._store_problem = ""
        self._store_problem_logged_at = 0.0
        self._store_check_lock = threading.Lock()
        try:
            self.registry = Registry(self.hooks.register_providers(), config, memo_for=self.store.memo)
        except BaseException:
            self.store.close()
            raise
        self.handlers = self.hooks.handlers()
        self.secrets = self.registry.secrets() + [config["HOOKHUB_SECRET_KEY"]]
        if config.get("HOOKHUB_METRICS_TOKEN"):
            self.secrets.append(config["HOOKHUB_METRICS_TOKEN"])
        if self.store.engine.url.password:  # a driver's error may quote its connection string
            self.secrets.append(str(self.store.engine.url.password))
        self.secret_filter = redact.SecretFilter(self.secrets)
        log.addFilter(self.secret_filter)
        logs.configure(config, self.secret_filter)

        def policy(attempts_key: str) -> RetryPolicy:
            return RetryPolicy(config["HOOKHUB_RETRY_BASE_SECONDS"], config["HOOKHUB_RETRY_MAX_SECONDS"],
                               config[attempts_key])

        self.scheduler = Scheduler(self.run_due_work, config["HOOKHUB_SCHEDULER_INTERVAL"])
        # A lease must outlast the longest attempt, or a slow handler's job would be claimed twice.
        self.lease = max(config["HOOKHUB_LEASE_SECONDS"], config["HOOKHUB_HANDLER_TIMEOUT"] * 2)
        self.deliverer = Deliverer(self.store, self.handlers, policy("HOOKHUB_DELIVERY_MAX_ATTEMPTS"),
                                   self.secrets, lease=self.lease, timeout=config["HOOKHUB_HANDLER_TIMEOUT"])
        self.pipeline = Pipeline(self.store, self.registry, self.hooks, list(self.handlers),
                                 policy("HOOKHUB_VERIFY_MAX_ATTEMPTS"), self.secrets,
                                 on_new_work=self.scheduler.wake)
        _live_hubs.add(self)

    @staticmethod
    def of(app: Flask) -> Hub:
        try:
            return app.extensions["hookhub"]
        except KeyError:
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
        """One round of background work: due re-verifications, then due deliveries; how many ran."""
        if not self.store_ready():
            return 0
        done = 0
        providers = list(self.registry.enabled)
        while done < ROUND_LIMIT:
            job = self.store.claim_verification(providers, lease=self.lease)
            if job is None:
                break
            self.pipeline.run_verification(job)
            done += 1
        while done < ROUND_LIMIT:
            attempted = self.deliverer.run(limit=min(BATCH, ROUND_LIMIT - done))
            if not attempted:
                break
            done += attempted
        return done

    def close(self) -> None:
        _live_hubs.discard(self)
        self.scheduler.stop()
        log.removeFilter(self.secret_filter)
        logs.forget(self.secret_filter)
        self.store.close()
