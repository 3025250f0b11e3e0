"""The ``hookhub`` command: ``hookhub ...`` on its own, or ``flask --app wsgi hookhub ...``.

Every command reads the same configuration as the server (``HOOKHUB_*`` variables, the instance
config file), so it looks at the same store and the same providers.
"""

from __future__ import annotations

import os
import sys

import click

from . import money, operate, play, records, watching
from .context import HubSource, environment_hub

cli = click.Group("hookhub", help="""Run hookhub, try it against sandboxed providers, and look at and act on what it
received and delivered.

\b
New here? Three terminals:
  hookhub sandbox                  fakes of the providers' APIs
  hookhub serve --sandbox          hookhub, its providers on those fakes
  hookhub simulate moncash         a buyer coming back from a paid MonCash payment

Configuration comes from HOOKHUB_* environment variables (see docs/configuration.md); each command's
--help says what it does.""")

for command in (operate.serve, operate.providers, operate.plugins_command, operate.check, play.sandbox, play.simulate,
                *records.GROUPS, watching.watches, watching.workers, money.payments, money.payouts):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """The ``hookhub`` console script: the same commands, with the app built from the environment."""
    # Handler modules are imported from the current directory, as gunicorn imports them; last on the
    # path, so that a file there (a stray requests.py) never takes the place of an installed module.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    # Commands check the store's schema when they first use it, except ``db``, which works on any schema.
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="hookhub", obj=HubSource(environment_hub))
