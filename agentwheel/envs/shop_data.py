"""A generated shop dataset: customers, products, orders and their items, as tables.

Deterministic from its seed, with what analysis questions need to be hard in honest
ways: joins across four tables, dates over three years, order statuses to filter on,
missing values (a customer's segment, an item's discount) and near-duplicate numbers
(revenue with and without discounts). A few thousand rows: generated in well under a
second, so it is rebuilt where it is needed instead of shipped.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


CITIES = _words("Lisbon Oslo Austin Nairobi Osaka Lyon Denver Krakow Porto Seoul")
SEGMENTS = ("consumer", "business", "education")
CATEGORIES = ("kitchen", "garden", "office", "outdoor", "lighting", "bedding")
STATUSES = ("completed", "completed", "completed", "completed", "cancelled", "returned", "pending")
_FIRST = _words(
    "Ada Bruno Chen Dana Elif Farah Gita Hugo Ines Jonas Kai Lena Maya Nils Omar Priya Rosa "
    "Sami Tomas Vera"
)
_LAST = _words(
    "Abara Bauer Castro Dahl Ferreira Garcia Haas Ito Jensen Kim Larsen Moreau Novak Okafor "
    "Rossi Sato Silva Torres Vogel Weber Xu Yilmaz Zeller Park"
)
_ITEMS = _words(
    "Kettle Lamp Chair Rake Tent Desk Pillow Hose Lantern Shelf Blanket Mug Planter Stool"
)
_MATERIALS = ["Oak", "Steel", "Linen", "Bamboo", "Copper", "Wool", "Glass", "Cedar"]
FIRST_DAY = dt.date(2022, 1, 1)
DAYS = 3 * 365


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    rows: Sequence[tuple[object, ...]]


def generate_shop(seed: int = 0, customers: int = 400, orders: int = 2500) -> list[Table]:
    """The four tables of the shop, in load order."""
    rng = random.Random(seed)
    names = rng.sample([f"{f} {last}" for f in _FIRST for last in _LAST], customers)
    customer_rows = [
        (
            i + 1,
            name,
            rng.choice(CITIES),
            None if rng.random() < 0.12 else rng.choice(SEGMENTS),
            (FIRST_DAY + dt.timedelta(days=rng.randrange(DAYS))).isoformat(),
        )
        for i, name in enumerate(names)
    ]
    product_names = rng.sample([f"{m} {item}" for m in _MATERIALS for item in _ITEMS], 60)
    product_rows = [
        (i + 1, name, rng.choice(CATEGORIES), round(rng.uniform(4, 250), 2))
        for i, name in enumerate(product_names)
    ]
    order_rows, item_rows = [], []
    for order_id in range(1, orders + 1):
        day = FIRST_DAY + dt.timedelta(days=rng.randrange(DAYS))
        order_rows.append(
            (order_id, rng.randint(1, customers), day.isoformat(), rng.choice(STATUSES))
        )
        for product in rng.sample(range(1, len(product_rows) + 1), rng.randint(1, 4)):
            discount = rng.choice((None, None, None, 0.05, 0.1, 0.2))
            item_rows.append((order_id, product, rng.randint(1, 5), discount))
    return [
        Table(
            "customers", ("customer_id", "name", "city", "segment", "signup_date"), customer_rows
        ),
        Table("products", ("product_id", "name", "category", "unit_price"), product_rows),
        Table("orders", ("order_id", "customer_id", "order_date", "status"), order_rows),
        Table("order_items", ("order_id", "product_id", "quantity", "discount"), item_rows),
    ]
