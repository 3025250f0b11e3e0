"""``hookhub watches``: what hookhub asks providers about on its own, and what they last said."""

from __future__ import annotations

from typing import Any

import click

from .context import echo
from .records import AS_JSON, LIMIT, command_hub, print_json, when

watches = click.Group("watches", help="Payments and payouts created through hookhub, watched until the provider's "
                                      "answer is final.")


def _why_not_asked(hub: Any, row: dict[str, Any]) -> str | None:
    """Why the servers cannot ask about this watch now, or None when they can."""
    if row["status"] != "pending":
        return None
    if hub.registry.get(row["provider"]) is None:
        return f"provider {row['provider']!r} is not configured here ({hub.registry.why_not(row['provider'])}): " \
               "it is not asked about until it is"
    return None


@watches.command("list")
@click.option("--provider", help="Only this provider's.")
@click.option("--status", type=click.Choice(["pending", "settled", "expired", "gave_up"]), help="Only these.")
@LIMIT
@AS_JSON
def watches_list(provider: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """Watches, newest first: what is watched, its next check and what the provider last said."""
    hub = command_hub()
    rows = hub.store.list_watches(provider=provider, status=status, limit=limit)
    for row in rows:
        row["not_asked_because"] = _why_not_asked(hub, row)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        due = f"next check {when(row['next_attempt_at'])}" if row["status"] == "pending" else row["status"]
        said = row["last_answer"] or "not asked yet"
        echo(f"{row['provider']:<8} {row['kind']:<7} {row['order_id']:<28} {row['amount']:>10} "
                   f"{row['currency']} {due:<36} {said}" + (f"  ({row['not_asked_because']})"
                                                          if row["not_asked_because"] else ""))


@watches.command("show")
@click.argument("provider")
@click.argument("order_id")
@click.option("--kind", type=click.Choice(["payment", "payout"]), help="A payment's or a payout's watch.")
@AS_JSON
def watches_show(provider: str, order_id: str, kind: str | None, as_json: bool) -> None:
    """One watch: the provider's reference, every time, the checks so far and the last answer."""
    hub = command_hub()
    row = hub.store.get_watch(provider, order_id, kind)
    if row is None:
        raise click.ClickException(f"nothing of {provider}'s order {order_id!r} is watched")
    row["not_asked_because"] = _why_not_asked(hub, row)
    if as_json:
        print_json(row)
        return
    for name in ("provider", "kind", "order_id", "reference", "amount", "currency", "status", "attempts"):
        echo(f"{name + ':':<17} {row[name]}")
    for name in ("created_at", "next_attempt_at", "checked_at", "deadline"):
        echo(f"{name + ':':<17} {when(row[name]) if row[name] else '-'}")
    echo(f"{'last answer:':<17} {row['last_answer'] or '-'}")
    echo(f"{'last error:':<17} {row['last_error'] or '-'}")
    if row["not_asked_because"]:
        echo(f"{'not asked:':<17} {row['not_asked_because']}")


@click.command("workers")
@AS_JSON
def workers(as_json: bool) -> None:
    """Live hookhub processes by their heartbeats: host, pid, last beat, and the work each holds.

    A process whose last beat is older than a few beats is orphaned: its work is taken by the
    others at once.
    """
    rows = command_hub().store.list_workers()
    if as_json:
        print_json(rows)
        return
    if not rows:
        echo("no process is doing background work")
    for row in rows:
        state = "ORPHANED" if row["orphaned"] else "live"
        echo(f"{row['host']:<24} pid {row['pid']:<8} {state:<9} last beat {row['beat_age_seconds']:.1f} s ago, "
                   f"since {when(row['started_at'])}; holds {row['holds']['deliveries']} deliveries, "
                   f"{row['holds']['checks']} checks  ({row['owner']})")
