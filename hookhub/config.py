"""Configuration layers: defaults, then an instance config file, then ``HOOKHUB_*`` environment
variables, then whatever ``create_app`` was given. Later layers win."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask

from .errors import ConfigError

log = logging.getLogger("hookhub")

DEFAULTS: dict[str, Any] = {
    "HOOKHUB_DATABASE_URL": None,  # None: SQLite file in the instance folder
    "HOOKHUB_DATABASE_POOL_SIZE": 5,  # connections each process keeps (and may add as many again)
    "HOOKHUB_PROXY_HOPS": 0,  # reverse proxies in front, each appending to X-Forwarded-For
    "HOOKHUB_SECRET_KEY": None,  # None: a key kept in the instance folder (fine for one host only)
    "HOOKHUB_PUBLIC_URL": None,
    "HOOKHUB_HANDLERS": "",
    "HOOKHUB_DISABLED_PLUGINS": "",
    "HOOKHUB_SUCCESS_URL": None,  # None: hookhub's own minimal result page
    "HOOKHUB_FAILURE_URL": None,
    "HOOKHUB_PENDING_URL": None,
    "HOOKHUB_MAX_BODY_BYTES": 64 * 1024,
    "HOOKHUB_HTTP_TIMEOUT": 10.0,
    "HOOKHUB_STORE_TIMEOUT": 5.0,
    "HOOKHUB_RESULT_MAX_AGE": 3600,
    "HOOKHUB_DELIVERY_MAX_ATTEMPTS": 10,
    "HOOKHUB_HANDLER_TIMEOUT": 30.0,  # seconds one delivery attempt may take
    "HOOKHUB_LEASE_SECONDS": 300.0,  # how long a claimed job is its process's before it counts as abandoned
    "HOOKHUB_VERIFY_MAX_ATTEMPTS": 20,
    "HOOKHUB_RETRY_BASE_SECONDS": 2.0,
    "HOOKHUB_RETRY_MAX_SECONDS": 900.0,
    "HOOKHUB_SCHEDULER": True,
    "HOOKHUB_SCHEDULER_INTERVAL": 1.0,
    "HOOKHUB_LOG_FORMAT": "text",  # or "json": one JSON object per line
    "HOOKHUB_LOG_LEVEL": "INFO",
    "HOOKHUB_METRICS_TOKEN": None,  # None: /metrics is open; else it wants "Authorization: Bearer <token>"
}

_TYPES: dict[str, type] = {
    "HOOKHUB_DATABASE_POOL_SIZE": int,
    "HOOKHUB_PROXY_HOPS": int,
    "HOOKHUB_MAX_BODY_BYTES": int,
    "HOOKHUB_HTTP_TIMEOUT": float,
    "HOOKHUB_STORE_TIMEOUT": float,
    "HOOKHUB_RESULT_MAX_AGE": int,
    "HOOKHUB_DELIVERY_MAX_ATTEMPTS": int,
    "HOOKHUB_HANDLER_TIMEOUT": float,
    "HOOKHUB_LEASE_SECONDS": float,
    "HOOKHUB_VERIFY_MAX_ATTEMPTS": int,
    "HOOKHUB_RETRY_BASE_SECONDS": float,
    "HOOKHUB_RETRY_MAX_SECONDS": float,
    "HOOKHUB_SCHEDULER": bool,
    "HOOKHUB_SCHEDULER_INTERVAL": float,
}

_MAY_BE_ZERO = {"HOOKHUB_PROXY_HOPS"}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _coerce(name: str, value: Any) -> Any:
    kind = _TYPES.get(name)
    if kind is None or not isinstance(value, str):
        return value
    text = value.strip().lower()
    if kind is bool:
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ConfigError(f"{name} must be true or false, not {value!r}")
    try:
        number = kind(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {value!r}") from None
    if number < 0 or (number == 0 and name not in _MAY_BE_ZERO):
        raise ConfigError(f"{name} must be {'zero or more' if name in _MAY_BE_ZERO else 'greater than zero'}")
    return number


def load(app: Flask, overrides: Mapping[str, Any] | None, environ: Mapping[str, str], *,
         generate_key: bool = True) -> None:
    """Fill ``app.config`` from every layer and derive what Flask itself needs.

    With ``generate_key=False`` an unset secret key is read from the instance folder if one was
    generated there, and is otherwise left None: for commands that only look.
    """
    app.config.from_mapping(DEFAULTS)
    config_file = environ.get("HOOKHUB_CONFIG_FILE") or os.path.join(app.instance_path, "hookhub.cfg")
    app.config.from_pyfile(config_file, silent=True)
    app.config.update({k: v for k, v in environ.items() if k.startswith("HOOKHUB_")})
    app.config.update(overrides or {})
    for name in list(app.config):
        if name.startswith("HOOKHUB_"):
            app.config[name] = _coerce(name, app.config[name])

    _check_logging(app.config)
    if not app.config["HOOKHUB_DATABASE_URL"]:
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["HOOKHUB_DATABASE_URL"] = "sqlite:///" + os.path.join(app.instance_path, "hookhub.sqlite3")
    if not app.config["HOOKHUB_SECRET_KEY"]:
        app.config["HOOKHUB_SECRET_KEY"] = (_instance_secret_key(app.instance_path) if generate_key
                                            else _existing_instance_key(app.instance_path))
    public_url = app.config["HOOKHUB_PUBLIC_URL"]
    if public_url:
        app.config["HOOKHUB_PUBLIC_URL"] = public_url.rstrip("/")
    app.config["SECRET_KEY"] = app.config["HOOKHUB_SECRET_KEY"]
    app.config["MAX_CONTENT_LENGTH"] = app.config["HOOKHUB_MAX_BODY_BYTES"]


def _check_logging(config: dict[str, Any]) -> None:
    form = str(config["HOOKHUB_LOG_FORMAT"]).strip().lower()
    if form not in ("text", "json"):
        raise ConfigError(f"HOOKHUB_LOG_FORMAT must be text or json, not {config['HOOKHUB_LOG_FORMAT']!r}")
    level = str(config["HOOKHUB_LOG_LEVEL"]).strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"HOOKHUB_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, "
                          f"not {config['HOOKHUB_LOG_LEVEL']!r}")
    config["HOOKHUB_LOG_FORMAT"], config["HOOKHUB_LOG_LEVEL"] = form, level


def _existing_instance_key(instance_path: str) -> str | None:
    try:
        with open(os.path.join(instance_path, "secret_key")) as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def _instance_secret_key(instance_path: str) -> str:
    """A key generated once and kept in the instance folder, so every worker on this host agrees.

    Several hosts must share ``HOOKHUB_SECRET_KEY`` instead: each would generate its own here.
    """
    os.makedirs(instance_path, exist_ok=True)
    path = os.path.join(instance_path, "secret_key")
    try:
        # O_EXCL: when several workers start at once, exactly one writes the key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        log.warning("HOOKHUB_SECRET_KEY is not set; generated one in %s (set it for production)", path)
    for _ in range(50):  # another worker may be between creating and writing the file
        with open(path) as handle:
            key = handle.read().strip()
        if key:
            return key
        time.sleep(0.02)
    raise ConfigError(f"{path} is empty; delete it or set HOOKHUB_SECRET_KEY")
