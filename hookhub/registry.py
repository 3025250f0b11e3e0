"""Which providers this app serves: registered classes, checked against their configuration."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import ConfigError
from .providers import Memo, Provider

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclasses.dataclass(frozen=True)
class ProviderStatus:
    """A registered provider and whether it is configured (``missing`` lists unset variables)."""

    name: str
    cls: type[Provider]
    enabled: bool
    missing: tuple[str, ...]


class Registry:
    """Registered provider classes, and instances of the configured ones."""

    def __init__(self, classes: list[type[Provider]], config: Mapping[str, Any],
                 memo_for: Callable[[str], Memo] | None = None):
        self.statuses: dict[str, ProviderStatus] = {}
        self.enabled: dict[str, Provider] = {}
        for cls in classes:
            self._add(cls, config, memo_for)

    def _add(self, cls: type[Provider], config: Mapping[str, Any], memo_for: Callable[[str], Memo] | None) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Provider)):
            raise ConfigError(f"register() takes Provider subclasses, not {cls!r}")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{cls.__qualname__}.name must be lower-case letters, digits and _, not {name!r}")
        if name in self.statuses:
            other = self.statuses[name].cls
            raise ConfigError(f"provider {name!r} is registered twice ({other.__module__} and {cls.__module__})")
        given = {s.name: config.get(s.variable(name)) for s in cls.settings}
        given = {k: v for k, v in given.items() if v not in (None, "")}
        missing = tuple(s.variable(name) for s in cls.settings if s.required and s.name not in given)
        if given and missing:
            raise ConfigError(f"provider {name!r} is half configured: set {', '.join(missing)}")
        enabled = not missing
        self.statuses[name] = ProviderStatus(name, cls, enabled, missing)
        if enabled:
            if cls.needs_public_url and not config.get("HOOKHUB_PUBLIC_URL"):
                raise ConfigError(f"provider {name!r} verifies signed URLs: set HOOKHUB_PUBLIC_URL")
            values = {s.name: given.get(s.name, s.default) for s in cls.settings}
            self.enabled[name] = cls(values, timeout=float(config.get("HOOKHUB_HTTP_TIMEOUT", 10.0)),
                                     memo=memo_for(name) if memo_for else None)

    def get(self, name: str) -> Provider | None:
        return self.enabled.get(name)

    def secrets(self) -> list[str]:
        return [value for provider in self.enabled.values() for value in provider.secrets()]
