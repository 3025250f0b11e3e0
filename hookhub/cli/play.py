"""Trying hookhub with no credentials and no network: ``hookhub sandbox`` and ``hookhub simulate``."""

from __future__ import annotations

import shlex
from urllib.parse import urlsplit

import click
import requests
from click.core import ParameterSource

from .. import plugins
from ..errors import ConfigError
from ..sandbox import PAYMENT_STATUSES, Sandbox, SandboxServer
from .context import echo
from .operate import DEFAULT_BIND, DEFAULT_SANDBOX_URL, read_config


def _sandboxes() -> dict[str, Sandbox]:
    try:
        found = {s.name: s for s in plugins.load_sandboxes(read_config())}
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if not found:
        raise click.ClickException("no installed plugin brings a sandbox (or HOOKHUB_DISABLED_PLUGINS blocks them)")
    return found


@click.command()
@click.option("--bind", "-b", default=DEFAULT_SANDBOX_URL[len("http://"):], show_default=True,
              help="HOST:PORT to serve the sandboxes on.")
@click.option("--hookhub", "hookhub_url", default=f"http://{DEFAULT_BIND}", show_default=True,
              help="Where hookhub runs: where the fakes' payment pages notify it and send buyers back; "
                   "printed in the settings as HOOKHUB_PUBLIC_URL.")
@click.option("--print-settings", is_flag=True,
              help="Only print the export lines for sandboxes at --bind, and exit: "
                   "`eval \"$(hookhub sandbox --print-settings)\"` gives a shop's shell the same settings.")
def sandbox(bind: str, hookhub_url: str, print_settings: bool) -> None:
    """Serve local fakes of every sandboxed provider's API (MonCash, Monri, Monext, and any plugin's).

    Each fake answers on http://HOST:PORT/<provider> with the provider's paths, authentication and
    answers, for fixed sandbox credentials. Start hookhub on them with `hookhub serve --sandbox`,
    or with the settings printed here; then `hookhub simulate <provider>` plays a payment. The
    requests hookhub makes to the fakes are logged here. Stop with Ctrl-C; the fakes keep nothing.

    A payment your own code creates with a provider's client has a payment page here, as at the
    provider (the client's redirect URL; Monri: /monri/components/pay?client_secret=...). Its Pay,
    Decline and Cancel buttons notify hookhub at --hookhub and send the browser back to it.
    """
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter("give HOST:PORT", param_hint="--bind")
    if print_settings:
        settings: dict[str, str] = {}
        for found in _sandboxes().values():
            found.url = f"http://{bind}/{found.name}"
            settings.update(found.settings())
        for name, value in {**settings, "HOOKHUB_PUBLIC_URL": hookhub_url}.items():
            echo(f"export {name}={shlex.quote(value)}")
        return
    try:
        server = SandboxServer(_sandboxes().values(), host=host, port=int(port), hookhub_url=hookhub_url)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {bind}: {exc.strerror or exc}") from None
    echo(f"sandboxes on {server.url}: {', '.join(f'/{name}' for name in server.sandboxes)}")
    echo("hookhub's settings for them (or run `hookhub serve --sandbox`):")
    for name, value in {**server.settings(), "HOOKHUB_PUBLIC_URL": hookhub_url}.items():
        echo(f"  export {name}={shlex.quote(value)}")
    first, *others = server.sandboxes
    echo(f"then, in another terminal: hookhub simulate {first}"
               + (f"   (or {', '.join(others)}; --help for more)" if others else ""))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


@click.command()
@click.argument("provider")
@click.option("--as", "plays", type=click.Choice(["callback", "return"]),
              help="Play the provider's server-to-server callback, or the buyer's browser coming back. "
                   "Default: what that provider usually sends first (MonCash: return; Monri, Monext: callback).")
@click.option("--status", type=click.Choice(PAYMENT_STATUSES), default="approved", show_default=True,
              help="How the payment ends on the provider's side.")
