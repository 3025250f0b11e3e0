"""The commands on what hookhub received and delivered: events, deliveries, inbound calls, the schema.

They work on the store of the configuration they run with, as the server does. Output is one line
per record, or JSON with ``--json``.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import click

from .. import jsonutil
from ..errors import SchemaError, StoreUnavailable
from ..hub import Hub
from .context import current_hub, echo
from ..store import migrate, utcnow

events = click.Group("events", help="Normalized events, and replaying them to handlers.")
deliveries = click.Group("deliveries", help="Deliveries of events to handlers, and the dead letters.")
calls = click.Group("calls", help="Inbound calls exactly as received (secrets redacted), and re-running them.")
db = click.Group("db", help="The store's schema: see where it is, and upgrade it after installing a new hookhub.")
GROUPS = (events, deliveries, calls, db)


class When(click.ParamType):
    """An ISO 8601 time (UTC unless it says otherwise), or a duration back from now: 30m, 2h, 7d."""

    name = "time"
    _UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    _DURATION = re.compile(r"([0-9]{1,6})([smhd])")

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        duration = self._DURATION.fullmatch(text)
        if duration:
            return utcnow() - timedelta(seconds=int(duration[1]) * self._UNITS[duration[2]])
        try:
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            self.fail(f"{value!r} is neither an ISO 8601 time nor a duration such as 30m, 2h or 7d", param, ctx)
        return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


SINCE = click.option("--since", type=When(), help="Only since this time (ISO 8601, or 30m / 2h / 7d ago).")
LIMIT = click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="At most this many.")
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of one line per record.")


@contextmanager
def _store_errors_as_messages() -> Iterator[None]:
    """A store that cannot be reached or has the wrong schema ends the command with its reason."""
    try:
        yield
    except (SchemaError, StoreUnavailable) as exc:
        raise click.ClickException(str(exc)) from None


def command_hub() -> Hub:
    """The app's hub, its store checked to be at the newest schema."""
    hub = current_hub()
    with _store_errors_as_messages():
        hub.prepare_store()
    return hub


def print_json(value: Any) -> None:
    echo(json.dumps(jsonutil.to_plain(value), indent=2, default=str, ensure_ascii=False))


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


# -- events ----------------------------------------------------------------------------------------


@events.command("list")
@click.option("--provider", help="Only this provider's events.")
@click.option("--type", "type_", metavar="TYPE", help="Only events of this type, e.g. payment.approved.")
@click.option("--order", help="Only events of this order id.")
@SINCE
@LIMIT
@AS_JSON
def events_list(provider: str | None, type_: str | None, order: str | None, since: datetime | None, limit: int,
                as_json: bool) -> None:
    """List events, oldest first."""
    found = command_hub().store.list_events(provider=provider, type=type_, order_id=order, since=since, limit=limit)
    if as_json:
        print_json([e.to_dict() for e in found])
        return
    for e in found:
        echo(f"{e.id}  {when(e.received_at)}  {e.provider:<8} {e.type:<17} order={e.order_id} "
                   f"amount={e.amount} {e.currency} source={e.source}")


@events.command("show")
@click.argument("event_id")
def events_show(event_id: str) -> None:
    """Show one event with its deliveries."""
    store = command_hub().store
    event = store.get_event(event_id)
    if event is None:
        raise click.ClickException(f"no event {event_id}")
    print_json({"event": event.to_dict(), "deliveries": store.list_deliveries(event_id=event_id)})


@events.command("replay")
@click.argument("event_ids", nargs=-1)
@click.option("--failed", is_flag=True, help="Every failed delivery: dead letters and those awaiting a retry.")
@SINCE
@click.option("--handler", help="Only this handler (its plugin name).")
@click.option("--schedule-only", is_flag=True,
              help="Only make the deliveries due; the running servers deliver them. By default they are "
                   "delivered here and now.")
def events_replay(event_ids: tuple[str, ...], failed: bool, since: datetime | None, handler: str | None,
                  schedule_only: bool) -> None:
    """Deliver events to their handlers again (same event id, fresh attempts).

    Name events by id, or use --failed or --since.
    """
    hub = command_hub()
    if not (event_ids or failed or since):
        raise click.UsageError("name event ids, or use --failed or --since")
    missing = [i for i in event_ids if hub.store.get_event(i) is None]
    if missing:
        raise click.ClickException(f"no such event: {', '.join(missing)}")
    if handler and handler not in hub.handlers:
        raise click.ClickException(f"no handler {handler!r}; handlers: {', '.join(hub.handlers) or 'none'}")
    replayed = hub.store.replay(event_ids=event_ids, failed=failed, since=since, handler=handler, now=utcnow())
    echo(f"{len(replayed)} deliveries due again")
    if schedule_only or not replayed:
        return
    while hub.deliverer.run():
        pass
    if hub.deliverer.overdue:  # leaving now would cut those calls off halfway
        echo(f"waiting for {hub.deliverer.overdue} handler calls still running...")
    while hub.deliverer.overdue:
        time.sleep(0.2)
        hub.deliverer.tend_overdue()
    states = {d["id"]: d["status"] for d in hub.store.list_deliveries() if d["id"] in set(replayed)}
    done = sum(1 for i in replayed if states.get(i) == "done")
    echo(f"{done} delivered, {len(replayed) - done} failed again (see `hookhub deliveries list`)")


# -- deliveries ------------------------------------------------------------------------------------


