"""What must hold after any trial: the ERP and the channel agree, nothing is lost,
nothing is there twice. Expectations come from the ERP's own tables (plain SQL), the
channel's side from the kit's read-back; syncctl's code is not asked."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from reliability.world import World
from syncctl.domain import UTC

STOCK_FROM = ("CD-SP", "LOJA-01")  # the kits' stock.from_warehouses
DEBIT_WAREHOUSE = "CD-SP"


@dataclass
class Tally:
    orders: int = 0  # channel orders found exactly once in the ERP
    # order updates and replies found on the channel; tracking events and customers' messages in the ERP
    messages: int = 0
    resent: int = 0  # invoices sent again with the same number (harmless: a new receipt only)
    losses: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)

    def lost(self, what: str) -> None:
        self.losses += 1
        self.problems.append(f"lost: {what}")

    def doubled(self, what: str) -> None:
        self.duplicates += 1
        self.problems.append(f"duplicated: {what}")

    def wrong(self, what: str) -> None:
        self.problems.append(f"wrong: {what}")


CHECKS_BY_JOB = {
    "push-products": ("catalog",),
    "push-stock": ("stock",),
    "push-prices": ("prices",),
    "pull-orders": ("orders",),
    "push-invoices": ("updates",),
    "sync-sac": ("sac",),
    "run-all": ("orders", "catalog", "stock", "prices"),
    "track": ("tracking",),
}


def check(world: World, job: str) -> Tally:
    """What must hold after `job` ran to completion."""
    return _run(world, CHECKS_BY_JOB[job])


def check_all(world: World) -> Tally:
    """What must hold after every job of the world's channel ran to completion."""
    return _run(world, [name for job in world.kit.jobs for name in CHECKS_BY_JOB[job]])


def _run(world: World, names: Iterable[str]) -> Tally:
    tally = Tally()
    for name in dict.fromkeys(names):
        CHECKS[name](world, tally)
    return tally


def check_catalog(world: World, tally: Tally) -> None:
    """Every sellable ERP row listed once, with its name, EAN and product; every product once."""
    listed, twice = world.kit.listings(world.fake)
    for sku in twice:
        tally.doubled(f"SKU {sku} listed more than once")
    rows = world.erp_sql(
        "SELECT sku, name, ean, coalesce(parent_sku, sku) FROM products p "
        "WHERE NOT EXISTS (SELECT 1 FROM products c WHERE c.parent_sku = p.sku)"
    )
    for sku, name, ean, product_ref in rows:
        listing = listed.get(sku)
        if listing is None:
            tally.lost(f"SKU {sku} is not on the channel")
        elif (listing.name, listing.eans, listing.product_ref) != (name, (ean,), product_ref):
            tally.wrong(f"SKU {sku} shows {listing}, the ERP has {(name, ean, product_ref)}")
    for ref, times in world.kit.product_refs(world.fake).items():
        if times > 1:
            tally.doubled(f"product {ref} created {times} times")


def check_stock(world: World, tally: Tally) -> None:
    """The channel's stock is the ERP's balance over the listed warehouses (sales included)."""
    wanted = dict(world.erp_sql(
        "SELECT sku, sum(quantity) FROM stock_balances WHERE warehouse IN ('CD-SP', 'LOJA-01') GROUP BY sku"
    ))
    shown = world.kit.stock(world.fake)
    for sku, quantity in sorted(wanted.items()):
        if shown.get(sku) != max(0, quantity):
            tally.wrong(f"stock of {sku}: channel {shown.get(sku)}, ERP {quantity}")


def check_prices(world: World, tally: Tally) -> None:
    now = datetime.now(UTC)
    shown = world.kit.prices(world.fake)
    for row in world.erp_rows("prices"):
        running = row["sale_price"] is not None and row["sale_starts_at"] <= now < row["sale_ends_at"]
        wanted = (row["list_price"], row["sale_price"] if running else row["list_price"])
        if shown.get(row["sku"]) != wanted:
            tally.wrong(f"price of {row['sku']}: channel {shown.get(row['sku'])}, ERP {wanted}")


def check_orders(world: World, tally: Tally) -> None:
    """Each placed order in the ERP once, with its lines once and one debit per line;
    the channel told that we have it, once (unless someone else handled it first)."""
    rows = Counter(
        channel_order_id
        for (channel_order_id,) in world.erp_sql(f"SELECT channel_order_id FROM orders WHERE channel = '{world.channel}'")
    )
    for order_id in world.placed:
        times = rows.get(order_id, 0)
        if times == 0:
            tally.lost(f"order {order_id} is not in the ERP")
        elif times > 1:
            tally.doubled(f"order {order_id} is in the ERP {times} times")
        else:
            tally.orders += 1
    lines = dict(world.erp_sql("SELECT order_id, count(*) FROM order_items GROUP BY order_id"))
    moves = world.erp_sql(
        "SELECT o.id, o.channel_order_id, count(m.id), coalesce(sum(m.delta), 0), "
        "(SELECT sum(quantity) FROM order_items i WHERE i.order_id = o.id) "
        "FROM orders o LEFT JOIN stock_moves m ON m.order_id = o.id AND m.reason = 'sale' "
        f"AND m.warehouse = '{DEBIT_WAREHOUSE}' GROUP BY o.id"
    )
    for erp_id, order_id, debits, delta, quantity in moves:
        expected = lines.get(erp_id, 0)
        if debits > expected:
            tally.doubled(f"order {order_id}: {debits} debits for {expected} lines")
        elif debits < expected:
            tally.lost(f"order {order_id}: {debits} debits for {expected} lines")
        elif -delta != quantity:
            tally.wrong(f"order {order_id}: debited {-delta}, sold {quantity}")
    for order_id, (told, waiting) in world.kit.handled(world.fake).items():
        if order_id not in world.placed:
            continue
        if told > 1:
            tally.doubled(f"order {order_id}: the channel was told {told} times that we have it")
        elif waiting:
            tally.wrong(f"order {order_id}: the channel still waits to be told that we have it")


