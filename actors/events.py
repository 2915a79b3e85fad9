"""Incoming event names in the journey vocabulary: a scenario's ``[events]`` table.

A shop's tracking plan names things its own way; journeys speak of ``purchase`` and ``cart_add``.
``[events]`` maps incoming names to the vocabulary (``"Order Completed" = "purchase"``), over
built-in defaults for Segment's e-commerce v2 spec (``SEGMENT_ECOMMERCE``); mapping a default
name to itself turns that default off. The actor translates an event as it arrives, so every
runtime, the write-ahead log's replay included, applies the same mapping.

A translated event without a ``value`` property gets one, so goal revenue and ``event.value``
conditions work on the spec's own fields: ``revenue``, else ``total``, else ``price`` times
``quantity`` (1 when absent).
"""

from __future__ import annotations

from actors.messages import Event, Properties

SEGMENT_ECOMMERCE: dict[str, str] = {
    "Order Completed": "purchase",
    "Product Added": "cart_add",
    "Checkout Started": "checkout_started",
    "Product Viewed": "product_viewed",
    "Cart Viewed": "cart_viewed",
    "Product Removed": "cart_remove",
    "Order Refunded": "refund",
    "Signed Up": "signup",
}


def event_names(declared: dict[str, str]) -> dict[str, str]:
    """The mapping in force: the defaults, then the scenario's own entries; identities dropped."""
    merged = {**SEGMENT_ECOMMERCE, **declared}
    return {name: target for name, target in merged.items() if name != target}


def translate(event: Event, target: str) -> Event:
    """``event`` under its vocabulary name, with a ``value`` derived from the spec's fields."""
    props = event.properties
    if "value" not in props:
        value = _value(props)
        if value is not None:
            props = {**props, "value": value}
    return Event(target, props)


def _value(props: Properties) -> float | None:
    for field in ("revenue", "total"):
        amount = props.get(field)
        if isinstance(amount, (int, float)) and not isinstance(amount, bool):
            return float(amount)
    price, quantity = props.get("price"), props.get("quantity", 1)
    if isinstance(price, (int, float)) and not isinstance(price, bool):
        count = quantity if isinstance(quantity, (int, float)) and not isinstance(quantity, bool) else 1
        return round(float(price) * float(count), 2)
    return None