@click.option("--amount", type=click.IntRange(1), default=1050, show_default=True,
              help="In minor units: 1050 is 10.50.")
@click.option("--currency", help="ISO 4217 code. Default: the provider's usual (MonCash: HTG, others: EUR).")
@click.option("--order", "order_id", help="The merchant's order id. Default: a new one. When your code created a "
                                          "payment for it that nobody has paid, that one is paid, for the amount "
                                          "and currency it was created with.")
@click.option("--hookhub", "hookhub_url", default=f"http://{DEFAULT_BIND}", show_default=True,
              help="The running hookhub to send to.")
@click.option("--public-url", help="hookhub's HOOKHUB_PUBLIC_URL, over which Monri signs returns. Default: --hookhub.")
@click.option("--sandbox", "sandbox_url", default=DEFAULT_SANDBOX_URL, show_default=True,
              help="Where `hookhub sandbox` runs.")
def simulate(provider: str, plays: str | None, status: str, amount: int, currency: str | None,
             order_id: str | None, hookhub_url: str, public_url: str | None, sandbox_url: str) -> None:
    """Play a payment against a running hookhub: the sandbox records it, then hookhub gets the
    provider's callback or the buyer's return about it, signed where the provider signs.

    hookhub then asks the sandbox for the payment, as it would ask the provider, and your handlers
    receive the event. Needs `hookhub sandbox` and a hookhub started with `hookhub serve --sandbox`.

    \b
        hookhub simulate moncash                    a buyer returns from a paid MonCash payment
        hookhub simulate monri --amount 1999        Monri's signed callback for 19.99 EUR
        hookhub simulate monext --status declined   Monext notifies of a refused payment
    """
    sandboxes = _sandboxes()
    if provider not in sandboxes:
        raise click.BadParameter(f"no sandbox for {provider!r}; there are: {', '.join(sandboxes)}",
                                 param_hint="PROVIDER")
    chosen = sandboxes[provider]
    chosen.url = f"{sandbox_url.rstrip('/')}/{provider}"
    try:
        payment, answer = chosen.simulate(hookhub_url.rstrip("/"), plays=plays, public_url=public_url,
                                          order_id=order_id, amount=amount, currency=currency, status=status)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except requests.ConnectionError as exc:
        where = urlsplit(exc.request.url).netloc if exc.request is not None else "?"
        raise click.ClickException(f"nothing answers at {where}: is `hookhub sandbox` or `hookhub serve "
                                   f"--sandbox` running?") from None
    except requests.RequestException as exc:
        where = urlsplit(exc.request.url).netloc if exc.request is not None else "?"
        raise click.ClickException(f"{where} did not answer in time ({type(exc).__name__})") from None
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    plays = plays or chosen.plays
    if payment.from_checkout:
        echo(f"{provider}: completed the payment your code created for order {payment.order_id} "
                   f"({payment.amount} {payment.currency}, minor units, as created): transaction "
                   f"{payment.transaction_id}, {payment.status}")
        amount_given = click.get_current_context().get_parameter_source("amount") is not ParameterSource.DEFAULT
        if (amount_given and amount != payment.amount) or (currency and currency.upper() != payment.currency):
            echo("  (--amount and --currency do not apply: a created payment is paid as it was created)")
    else:
        echo(f"{provider}: payment {payment.transaction_id} for order {payment.order_id}, "
                   f"{payment.amount} {payment.currency} (minor units), {payment.status}")
    echo(f"sent the {'buyer' + chr(39) + 's return' if plays == 'return' else 'callback'} to hookhub: "
               f"{answer.status_code} {answer.reason}"
               + (f" -> {answer.headers['Location'].split('?')[0]}" if "Location" in answer.headers else ""))
    if answer.status_code >= 400:
        raise click.ClickException(f"hookhub refused it: {answer.text[:300]}")
    echo("your handlers get the event within a few seconds; see also `hookhub events list`")
