"""One pluggy plugin manager per app, and typed calls into it.

Loading order: installed distributions' ``hookhub`` entry points (the built-in providers come in this
way too), then the modules named in ``HOOKHUB_HANDLERS``, then plugin objects handed to
``create_app``. Names in ``HOOKHUB_DISABLED_PLUGINS`` are blocked before anything loads.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pluggy

from . import hookspecs
from .errors import ConfigError
from .events import Event
from .sandbox import Sandbox

PROJECT = "hookhub"


class PluginManager(pluggy.PluginManager):
    """Treats undecorated ``hookhub_*`` functions as hook implementations too.

    That way ``check_pending`` also catches a misspelled hook whose author forgot ``@hookimpl``,
    instead of the function silently never being called.
    """

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith(f"{PROJECT}_") and inspect.isroutine(getattr(plugin, name, None)):
            return {"wrapper": False, "hookwrapper": False, "optionalhook": False,
                    "tryfirst": False, "trylast": False, "specname": None}
        return opts


@dataclasses.dataclass(frozen=True)
class Handler:
    """One plugin's ``hookhub_handle_event``, callable on its own so handlers stay isolated."""

    name: str
    function: Callable[..., Any]
    argnames: tuple[str, ...]

    def __call__(self, event: Event) -> Any:
        arguments = {"event": event}
        return self.function(**{name: arguments[name] for name in self.argnames})


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def _plugin_name(plugin: Any) -> str:
    if inspect.ismodule(plugin):
        return plugin.__name__
    owner = plugin if inspect.isclass(plugin) else type(plugin)
    return f"{owner.__module__}.{owner.__qualname__}"


def load(config: Mapping[str, Any], extra: Iterable[Any] = (), *, handlers: bool = True) -> PluginManager:
    """Build the app's plugin manager from configuration; raise ``ConfigError`` on any problem.

    ``handlers=False`` leaves ``HOOKHUB_HANDLERS`` unimported: a shop's own process using the
    clients needs the providers only, never the handlers' modules.
    """
    pm = PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in _split(config.get("HOOKHUB_DISABLED_PLUGINS")):
        pm.set_blocked(name)
    try:
        pm.load_setuptools_entrypoints(PROJECT)
        for path in _split(config.get("HOOKHUB_HANDLERS")) if handlers else ():
            if pm.is_blocked(path):
                continue
            try:
                module = importlib.import_module(path)
            except ImportError as exc:
                raise ConfigError(f"HOOKHUB_HANDLERS: cannot import {path!r}: {exc}") from exc
            if pm.get_plugin(path) is None:
                pm.register(module, name=path)
        for plugin in extra:
            pm.register(plugin, name=_plugin_name(plugin))
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError(f"plugin {exc.plugin!r}: {exc}") from exc
    except ValueError as exc:  # pluggy: the same plugin or name registered twice
        raise ConfigError(str(exc)) from exc
    return pm


class Hooks:
    """Typed wrappers around every hook call the core makes."""

    def __init__(self, pm: PluginManager):
        self.pm = pm

    def register_providers(self) -> list[type]:
        registered: list[type] = []
        self.pm.hook.hookhub_register_providers(register=registered.append)
        return registered

    def register_sandboxes(self) -> list[type[Sandbox]]:
        registered: list[type] = []
        self.pm.hook.hookhub_register_sandboxes(register=registered.append)
        for cls in registered:
            if not (isinstance(cls, type) and issubclass(cls, Sandbox)):
                raise ConfigError(f"hookhub_register_sandboxes: register() takes Sandbox subclasses, not {cls!r}")
        return registered

    def handlers(self) -> dict[str, Handler]:
        """Every ``hookhub_handle_event`` implementation by its plugin's name, in call order."""
        return {
            impl.plugin_name: Handler(impl.plugin_name, impl.function, tuple(impl.argnames))
            for impl in reversed(self.pm.hook.hookhub_handle_event.get_hookimpls())
        }

    @property
    def expects_payments(self) -> bool:
        """Whether any plugin implements ``hookhub_expected_payment`` (else it need not be called)."""
        return bool(self.pm.hook.hookhub_expected_payment.get_hookimpls())

    def expected_payment(self, provider: str, order_id: str) -> tuple[int, str] | None:
        answer = self.pm.hook.hookhub_expected_payment(provider=provider, order_id=order_id)
        if answer is None:
            return None
        amount, currency = answer
        if isinstance(amount, bool) or not isinstance(amount, int) or not isinstance(currency, str):
            raise TypeError("hookhub_expected_payment must return (int minor units, str currency) or None")
        return amount, currency.upper()

    def return_response(self, event: Event | None, request: Any) -> Any:
        return self.pm.hook.hookhub_return_response(event=event, request=request)


def load_sandboxes(config: dict[str, Any] | None = None) -> list[Sandbox]:
    """An instance of every sandbox the installed plugins register (not yet served)."""
    return [cls() for cls in Hooks(load(config or {})).register_sandboxes()]
