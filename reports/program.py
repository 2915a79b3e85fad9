"""The whole program's lift, against a global holdout.

With ``global_holdout`` in a scenario's ``[policy]``, that share of customers (a stable draw from
their id: ``Policy.holds_out``) enters no marketing journey. The program's lift is then the
difference in the share of customers who bought, between everyone else and them, with its 95%
interval (``reports.stats.two_proportions``), and revenue per customer beside it.

Customers are counted by the runtime: in a simulation, the whole population; in the real-time
engine, every customer seen (an actor made) less those merged into another (an anonymous
visitor later identified counts once, in the group of the id they merged into).
Purchases come from the actors' ``Bought`` effects, which say whether the buyer is held out.
"""

from __future__ import annotations

from typing import Any

from actors.journey import Policy
from actors.messages import Bought
from reports.journeys import typed_like
from reports.stats import two_proportions

GROUPS = ("program", "held_out")


class ProgramTally:
    """Customers, buyers, purchases and revenue, ``[in the program, held out]``."""

    __slots__ = ("policy", "customers", "buyers", "purchases", "revenue")
    _COUNTS = ("customers", "buyers", "purchases", "revenue")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.customers = [0, 0]
        self.buyers = [0, 0]  # customers with a first purchase in the run
        self.purchases = [0, 0]
        self.revenue = [0.0, 0.0]

    def count_customer(self, customer_id: str) -> None:
        """A customer joins the count (a runtime calls this once per customer)."""
        self.customers[int(self.policy.holds_out(customer_id))] += 1

    def uncount_customer(self, customer_id: str) -> None:
        """A customer counted before merged into another, who is counted already."""
        self.customers[int(self.policy.holds_out(customer_id))] -= 1

    def bought(self, effect: Bought) -> None:
        group = int(effect.held_out)
        self.purchases[group] += 1
        self.revenue[group] += effect.value
        if effect.first:
            self.buyers[group] += 1

    def state(self) -> dict[str, Any]:
        """The counts as plain data (a snapshot's); ``restore`` reads it back."""
        return {name: list(getattr(self, name)) for name in self._COUNTS}

    def restore(self, state: dict[str, Any] | None) -> None:
        for name, values in (state or {}).items():
            if name in self._COUNTS:
                setattr(self, name, typed_like(getattr(self, name), values))

    def to_dict(self) -> dict[str, Any] | None:
        """The program's lift (None without a global holdout)."""
        share = self.policy.global_holdout
        if not share:
            return None
        stats = two_proportions(self.buyers[0], self.customers[0], self.buyers[1], self.customers[1])
        return {
            "global_holdout": share,
            "basis": "customers who bought at least once, out of the customers counted",
            **{group: self._group(g, stats["rate_treated" if g == 0 else "rate_holdout"])
               for g, group in enumerate(GROUPS)},
            "lift": {k: stats[k] for k in ("lift", "lift_ci95_low", "lift_ci95_high", "relative_lift", "z",
                                           "p_value")},
        }

    def _group(self, g: int, rate: float | None) -> dict[str, Any]:
        customers, revenue = self.customers[g], self.revenue[g]
        return {"customers": customers, "buyers": self.buyers[g], "purchases": self.purchases[g],
                "revenue": revenue, "buyer_rate": rate,
                "revenue_per_customer": revenue / customers if customers else None}
