"""``hookhub payments`` and ``hookhub payouts``: each payment's ledger, and the payouts made."""

from __future__ import annotations

import click

from .context import echo
from .records import AS_JSON, LIMIT, command_hub, print_json, when

payments = click.Group("payments", help="Payments with their money movements and totals.")
payouts = click.Group("payouts", help="Payouts made through hookhub, and how each ended.")


@payments.command("show")
@click.argument("provider")
@click.argument("order_id")
@AS_JSON
def payments_show(provider: str, order_id: str, as_json: bool) -> None:
    """One order's payment: its status, its totals, every movement (booked, or held with the reason)
    and every event."""
    found = command_hub().store.payment_ledgers(provider, order_id)
    if not found:
        raise click.ClickException(f"no {provider} payment of order {order_id!r} is known")
    if as_json:
        print_json([{**p, "events": [e.to_dict() for e in p["events"]]} for p in found])
        return
    for payment in found:
        t = payment["totals"]
        echo(f"{payment['provider']} {payment['order_id']} ({payment['key']}): {payment['status']}, "
                   f"{payment['currency']} authorized {t['authorized']}, captured {t['captured']}, "
                   f"refunded {t['refunded']}")
        echo("movements:")
        for m in payment["movements"]:
            state = "booked" if m["status"] == "booked" else f"held: {m['note']}"
            echo(f"  {when(m['occurred_at'] or m['recorded_at'])}  {m['kind']:<13} {m['amount']:>12} "
                       f"{m['currency']}  {m['provider_id'] or '-':<20} {state}")
        echo("events:")
        for e in payment["events"]:
            echo(f"  {when(e.received_at)}  {e.type:<18} {e.amount:>12}  {e.id}  {e.source}")


@payouts.command("list")
@click.option("--provider", help="Only this provider's.")
@LIMIT
@AS_JSON
def payouts_list(provider: str | None, limit: int, as_json: bool) -> None:
    """Payouts, newest first: amount, status (pending, succeeded, failed, or unknown while the
    provider has said nothing), and what the provider last said."""
    rows = command_hub().store.list_payouts(provider=provider, limit=limit)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        echo(f"{when(row['created_at'])}  {row['provider']:<8} {row['reference']:<28} {row['amount']:>12} "
                   f"{row['currency']}  {row['status']:<10} {row['last_answer'] or ''}")


@payouts.command("show")
@click.argument("provider")
@click.argument("reference")
@AS_JSON
def payouts_show(provider: str, reference: str, as_json: bool) -> None:
    """One payout: its status, the watch on it, and its events."""
    hub = command_hub()
    row = next(iter(hub.store.list_payouts(provider=provider, reference=reference, limit=1)), None)
    if row is None:
        raise click.ClickException(f"no {provider} payout {reference!r} is known")
    events = hub.store.payout_events(provider, reference)
    if as_json:
        print_json({**row, "events": [e.to_dict() for e in events]})
        return
    for name in ("provider", "reference", "amount", "currency", "status", "transaction_id", "watch",
                 "last_answer", "last_error"):
        echo(f"{name + ':':<16} {row[name] if row[name] is not None else '-'}")
    for e in events:
        echo(f"  {when(e.received_at)}  {e.type:<18} {e.amount:>12}  paid {e.totals.get('paid', 0)}  {e.id}")
