"""The Hub: one per app, holding the plugin manager, providers, store, pipeline and scheduler."""

from __future__ import annotations

import logging
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
from .store import Store

log = logging.getLogger("hookhub")

LEASE_SECONDS = 300.0  # how long a claimed job is another process's before it counts as abandoned


class Hub:
    def __init__(self, config: dict[str, Any], extra_plugins: Iterable[Any] = ()):
        self.pm = plugins.load(config, extra_plugins)
        self.hooks = plugins.Hooks(self.pm)
        self.registry = Registry(self.hooks.register_providers(), config)
        self.handlers = self.hooks.handlers()
        self.secret_filter = redact.SecretFilter(self.registry.secrets() + [config["HOOKHUB_SECRET_KEY"]])
        log.addFilter(self.secret_filter)

        self.store = Store(config["HOOKHUB_DATABASE_URL"], timeout=config["HOOKHUB_STORE_TIMEOUT"])
        self.store.create_schema()

        def policy(attempts_key: str) -> RetryPolicy:
            return RetryPolicy(config["HOOKHUB_RETRY_BASE_SECONDS"], config["HOOKHUB_RETRY_MAX_SECONDS"],
                               config[attempts_key])

        self.scheduler = Scheduler(self.run_due_work, config["HOOKHUB_SCHEDULER_INTERVAL"])
        self.deliverer = Deliverer(self.store, self.handlers, policy("HOOKHUB_DELIVERY_MAX_ATTEMPTS"),
                                   self.registry.secrets(), lease=LEASE_SECONDS)
        self.pipeline = Pipeline(self.store, self.registry, self.hooks, list(self.handlers),
                                 policy("HOOKHUB_VERIFY_MAX_ATTEMPTS"), on_new_work=self.scheduler.wake)

    @staticmethod
    def of(app: Flask) -> Hub:
        try:
            return app.extensions["hookhub"]
        except KeyError:
            raise ConfigError("this Flask app was not made by hookhub.create_app") from None

    def run_due_work(self) -> int:
        """One round of background work: due re-verifications, then due deliveries."""
        done = 0
        for job in self.store.claim_verifications(list(self.registry.enabled), lease=LEASE_SECONDS):
            self.pipeline.run_verification(job)
            done += 1
        return done + self.deliverer.run_due()

    def close(self) -> None:
        self.scheduler.stop()
        log.removeFilter(self.secret_filter)
        self.store.close()
