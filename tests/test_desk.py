"""The agent desk in production (``engine.runtime.desk``, ``engine.edge.cases``): escalations become
durable cases that agents list, claim, answer and resolve over HTTP; a resolution resumes the
journey; the KPIs are the simulation's, taken at the times of the agents' actions.

Over real HTTP (hypercorn on 127.0.0.1) on trio's mock clock: the engine's time starts at T0 and
moves only when the test jumps it, so every KPI is known to the second.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx
import msgpack
import pytest
import trio
import trio.testing
from harness import ROOT, T0
from prometheus_client.parser import text_string_to_metric_families
from serving import ADMIN, AGENT, KEY, run_against_server, start, stop

from actors.messages import CaseAction, Escalated, Event, Exited
from engine.runtime.agents import QueueKpis
from engine.runtime.desk import Desk
from engine.scenario_files import load_scenario
from engine.storage.recovery import recover

SUPPORT = load_scenario(str(ROOT / "scenarios" / "support_escalation.toml"))
AGENTS = {"authorization": f"Bearer {AGENT}"}
ADMINS = {"authorization": f"Bearer {ADMIN}"}


def desk_metrics(text: str) -> dict[str, float]:
    """The desk's samples of a /metrics page, by name (the support queue's)."""
    return {sample.name: sample.value
            for family in text_string_to_metric_families(text) if family.name.startswith("touchpoint_desk")
            for sample in family.samples if sample.labels.get("queue") == "support"}


def chat(who: str, frustration: float) -> dict:
    return {"type": "track", "userId": who, "event": "chat_message",
            "properties": {"frustration": frustration, "topic": "billing"}}


def test_a_case_is_listed_with_its_context_claimed_answered_resolved_and_resumes_the_journey(tmp_path):
    clock = trio.testing.MockClock()
    desk = Desk(SUPPORT.simulation.agents)

    async def settle(seconds: float = 0.0) -> None:
        await trio.testing.wait_all_tasks_blocked()
        clock.jump(seconds)
        await trio.testing.wait_all_tasks_blocked()

    async def script(client, runtime):
        async def act(case: int, action: str, headers=AGENTS, **body):
            return await client.post(f"/v1/cases/{case}/{action}", json=body, headers=headers)

        traits = {"email": "ada@example.com", "plan": "pro"}
        identify = {"type": "identify", "userId": "ada", "traits": traits}
        bob = {"type": "identify", "userId": "bob", "traits": {"email": "bob@example.com"}}
        calm = chat("ada", 0.2)  # (no escalation: under the threshold)
        batch = [identify, bob, calm, chat("ada", 0.9)]
        assert (await client.post("/v1/batch", json={"writeKey": KEY, "batch": batch})).status_code == 200
        await settle(10)
        angry = {"writeKey": KEY, **chat("bob", 0.95)}
        assert (await client.post("/v1/track", json=angry)).status_code == 200
        await settle()

        # the queue lists both open cases, oldest first, each with the customer's context
        listed = (await client.get("/v1/desk/support", headers=AGENTS)).json()
        first, second = listed["cases"]
        assert (first["id"], first["customer"], second["customer"]) == (1, "ada", "bob")
        assert (first["journey"], first["step"]) == ("support_escalation", "to_agent")
        assert first["status"] == "waiting"
        assert first["trigger"] == "chat_message"
        assert first["context"] == {"frustration": 0.9, "topic": "billing", "timestamp": T0}
        assert first["opened_at"] == T0 and second["opened_at"] == T0 + 10
        assert [(e["kind"], e["detail"]) for e in first["timeline"]] == [
            ("event", "chat_message"), ("event", "chat_message"), ("escalated", "support")]
        assert first["traits"] == traits
        assert listed["statistics"]["backlog"] == 2 and listed["statistics"]["agents"] == 2

        # not before a claim, not by another agent, not without the token
        assert (await act(1, "reply", agent="ann", text="Hello")).status_code == 409
        assert (await act(1, "claim", headers={}, agent="ann")).status_code == 401
        ingest_key = {"authorization": f"Bearer {KEY}"}
        assert (await client.get("/v1/desk/support", headers=ingest_key)).status_code == 401
        await settle(20)
        claimed = await act(1, "claim", agent="ann")
        assert claimed.status_code == 200 and claimed.json()["agent"] == "ann"
        assert claimed.json()["claimed_at"] == T0 + 30
        taken = await act(1, "claim", agent="ben")
        assert taken.status_code == 409 and taken.json()["code"] == "conflict"
        assert "claimed by ann" in taken.json()["message"]
        assert (await act(1, "reply", agent="ben", text="Hi")).status_code == 409
        await settle(20)
        replied = await act(1, "reply", agent="ann", text="Sorry about that - refunding now.")
        assert replied.status_code == 200 and replied.json()["first_reply_at"] == T0 + 50
        await settle(40)
        assert (await act(1, "reply", agent="ann", text="Done.")).json()["first_reply_at"] == T0 + 50
        await settle(110)
        assert runtime.channel.delivered == []  # (nothing sent yet: the journey waits)
        resolved = await act(1, "resolve", agent="ann", code="refunded")
        assert resolved.status_code == 200
        assert (resolved.json()["status"], resolved.json()["closed_at"]) == ("resolved", T0 + 200)
        assert (await act(1, "resolve", agent="ann", code="again")).status_code == 409
        await settle()

        # the resolution reached ada's actor: the journey resumed (the survey) and converted
        [(_, survey)] = runtime.channel.delivered
        assert (survey.customer, survey.message) == ("ada", "csat_survey")
        profile = (await client.get("/v1/profiles/ada", headers=ADMINS)).json()
        assert profile["timeline"][-2]["detail"] == "ticket_resolved"

        # bob gives up waiting: his case is abandoned, the apology goes out
        await settle(60)
        left = {"writeKey": KEY, "type": "track", "userId": "bob", "event": "chat_abandoned"}
        assert (await client.post("/v1/track", json=left)).status_code == 200
        await settle()
        assert (await client.get("/v1/cases/2", headers=AGENTS)).json()["status"] == "abandoned"
        assert [s.message for _, s in runtime.channel.delivered][-1] == "sorry_we_missed_you"
        assert (await act(2, "claim", agent="ann")).status_code == 409

        # the KPIs, at the times of those actions
        metrics = desk_metrics((await client.get("/metrics", headers=ADMINS)).text)
        assert metrics["touchpoint_desk_cases_total"] == 2
        assert metrics["touchpoint_desk_answered_total"] == 1
        assert metrics["touchpoint_desk_abandoned_total"] == 1
        assert metrics["touchpoint_desk_abandonment_rate"] == 0.5
        assert metrics["touchpoint_desk_wait_mean_seconds"] == 30  # opened T0, claimed T0 + 30
        assert metrics["touchpoint_desk_first_response_mean_seconds"] == 50
        assert metrics["touchpoint_desk_handle_time_mean_seconds"] == 170  # claimed to resolved
        assert metrics["touchpoint_desk_resolution_mean_seconds"] == 200
        assert metrics["touchpoint_desk_service_level"] == 0.5  # ada within 60 s; bob never
        assert metrics["touchpoint_desk_service_level_target_seconds"] == 60
        assert metrics["touchpoint_desk_backlog"] == 0
        journeys = (await client.get("/v1/journeys", headers=ADMINS)).json()
        support = journeys["support_escalation"]
        assert support["treated"]["conversions"] == 1
        assert support["desk"]["support"]["wait_mean_s"] == 30
        assert support["desk"]["support"]["cases"] == 2
        assert (await client.get("/v1/desk", headers=AGENTS)).json()["support"]["resolution_mean_s"] == 200

    runtime = run_against_server(tmp_path, script, clock=clock, program=SUPPORT.program, desk=desk)

    # the log holds it all: a recovery rebuilds the very same desk
    again = Desk(SUPPORT.simulation.agents)
    recovered = recover(tmp_path, SUPPORT.program, fsync="none", desk=again)
    recovered.log.close()
    assert again.state() == runtime.desk.state()


def test_bad_actions_are_refused_naming_the_field(tmp_path):
    async def script(client, runtime):
        assert (await client.post("/v1/track", json={"writeKey": KEY, **chat("ada", 0.9)})).status_code == 200
        for action, body, field, said in (
            ("claim", {}, "body", "missing required field `agent`"),
            ("claim", {"agent": ""}, "agent", "length >= 1"),
            ("claim", {"agent": "ann", "extra": 1}, "body", "unknown field `extra`"),
            ("claim", [1], "body", "Expected `object`"),
            ("reply", {"agent": "ann"}, "text", "needs its text"),
            ("resolve", {"agent": "ann", "code": " "}, "code", "needs its code"),
            ("claim", {"agent": "a" * 201}, "agent", "length <= 200"),
            ("dance", {"agent": "ann"}, "action", "no action 'dance'"),
        ):
            answer = await client.post(f"/v1/cases/1/{action}", json=body, headers=AGENTS)
            assert answer.status_code == 400 and answer.json()["field"] == field, (action, body)
            assert said in answer.json()["message"]
        unknown = await client.post("/v1/cases/9/claim", json={"agent": "ann"}, headers=AGENTS)
        assert unknown.status_code == 404
        assert (await client.get("/v1/desk/nowhere", headers=AGENTS)).status_code == 404
        assert (await client.get("/v1/cases/9", headers=AGENTS)).status_code == 404
        garbage = await client.post("/v1/cases/1/claim", content=b"\xff{", headers=AGENTS)
        assert garbage.status_code == 400
        assert runtime.desk.case(1).status == "waiting"  # none of it changed the case

    run_against_server(tmp_path, script, program=SUPPORT.program, desk=Desk(SUPPORT.simulation.agents))


def escalated(customer: str, journey: str = "j") -> Escalated:
    return Escalated(customer, journey, "support", ((T0, "event", "", "chat_message"),), "to_agent",
                     "chat_message", {"frustration": 0.9})


def test_the_desk_state_round_trips_through_a_snapshot_and_goes_on_the_same():
    desk = Desk(SUPPORT.simulation.agents)
    desk.escalate("ada", escalated("ada"), T0)
    desk.escalate("bob", escalated("bob"), T0 + 5)
    desk.act(CaseAction(1, "claim", "ann"), T0 + 20)
    desk.act(CaseAction(1, "reply", "ann", text="hi"), T0 + 25)
    copy = Desk(SUPPORT.simulation.agents)
    copy.restore(msgpack.unpackb(msgpack.packb(desk.state()), strict_map_key=False))
    assert copy.state() == desk.state()
    for d in (desk, copy):
        told = d.act(CaseAction(1, "resolve", "ann", code="fixed"), T0 + 100)
        assert told == Event("ticket_resolved", {"queue": "support", "case": 1, "code": "fixed"})
        d.exits("bob", [Exited("j", "chat_abandoned")], T0 + 200)
    assert copy.state() == desk.state()
    assert desk.statistics()["support"]["abandoned"] == 1


def test_exits_that_are_not_the_customer_leaving_abandon_nothing():
    desk = Desk()
    desk.escalate("ada", escalated("ada"), T0)
    desk.exits("ada", [Exited("j", "end"), Exited("j", "merged"), Exited("other", "chat_abandoned")], T0 + 1)
    assert desk.case(1).status == "waiting"
    desk.exits("ada", [Exited("j", "chat_abandoned")], T0 + 2)
    assert desk.case(1).status == "abandoned"


def test_the_kpis_are_the_simulations_definitions_and_percentiles_stay_bounded():
    kpis = QueueKpis(60.0, keep=3)
    kpis.cases = 5
    kpis.abandoned = 1
    for wait in (10.0, 70.0, 20.0, 30.0):
        kpis.add("wait", wait)
    stats = kpis.statistics()
    assert stats["answered"] == 4 and stats["wait_mean_s"] == pytest.approx(32.5)  # exact: all four
    assert stats["service_level"] == pytest.approx(3 / 5)  # within 60 s, over every case
    assert stats["abandonment_rate"] == pytest.approx(1 / 5)
    assert stats["wait_p90_s"] == pytest.approx(62.0)  # over the latest three: 20, 30, 70
    assert list(kpis.samples["wait"]) == [70.0, 20.0, 30.0]


@pytest.mark.slow
def test_cases_and_agents_actions_survive_kill_9_from_a_snapshot_and_from_the_log(tmp_path):
    """A real ``touchpoint serve``: cases opened and worked, killed once after a snapshot holds
    them and once when only the log does; the desk comes back as it was, and goes on."""
    def serve() -> tuple[Any, str]:
        return start(tmp_path, "--admin-token", ADMIN, "--agent-token", AGENT, "--snapshot-every", "1",
                     "--fsync", "none", scenario="support_escalation")

    def kill(process) -> None:
        process.kill()  # kill -9
        process.wait()

    def act(url: str, case: int, action: str, **body) -> dict:
        answer = httpx.post(f"{url}/v1/cases/{case}/{action}", json=body, headers=AGENTS, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    process, url = serve()
    try:
        calls = [chat(who, 0.9) for who in ("ada", "bob", "cy")]
        sent = httpx.post(f"{url}/v1/batch", json={"batch": calls}, auth=(KEY, ""), timeout=30)
        assert sent.status_code == 200
        act(url, 1, "claim", agent="ann")
        act(url, 1, "reply", agent="ann", text="Looking into it")
        time.sleep(2.5)  # a periodic snapshot holds these
        kill(process)
        process, url = serve()
        act(url, 2, "claim", agent="ben")  # only the log holds this one
        kill(process)
        process, url = serve()
        cases = httpx.get(f"{url}/v1/desk/support", headers=AGENTS, timeout=30).json()["cases"]
        assert [(c["id"], c["customer"], c["status"], c["agent"]) for c in cases] == [
            (1, "ada", "claimed", "ann"), (2, "bob", "claimed", "ben"), (3, "cy", "waiting", "")]
        assert cases[0]["first_reply_at"] is not None and cases[0]["replies"][0]["text"] == "Looking into it"
        assert act(url, 1, "resolve", agent="ann", code="answered")["status"] == "resolved"
        desk = httpx.get(f"{url}/v1/desk", headers=AGENTS, timeout=30).json()["support"]
        assert (desk["cases"], desk["answered"], desk["backlog"], desk["claimed"]) == (3, 2, 2, 1)
        stats = httpx.get(f"{url}/v1/journeys", headers=ADMINS, timeout=30).json()["support_escalation"]
        assert stats["treated"]["conversions"] == 1  # the resolution reached ada's journey
    finally:
        if process.poll() is None:
            stop(process, signal.SIGTERM)
