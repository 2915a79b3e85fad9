"""A cart journey sends through the SMTP provider to a real SMTP server (aiosmtpd) on 127.0.0.1,
and stops on purchase."""

from __future__ import annotations

import pytest
import trio
from aiosmtpd.controller import Controller
from harness import journey_path
from local_providers import SmtpInbox, free_port

from actors.messages import Event, Exited, Identified
from engine.delivery.outbox import Outbox
from engine.delivery.providers import SmtpProvider
from engine.runtime.realtime import RealtimeRuntime
from engine.scenario_files import load_scenario


@pytest.mark.slow
def test_cart_emails_go_through_smtp_and_stop_on_purchase():
    inbox = SmtpInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        program = load_scenario(str(journey_path("fast_cart_emails"))).program
        trace: list = []
        runtime: RealtimeRuntime

        def address_of(customer_id: str) -> str | None:
            value = runtime.actors[customer_id].profile.trait("email")
            return value if isinstance(value, str) else None

        smtp = SmtpProvider("127.0.0.1", controller.port, "shop@example.com", address_of)
        outbox = Outbox({"email": smtp})
        runtime = RealtimeRuntime(program, outbox, trace=trace)

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(runtime.run)
                nursery.start_soon(outbox.run)
                for who in ("ada", "bob"):
                    email = {"email": f"{who}@example.com"}
                    await runtime.ingest(who, Identified(email, {"email": True}))
                    await runtime.ingest(who, Event("cart_add", {"value": 40}))
                with trio.fail_after(10):
                    while len(inbox.messages) < 2:  # the first reminder to each
                        await trio.sleep(0.05)
                await runtime.ingest("ada", Event("purchase", {"value": 40}))
                await trio.sleep(3.5)  # past the 2-second wait_for: bob gets the last call
                runtime.close()
                outbox.close()

        trio.run(main)
    finally:
        controller.stop()
    received = [(to[0], body) for _, to, body in inbox.messages]
    to_ada = [body for to, body in received if to == "ada@example.com"]
    to_bob = [body for to, body in received if to == "bob@example.com"]
    assert len(to_ada) == 1 and "Subject: cart_reminder_email" in to_ada[0]
    assert len(to_bob) == 2 and "Subject: cart_last_call" in to_bob[1]
    assert "X-Idempotency-Key: ada:cart:1:email1:1" in to_ada[0] and "Message-ID: <" in to_ada[0]
    assert ("ada", Exited("cart", "purchase")) in [(cid, e) for _, cid, e in trace]
    assert outbox.delivered == 3 and not outbox.dead_letters
