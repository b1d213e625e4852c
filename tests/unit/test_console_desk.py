"""The console desk: control lock, TTL, hold-to-confirm, link loss, the queue, the protocol (issue 14)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from controller.config.console import ConsoleCfg, parse_listen
from controller.console.desk import CONSOLE_TOPIC, ConsoleDesk, Inbound, InboundQueue, Outcome
from controller.console.protocol import MAX_MESSAGE_BYTES, Command, json_schemas, parse_client_message


class FakeVehicle:
    """What the desk touches of a Vehicle: state, command(), record, transitions."""

    def __init__(self, state: str = "idle") -> None:
        self.state = state
        self.commands: list[str] = []
        self.events: list[tuple[int, float, str, dict[str, Any]]] = []
        self.transitions: list[list[Any]] = []
        self.shutdown_reason: str | None = None
        self.last_refusal: tuple[str, str] | None = None

    def command(self, event: str) -> None:
        self.commands.append(event)

    def record(self, tick: int, t: float, kind: str, **fields: Any) -> None:
        self.events.append((tick, t, kind, fields))


class Harness:
    def __init__(self, **cfg: Any) -> None:
        self.clock_s = 100.0
        self.q = InboundQueue(8)
        self.out: list[Outcome] = []
        self.put: list[tuple[str, dict[str, Any]]] = []
        self.desk = ConsoleDesk(ConsoleCfg(**cfg), 100.0, self.q, notify=self.out.extend,
                                put=lambda t, r: self.put.append((t, dict(r))), clock=lambda: self.clock_s)
        self.v = FakeVehicle()
        self.tick = 0

    def send(self, kind: str, session: str = "c1", **kw: Any) -> None:
        assert self.q.put(Inbound(kind, session, client="op", received_s=self.clock_s, **kw))

    def cmd(self, name: str, session: str = "c1", cid: str = "x", **kw: Any) -> None:
        self.send("command", session, id=cid, name=name, **kw)

    def run_tick(self, dt_s: float = 0.01, transition: str | None = None) -> list[Outcome]:
        self.out.clear()
        now = self.tick * 0.01
        self.desk.begin_tick(self.v, self.tick, now, self.desk.drained_items(self.tick))  # type: ignore[arg-type]
        if transition is not None:
            self.v.transitions.append([now, self.v.state, transition, "x"])
        self.desk.end_tick(self.v, self.tick, now)  # type: ignore[arg-type]
        self.tick += 1
        self.clock_s += dt_s
        return list(self.out)

    def reply(self, outs: list[Outcome]) -> dict[str, Any]:
        return dict(next(o.fields for o in outs if o.kind == "reply"))


def test_lock_request_grant_release_and_other_console_refused() -> None:
    h = Harness()
    h.cmd("request_control")
    r = h.reply(h.run_tick())
    assert (r["status"], r["code"]) == ("accepted", 231)
    assert h.desk.lock.holder == "op@c1"
    h.cmd("request_control", session="c2")
    r = h.reply(h.run_tick())
    assert (r["status"], r["refusal"], r["code"]) == ("refused", "held_by_other", 245)
    h.cmd("arm", session="c2", hold_ms=2000)
    r = h.reply(h.run_tick())
    assert (r["refusal"], r["code"]) == ("no_control", 242) and "held by op@c1" in r["reason"]
    assert h.v.commands == []  # nothing reached the arbiter
    h.cmd("release_control", session="c2")
    assert h.reply(h.run_tick())["refusal"] == "not_holder"
    h.cmd("release_control")
    assert h.reply(h.run_tick())["code"] == 232 and h.desk.lock.holder is None
    actions = [f["action"] for _t, _s, k, f in h.v.events if k == "console"]
    assert actions == ["control_granted", "refused_held_by_other", "refused_no_control", "refused_not_holder",
                       "control_released"]


def test_takeover_needs_a_repeat_after_the_timeout() -> None:
    h = Harness(takeover_timeout_s=0.5)
    h.cmd("request_control")
    h.run_tick()
    for _ in range(10):  # keep the holder alive
        h.send("heartbeat")
        h.run_tick()
    h.cmd("take_control", session="c2")
    assert h.reply(h.run_tick())["refusal"] == "takeover_too_early"
    for _ in range(60):
        h.send("heartbeat")
        h.run_tick()
    h.send("heartbeat")
    h.cmd("take_control", session="c2")
    outs = h.run_tick()
    assert h.reply(outs)["code"] == 233
    assert h.desk.lock.holder_session == "c2"
    assert any(o.kind == "control" and o.fields["change"] == "taken_over" for o in outs)


def test_arm_needs_hold_and_the_lock_estop_needs_neither() -> None:
    h = Harness()
    h.cmd("estop", session="c9")
    h.run_tick(transition="estop")
    assert h.v.commands == ["estop"]
    h.cmd("request_control")
    h.run_tick()
    h.cmd("arm", hold_ms=999)
    r = h.reply(h.run_tick())
    assert (r["refusal"], r["code"]) == ("no_confirm", 243) and "999" in r["reason"]
    h.send("heartbeat")
    h.cmd("arm", hold_ms=1000)
    r = h.reply(h.run_tick(transition="arm"))
    assert (r["status"], r["code"]) == ("accepted", 201)
    assert h.v.commands == ["estop", "arm"]


def test_fsm_refusal_carries_the_guard_reason() -> None:
    h = Harness()
    h.cmd("request_control")
    h.run_tick()
    h.send("heartbeat")
    h.cmd("reset")
    h.v.state = "estop"
    h.out.clear()
    # the vehicle's event sink tells the desk of the refusal during the tick
    h.desk.begin_tick(h.v, 5, 0.05, h.desk.drained_items(5))  # type: ignore[arg-type]
    h.desk.on_event("refused", {"event": "reset", "reason": "E-stop is still pressed"})
    h.desk.end_tick(h.v, 5, 0.05)  # type: ignore[arg-type]
    r = h.reply(h.out)
    assert (r["status"], r["refusal"], r["code"], r["reason"]) == ("refused", "fsm_refused", 213,
                                                                   "E-stop is still pressed")


def test_stale_command_refused_and_not_passed_on() -> None:
    h = Harness()
    h.cmd("request_control")
    h.run_tick()
    h.send("heartbeat")
    h.cmd("disarm", ttl_s=0.05)
    h.clock_s += 0.2  # the tick comes 200 ms after the gateway received it
    r = h.reply(h.run_tick())
    assert (r["refusal"], r["code"]) == ("stale", 241)
    assert h.v.commands == []


def test_lost_heartbeat_while_armed_runs_the_link_loss_action_within_the_timeout() -> None:
    h = Harness(heartbeat_timeout_s=0.3)
    h.cmd("request_control")
    h.run_tick()
    h.v.state = "active"
    last_hb_tick = h.tick
    h.send("heartbeat")
    h.run_tick()
    while not h.v.commands:
        h.run_tick()
    assert h.v.commands == ["disarm"]
    assert (h.tick - 1 - last_hb_tick) * 0.01 <= 0.31
    ev = [f for _t, _s, k, f in h.v.events if k == "console" and f["action"] == "link_lost"]
    assert ev and ev[0]["link_loss_action"] == "disarm"
    assert h.desk.lock.holder is None


def test_link_loss_action_estop_and_idle_loss_only_drops_the_lock() -> None:
    h = Harness(link_loss_action="estop")
    h.cmd("request_control")
    h.run_tick()
    for _ in range(40):
        h.run_tick()
    assert h.v.commands == [] and h.desk.lock.holder is None  # idle: nothing to do but drop the lock
    h.cmd("request_control")
    h.run_tick()
    h.v.state = "armed"
    for _ in range(40):
        h.run_tick()
    assert h.v.commands == ["estop"]


def test_holder_disconnect_while_armed_is_link_loss() -> None:
    h = Harness()
    h.cmd("request_control")
    h.run_tick()
    h.v.state = "armed"
    h.send("disconnect")
    h.run_tick()
    assert h.v.commands == ["disarm"]


def test_observer_is_read_only_but_may_estop() -> None:
    h = Harness()
    h.send("command", "c3", id="a", name="request_control", observer=True)
    assert h.reply(h.run_tick())["refusal"] == "read_only"
    h.send("command", "c3", id="b", name="estop", observer=True)
    h.run_tick(transition="estop")
    assert h.v.commands == ["estop"]


def test_inputs_are_recorded_at_ingress_and_replay_to_the_same_items() -> None:
    h = Harness()
    h.cmd("request_control")
    h.send("heartbeat")
    h.run_tick()
    recs = [r for t, r in h.put if t == CONSOLE_TOPIC]
    assert [(r["tick"], r["call"], r["kind"]) for r in recs] == [(0, 0, "command"), (0, 1, "heartbeat")]
    by_key = {(int(r["tick"]), int(r["call"])): r for r in recs}
    items = ConsoleDesk.replayed_items(lambda topic, k, c: by_key.get((k, c)), 0)
    assert [(i.kind, i.name, i.session) for i, _age in items] == [("command", "request_control", "c1"),
                                                                  ("heartbeat", "", "c1")]
    assert ConsoleDesk.replayed_items(lambda topic, k, c: None, 1) == []


def test_queue_is_bounded() -> None:
    q = InboundQueue(4)
    assert all(q.put(Inbound("heartbeat", "c1")) for _ in range(4))
    assert not q.put(Inbound("heartbeat", "c1"))
    assert len(q.drain(limit=3)) == 3 and len(q.drain()) == 1 and q.drain() == []


@pytest.mark.parametrize("raw", [
    "", "null", "[]", "{}", '{"type": "command"}', '{"type": "command", "v": 2, "id": "a", "name": "arm"}',
    '{"type": "command", "v": 1, "id": "a", "name": "launch"}',
    '{"type": "command", "v": 1, "id": "a", "name": "arm", "ttl_ms": 0}',
    '{"type": "command", "v": 1, "id": "a", "name": "arm", "extra": 1}',
    '{"type": "command", "v": 1, "id": "", "name": "arm"}',
    '{"type": "command", "v": 1, "id": "a", "name": "arm", "confirm": {"hold_ms": -1}}',
    '{"type": "heartbeat", "v": 1, "seq": -1}', '{"type": "telemetry", "v": 1}',
])
def test_protocol_rejects_malformed(raw: str) -> None:
    with pytest.raises((ValidationError, ValueError)):
        parse_client_message(raw)


def test_protocol_accepts_and_bounds() -> None:
    m = parse_client_message('{"type": "command", "v": 1, "id": "k1", "name": "arm", "confirm": {"hold_ms": 1200}}')
    assert isinstance(m, Command) and m.confirm is not None and m.confirm.hold_ms == 1200 and m.ttl_ms == 500
    with pytest.raises(ValueError, match="longer"):
        parse_client_message(json.dumps({"type": "hello", "v": 1, "client": "x" * MAX_MESSAGE_BYTES}))


def test_schemas_on_disk_match_the_models(repo_root: Any) -> None:
    folder = repo_root / "docs" / "console-schemas"
    for stem, schema in json_schemas().items():
        on_disk = json.loads((folder / f"{stem}.json").read_text())
        assert on_disk == json.loads(json.dumps(schema)), f"regenerate {stem}: python -m controller.console.protocol"


def test_console_cfg_and_listen() -> None:
    assert parse_listen("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("8765", "host:", "h:99999", "a b:1"):
        with pytest.raises(ValueError):
            parse_listen(bad)
    with pytest.raises(ValidationError):
        ConsoleCfg(heartbeat_timeout_s=0.6)  # could not act within 0.5 s
    with pytest.raises(ValidationError):
        ConsoleCfg(allowed_origins=["http://x/path"])
