"""Configuration layers: defaults, then an instance config file, then ``HOOKHUB_*`` environment
variables, then whatever the caller gave (``create_app``'s ``test_config``, a client's ``settings=``).
Later layers win.

Nothing here needs Flask: a shop's own process reads the same settings to use hookhub's clients.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from collections.abc import Mapping
from typing import Any

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
    "HOOKHUB_RESULT_MAX_AGE": 600,  # seconds a return's result token is good for
    "HOOKHUB_DELIVERY_MAX_ATTEMPTS": 10,
    "HOOKHUB_HANDLER_TIMEOUT": 30.0,  # seconds one delivery attempt may take
    "HOOKHUB_LEASE_SECONDS": 300.0,  # how long a claimed job is its process's before it counts as abandoned
    "HOOKHUB_VERIFY_MAX_ATTEMPTS": 20,
    "HOOKHUB_RETRY_BASE_SECONDS": 2.0,
    "HOOKHUB_RETRY_MAX_SECONDS": 900.0,
    "HOOKHUB_SCHEDULER": True,
    # Signed callbacks that carry the provider's whole state are answered once recorded and
    # reconciled right after by the background work; False: reconciled before the answer.
    "HOOKHUB_ANSWER_ON_RECORD": True,
    "HOOKHUB_SCHEDULER_INTERVAL": 1.0,
    "HOOKHUB_LOG_FORMAT": "text",  # or "json": one JSON object per line
    "HOOKHUB_LOG_LEVEL": "INFO",
    "HOOKHUB_METRICS_TOKEN": None,  # None: /metrics is open; else it wants "Authorization: Bearer <token>"
    "HOOKHUB_WATCH_AFTER_SECONDS": 120.0,  # a created payment or payout is asked about after this long
    "HOOKHUB_WATCH_GIVE_UP_SECONDS": 86400.0,  # a watched payment still unpaid this long is expired
    "HOOKHUB_REFUSED_RETENTION_SECONDS": 604800.0,  # refused calls and given-up re-checks are deleted after
    "HOOKHUB_RECHECKS_PER_ADDRESS": 20,  # re-checks the returns from one address may have pending at once
    "HOOKHUB_RECHECKS_MAX": 1000,  # re-checks pending at once, from everyone
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
    "HOOKHUB_ANSWER_ON_RECORD": bool,
    "HOOKHUB_SCHEDULER_INTERVAL": float,
    "HOOKHUB_WATCH_AFTER_SECONDS": float,
    "HOOKHUB_WATCH_GIVE_UP_SECONDS": float,
    "HOOKHUB_REFUSED_RETENTION_SECONDS": float,
    "HOOKHUB_RECHECKS_PER_ADDRESS": int,
    "HOOKHUB_RECHECKS_MAX": int,
}

# Result tokens are HMAC-signed with the key, and anyone holding one can test guesses offline.
MIN_SECRET_KEY_LENGTH = 32

_MAY_BE_ZERO = {"HOOKHUB_PROXY_HOPS", "HOOKHUB_WATCH_AFTER_SECONDS"}

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


class Settings(dict[str, Any]):
    """Every ``HOOKHUB_*`` setting after all layers, with the instance folder they were read from."""

    def __init__(self, values: Mapping[str, Any], instance_path: str):
        super().__init__(values)
        self.instance_path = instance_path


def default_instance_path() -> str:
    """Where the instance folder is unless ``HOOKHUB_INSTANCE_PATH`` says: as Flask finds it.

    Beside the package in a checkout; ``<prefix>/var/hookhub-instance`` when hookhub is installed
    into an environment's site-packages.
    """
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    prefix = os.path.abspath(sys.prefix)
    if package_parent.startswith(prefix + os.sep):
        return os.path.join(prefix, "var", "hookhub-instance")
    return os.path.join(package_parent, "instance")


def _read_config_file(path: str) -> dict[str, Any]:
    """Upper-case names a Python config file sets (as Flask's ``from_pyfile``); {} when absent."""
    try:
        with open(path, "rb") as handle:
            source = handle.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    namespace: dict[str, Any] = {"__file__": path}
    try:
        exec(compile(source, path, "exec"), namespace)  # noqa: S102 - the operator's own config file
    except Exception as exc:
        raise ConfigError(f"{path}: {type(exc).__name__}: {exc}") from None
    return {k: v for k, v in namespace.items() if k.isupper()}


def read(environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None, *,
         instance_path: str | None = None, generate_key: bool = True) -> Settings:
    """Every setting from every layer, checked and coerced; ``ConfigError`` names what is wrong.

    With ``generate_key=False`` an unset secret key is read from the instance folder if one was
    generated there, and is otherwise left None: for commands and clients that must write nothing.
    """
    environ = os.environ if environ is None else environ
    instance_path = instance_path or environ.get("HOOKHUB_INSTANCE_PATH") or default_instance_path()
    if not os.path.isabs(instance_path):
        raise ConfigError(f"the instance folder must be an absolute path, not {instance_path!r}")
    values: dict[str, Any] = dict(DEFAULTS)
    config_file = environ.get("HOOKHUB_CONFIG_FILE") or os.path.join(instance_path, "hookhub.cfg")
    values.update(_read_config_file(config_file))
    values.update({k: v for k, v in environ.items() if k.startswith("HOOKHUB_")})
    values.update(overrides or {})
    for name in list(values):
        if name.startswith("HOOKHUB_"):
            values[name] = _coerce(name, values[name])

    _check_logging(values)
    if not values["HOOKHUB_DATABASE_URL"]:
        if generate_key:  # a server about to create its store there
            make_private_folder(instance_path)
        values["HOOKHUB_DATABASE_URL"] = "sqlite:///" + os.path.join(instance_path, "hookhub.sqlite3")
    _check_secret_key(values)
    if not values["HOOKHUB_SECRET_KEY"]:
        values["HOOKHUB_SECRET_KEY"] = (_instance_secret_key(instance_path) if generate_key
                                        else _existing_instance_key(instance_path))
    public_url = values["HOOKHUB_PUBLIC_URL"]
    if public_url:
        values["HOOKHUB_PUBLIC_URL"] = public_url.rstrip("/")
    return Settings(values, instance_path)


def apply(app: Any, settings: Settings) -> None:
    """Fill a Flask app's config with ``settings`` and derive what Flask itself needs."""
    app.config.update(settings)
    app.config["SECRET_KEY"] = settings["HOOKHUB_SECRET_KEY"]
    app.config["MAX_CONTENT_LENGTH"] = settings["HOOKHUB_MAX_BODY_BYTES"]


def _check_secret_key(config: dict[str, Any]) -> None:
    """A set key must be long enough that its result tokens cannot be forged by guessing it offline;
    one of only whitespace is unset, like an empty one."""
    key = config["HOOKHUB_SECRET_KEY"]
    if isinstance(key, str) and not key.strip():
        config["HOOKHUB_SECRET_KEY"] = None
        return
    if key and len(key if isinstance(key, (str, bytes)) else str(key)) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(f"HOOKHUB_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters long; make one "
                          f"with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")


def _check_logging(config: dict[str, Any]) -> None:
    form = str(config["HOOKHUB_LOG_FORMAT"]).strip().lower()
    if form not in ("text", "json"):
        raise ConfigError(f"HOOKHUB_LOG_FORMAT must be text or json, not {config['HOOKHUB_LOG_FORMAT']!r}")
    level = str(config["HOOKHUB_LOG_LEVEL"]).strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"HOOKHUB_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, "
                          f"not {config['HOOKHUB_LOG_LEVEL']!r}")
    config["HOOKHUB_LOG_FORMAT"], config["HOOKHUB_LOG_LEVEL"] = form, level


def make_private_folder(path: str) -> None:
    """Make the folder ``path`` only its owner can enter, when it is missing: it holds the store (buyers'
    data) and the secret key. A folder that exists keeps the mode its owner gave it."""
    os.makedirs(path, mode=0o700, exist_ok=True)


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
    make_private_folder(instance_path)
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