def check_updates(world: World, tally: Tally) -> None:
    """Every ERP invoice on its channel order once, with the shipment's tracking code
    and its events where the channel takes them; the invoice sent again only with the
    same number, and no status notified twice."""
    delivered = world.kit.delivered(world.fake)
    rows = world.erp_sql(
        "SELECT o.channel_order_id, i.number, i.nfe_key, s.tracking_code, "
        "(SELECT count(*) FROM shipment_events e WHERE e.shipment_id = s.id) "
        "FROM orders o JOIN invoices i ON i.order_id = o.id JOIN shipments s ON s.order_id = o.id "
        f"WHERE o.channel = '{world.channel}'"
    )
    for order_id, number, nfe_key, tracking, events in rows:
        shown = delivered.get(order_id)
        if shown is None or not {number, nfe_key} & set(shown.invoices):
            tally.lost(f"invoice {number} of order {order_id}")
            continue
        if len(shown.invoices) > 1:
            tally.doubled(f"order {order_id} holds invoices {shown.invoices}")
        if shown.repeated:
            tally.doubled(f"order {order_id}: {shown.repeated} shipment statuses notified again")
        tally.resent += max(0, shown.invoice_sends - 1)
        tally.messages += 1
        if shown.tracks and shown.tracking != tracking:  # (some shipments the channel tracks itself)
            tally.lost(f"tracking {tracking} of order {order_id} (channel has {shown.tracking})")
        elif shown.tracks:
            tally.messages += 1
        if shown.events is None:
            continue
        if shown.events != events:
            tally.lost(f"{events} tracking events of order {order_id} (channel has {shown.events})")
        elif events:
            tally.messages += 1


def check_sac(world: World, tally: Tally) -> None:
    """Every customer message in the ERP once; every agent reply on the channel once, on
    the ticket it answers; none on a ticket the channel never sent (the ERP opened it)."""
    held = world.kit.conversations(world.fake)
    rows = world.erp_sql(
        "SELECT t.channel_ticket_id, m.direction, m.body FROM ticket_messages m JOIN tickets t ON t.id = m.ticket_id "
        f"WHERE t.channel = '{world.channel}'"
    )
    erp = {
        direction: Counter((ticket, body) for ticket, way, body in rows if way == direction) for direction in ("in", "out")
    }
    channel = {
        "in": Counter((ticket, body) for ticket, shown in held.items() for body in shown.customer),
        "out": Counter((ticket, body) for ticket, shown in held.items() for body in shown.replies),
    }
    for (ticket, body), times in channel["in"].items():
        _once(tally, f"customer message {body!r} on {ticket} in the ERP", erp["in"][ticket, body], times)
    for (ticket, body), times in erp["out"].items():
        sent = channel["out"][ticket, body]
        if held.get(ticket) and held[ticket].customer:
            _once(tally, f"reply {body!r} on {ticket} on the channel", sent, times)
        elif sent:
            tally.wrong(f"reply {body!r} sent on {ticket}, a ticket the ERP opened, not the channel")
    for ticket, body in channel["out"].keys() - erp["out"].keys():
        tally.wrong(f"reply {body!r} on {ticket} is on the channel, not in the ERP")


def _once(tally: Tally, what: str, found: int, wanted: int) -> None:
    """Count `what` found `found` times where it should be `wanted` times."""
    if found < wanted:
        tally.lost(f"{what}: {found} of {wanted}")
    elif found > wanted:
        tally.doubled(f"{what}: {found}, not {wanted}")
    else:
        tally.messages += found


def check_tracking(world: World, tally: Tally) -> None:
    """Every event the carrier holds is in the ERP once, and every parcel with events has a status."""
    held = world.kit.tracked(world.fake)
    rows = world.erp_sql(
        "SELECT s.tracking_code, count(e.shipment_id), s.delivery_status FROM shipments s "
        f"LEFT JOIN shipment_events e ON e.shipment_id = s.id WHERE s.carrier = '{world.channel}' GROUP BY s.id"
    )
    for code, events, status in rows:
        wanted = held.get(code, 0)
        if events < wanted:
            tally.lost(f"{wanted - events} events of parcel {code}")
        elif events > wanted:
            tally.doubled(f"parcel {code} has {events} events in the ERP, the carrier {wanted}")
        elif wanted and status is None:
            tally.wrong(f"parcel {code} has events but no status")
        else:
            tally.messages += events


CHECKS = {
    "catalog": check_catalog,
    "stock": check_stock,
    "prices": check_prices,
    "orders": check_orders,
    "updates": check_updates,
    "tracking": check_tracking,
    "sac": check_sac,
}
