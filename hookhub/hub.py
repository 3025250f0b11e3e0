"""The Hub: one per app, holding the plugin manager, providers, store, pipeline and scheduler."""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Iterable
from typing import Any

from flask import Flask

from . import plugins, redact
from .delivery import Deliverer
from .errors import ConfigError
from .pipeline import Pipeline
from .registry import Registry
from .retry import RetryPolicy
from .scheduler import Scheduler
from .store import Store, migrate

log = logging.getLogger("hookhub")

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
        try:
            self.registry = Registry(self.hooks.register_providers(), config, memo_for=self.store.memo)
        except BaseException:
            self.store.close()
            raise
        self.handlers = self.hooks.handlers()
        self.secrets = self.registry.secrets() + [config["HOOKHUB_SECRET_KEY"]]
        if self.store.engine.url.password:  # a driver's error may quote its connection string
            self.secrets.append(str(self.store.engine.url.password))
        self.secret_filter = redact.SecretFilter(self.secrets)
        log.addFilter(self.secret_filter)

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

    def run_due_work(self) -> int:
        """One round of background work: due re-verifications, then due deliveries; how many ran."""
        done = 0
        providers = list(self.registry.enabled)
        while done < ROUND_LIMIT:
            job = self.store.claim_verification(providers, lease=self.lease)
            if job is None:
                break
            self.pipeline.run_verification(job)
            done += 1
        while done < ROUND_LIMIT and self.deliverer.run_one():
            done += 1
        return done

    def close(self) -> None:
        _live_hubs.discard(self)
        self.scheduler.stop()
        log.removeFilter(self.secret_filter)
        self.store.close()
