"""Which providers this app serves: registered classes, checked against their configuration."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .loopback import is_loopback
from .providers import Memo, Provider, Setting, WatchBook

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclasses.dataclass(frozen=True)
class ProviderStatus:
    """A registered provider and how far it is configured.

    ``missing`` lists the unset required variables; ``given`` the setting names that are set.
    """

    name: str
    cls: type[Provider]
    missing: tuple[str, ...]
    given: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return not self.missing

    @property
    def state(self) -> str:
        """``enabled``, ``off`` (none of its settings) or ``half configured`` (a startup error)."""
        return "enabled" if self.enabled else "half configured" if self.given else "off"


def provider_status(cls: type[Provider], config: Mapping[str, Any]) -> ProviderStatus:
    """What ``config`` sets of ``cls``'s settings; raises ``ConfigError`` only for an unusable class."""
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ConfigError(f"register() takes Provider subclasses, not {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{cls.__qualname__}.name must be lower-case letters, digits and _, not {name!r}")
    given = tuple(s.name for s in cls.settings if _is_set(config.get(s.variable(name))))
    missing = tuple(s.variable(name) for s in cls.settings if s.required and s.name not in given)
    return ProviderStatus(name, cls, missing, given)


def _is_set(value: Any) -> bool:
    # Only whitespace is unset too: an editor's or a template's blank must not turn a provider on.
    return value is not None and not (isinstance(value, str) and not value.strip())


def setting_value(setting: Setting, provider: str, config: Mapping[str, Any]) -> Any:
    """The value of one provider setting, its default when unset; ``ConfigError`` for one that cannot be right."""
    variable = setting.variable(provider)
    value = config.get(variable)
    if not _is_set(value):
        value = setting.default
    elif isinstance(value, str) and value != value.strip():
        # A key pasted with a space or line break around it fails every call, or signs wrongly.
        raise ConfigError(f"{variable} has whitespace before or after its value: remove it")
    if setting.url and value is not None:
        _check_url(variable, str(value))
    return value


def _check_url(variable: str, value: str) -> None:
    """An API's address must be https: over plain http, anyone on the way reads the credentials and
    can forge the provider's answers. Plain http to loopback stays, for sandboxes and tests."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise ConfigError(f"{variable} is not a URL") from None
    if (parts.scheme == "https" and host) or (parts.scheme == "http" and is_loopback(host)):
        return
    raise ConfigError(f"{variable} must be an https:// URL (http:// only to loopback: 127.0.0.0/8, ::1, "
                      f"localhost), not {parts.scheme or '(no scheme)'}://{host or ''}")


class Registry:
    """Registered provider classes, and instances of the configured ones."""

    def __init__(self, classes: list[type[Provider]], config: Mapping[str, Any],
                 memo_for: Callable[[str], Memo] | None = None, watches: WatchBook | None = None):
        self.statuses: dict[str, ProviderStatus] = {}
        self.enabled: dict[str, Provider] = {}
        for cls in classes:
            self._add(cls, config, memo_for, watches)

    def _add(self, cls: type[Provider], config: Mapping[str, Any], memo_for: Callable[[str], Memo] | None,
             watches: WatchBook | None) -> None:
        status = provider_status(cls, config)
        name = status.name
        if name in self.statuses:
            other = self.statuses[name].cls
            raise ConfigError(f"provider {name!r} is registered twice ({other.__module__} and {cls.__module__})")
        if status.given and status.missing:
            raise ConfigError(f"provider {name!r} is half configured: set {', '.join(status.missing)}")
        self.statuses[name] = status
        if status.enabled:
            if cls.needs_public_url and not config.get("HOOKHUB_PUBLIC_URL"):
                raise ConfigError(f"provider {name!r} verifies signed URLs: set HOOKHUB_PUBLIC_URL")
            values = {s.name: setting_value(s, name, config) for s in cls.settings}
            self.enabled[name] = cls(values, timeout=float(config.get("HOOKHUB_HTTP_TIMEOUT", 10.0)),
                                     memo=memo_for(name) if memo_for else None, watches=watches)

    def get(self, name: str) -> Provider | None:
        return self.enabled.get(name)

    def require(self, name: str) -> Provider:
        """The configured provider ``name``, or ``ConfigError`` saying what it still needs."""
        provider = self.enabled.get(name)
        if provider is None:
            raise ConfigError(f"provider {name!r} is not configured: {self.why_not(name)}")
        return provider

    def why_not(self, name: str) -> str:
        """Why ``name`` is not enabled, in a few words."""
        status = self.statuses.get(name)
        if status is None:
            known = ", ".join(sorted(self.statuses)) or "none"
            return f"no plugin registers it (registered: {known})"
        return f"set {', '.join(status.missing)}"

    def secrets(self) -> list[str]:
        return [value for provider in self.enabled.values() for value in provider.secrets()]