def _echo_deliveries(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    for d in rows:
        error = (d["last_error"] or "").strip().splitlines()
        echo(f"{d['id']:>6}  {d['event_id']}  {d['handler']:<30} {d['status']:<7} attempts={d['attempts']} "
                   f"next={when(d['next_attempt_at'])}" + (f"  {error[-1]}" if error else ""))


@deliveries.command("list")
@click.option("--status", type=click.Choice(["pending", "done", "dead"]), help="Only deliveries in this state.")
@click.option("--event", "event_id", help="Only this event's deliveries.")
@click.option("--handler", help="Only this handler's deliveries.")
@LIMIT
@AS_JSON
def deliveries_list(status: str | None, event_id: str | None, handler: str | None, limit: int, as_json: bool) -> None:
    """List deliveries; a failed one shows the last line of its error."""
    rows = command_hub().store.list_deliveries(status=status, event_id=event_id, handler=handler, limit=limit)
    _echo_deliveries(rows, as_json)


@deliveries.command("show")
@click.argument("delivery_id", type=int)
def deliveries_show(delivery_id: int) -> None:
    """Show one delivery, with the whole traceback of its last failure."""
    row = command_hub().store.get_delivery(delivery_id)
    if row is None:
        raise click.ClickException(f"no delivery {delivery_id}")
    print_json(row)


@deliveries.command("dead")
@LIMIT
@AS_JSON
def deliveries_dead(limit: int, as_json: bool) -> None:
    """List the dead letters: deliveries that used up their attempts. Replay with `events replay --failed`."""
    _echo_deliveries(command_hub().store.list_deliveries(status="dead", limit=limit), as_json)


# -- inbound calls ---------------------------------------------------------------------------------


def _readable(call: dict[str, Any]) -> dict[str, Any]:
    """A stored call with its body as text, for printing."""
    return {**call, "body": bytes(call["body"]).decode("utf-8", "replace")}


@calls.command("list")
@click.option("--provider", help="Only this provider's calls.")
@click.option("--route", type=click.Choice(["callback", "return"]), help="Only callbacks or only returns.")
@click.option("--outcome", help="Only calls with this outcome (event, duplicate, invalid_signature, ...).")
@SINCE
@LIMIT
@AS_JSON
def calls_list(provider: str | None, route: str | None, outcome: str | None, since: datetime | None, limit: int,
               as_json: bool) -> None:
    """List inbound calls, newest first."""
    rows = command_hub().store.list_calls(provider=provider, route=route, outcome=outcome, since=since, limit=limit)
    if as_json:
        print_json([_readable(r) for r in rows])
        return
    for r in rows:
        echo(f"{r['id']:>6}  {when(r['received_at'])}  {r['provider']:<8} {r['route']:<8} {r['method']:<6} "
                   f"{r['status_code'] or '-'} {r['outcome']:<20} ref={r['reference'] or '-'}")


@calls.command("show")
@click.argument("call_id", type=int)
def calls_show(call_id: int) -> None:
    """Show one inbound call: headers, query, body (as text) and what became of it."""
    row = command_hub().store.get_call(call_id)
    if row is None:
        raise click.ClickException(f"no inbound call {call_id}")
    print_json(_readable(row))


@calls.command("rerun")
@click.argument("call_id", type=int)
def calls_rerun(call_id: int) -> None:
    """Run a recorded call through verification again, as a new call; any event it makes has source replay.

    Credential headers are never stored, so a signed callback cannot be verified again this way.
    """
    hub = command_hub()
    row = hub.store.get_call(call_id)
    if row is None:
        raise click.ClickException(f"no inbound call {call_id}")
    handled = hub.pipeline.rerun(row, public_url=hub.settings["HOOKHUB_PUBLIC_URL"])
    line = f"outcome={handled.outcome} status={handled.status}"
    if handled.event is not None:
        line += f" event={handled.event.id}"
    if handled.refused:
        raise click.ClickException(f"{line}: {handled.message}")
    echo(line)


@calls.command("prune")
@click.option("--older-than", "before", type=When(), required=True,
              help="Delete calls received before this: a duration back from now (90d) or an ISO 8601 time.")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
def calls_prune(before: datetime, dry_run: bool) -> None:
    """Delete stored inbound calls older than a cutoff (they hold buyers' data).

    Events, transactions and deliveries are kept; calls whose verification is still pending are
    kept too. Run it from cron or a timer, e.g. daily with --older-than 90d.
    """
    count = command_hub().store.prune_calls(before=before, dry_run=dry_run)
    echo(f"{count} inbound calls received before {when(before)} UTC {'would be' if dry_run else 'were'} deleted")


# -- schema ----------------------------------------------------------------------------------------


@db.command("current")
@click.option("--check", is_flag=True, help="Exit with status 1 unless the schema is the newest.")
def db_current(check: bool) -> None:
    """Show the database's schema revision and the newest one this hookhub knows."""
    with _store_errors_as_messages():
        status = migrate.status(current_hub().store)
    upgradable = not status.up_to_date and status.known and not status.clashes
    echo(status.describe() + (f"; `hookhub db upgrade` brings it to {status.head}" if upgradable else ""))
    if check and not status.up_to_date:
        sys.exit(1)


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Upgrade the database to REVISION (default: the newest), in one transaction.

    Safe to run from several hosts at once: they take turns, and the later ones find nothing to do.
    Run it before restarting servers on a new hookhub version; on an old schema they answer 503.
    """
    with _store_errors_as_messages():
        before, after = migrate.upgrade(current_hub().store, revision)
    if before.current == after.current and not before.unversioned:
        echo(f"nothing to do: {after.describe()}")
        return
    start = before.current or (f"{migrate.BASELINE} (before migrations)" if before.unversioned else "an empty database")
    echo(f"upgraded from {start} to {after.current}")
