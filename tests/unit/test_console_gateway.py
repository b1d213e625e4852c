"""The gateway over a real WebSocket (Starlette TestClient): fuzzed input never reaches the desk, tokens, origins."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from controller.config.console import ConsoleCfg
from controller.console.desk import ConsoleDesk, InboundQueue
from controller.console.gateway import Gateway, is_loopback

TOKEN = "s3cret-token"


def _gateway(host: str = "127.0.0.1", token: str | None = None, **cfg: object) -> Gateway:
    desk = ConsoleDesk(ConsoleCfg(**cfg), 100.0, InboundQueue(64))  # type: ignore[arg-type]
    return Gateway(desk, host, 8765, token, "test-rig")


@pytest.fixture(scope="module")
def served() -> tuple[Gateway, TestClient]:
    gw = _gateway()
    with TestClient(gw.app) as client:
        yield gw, client


_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                            lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                            max_leaves=12)
_near_valid = st.fixed_dictionaries({"type": st.sampled_from(["command", "heartbeat", "hello", "telemetry", "x"]),
                                     "v": st.sampled_from([0, 1, 2, "1", None])},
                                    optional={"id": _json_values, "name": st.sampled_from(["arm", "estop", "fly", ""]),
                                              "ttl_ms": _json_values, "confirm": _json_values,
                                              "seq": _json_values, "client": _json_values, "junk": _json_values})


def _next(ws: object) -> dict[str, object]:
    """The next message that is not telemetry or the gateway's heartbeat."""
    while True:
        m = ws.receive_json()  # type: ignore[attr-defined]
        if m["type"] not in ("telemetry", "heartbeat"):
            return m


def _ours(caplog: pytest.LogCaptureFixture) -> str:
    """What the gateway's and uvicorn's loggers wrote (not the test client's own httpx log)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith(("controller", "uvicorn")))


def _is_valid(text: str) -> bool:
    from controller.console.protocol import parse_client_message
    try:
        parse_client_message(text)
    except ValueError:
        return False
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=200), _json_values.map(json.dumps), _near_valid.map(json.dumps),
                 st.binary(max_size=64)))
def test_fuzzed_messages_never_reach_the_desk_and_the_gateway_keeps_serving(served: tuple[Gateway, TestClient],
                                                                           msg: str | bytes) -> None:
    gw, client = served
    if isinstance(msg, str) and _is_valid(msg):
        return  # a valid message is not malformed (hypothesis rarely builds one)
    gw.desk.inbound.drain()
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "welcome"
        assert ws.receive_json()["type"] == "control"
        if isinstance(msg, bytes):
            ws.send_bytes(msg)
        else:
            ws.send_text(msg)
        err = _next(ws)
        assert err["type"] == "error" and err["error"] in ("malformed", "too_long"), err
        # still serving on the same connection: a valid heartbeat goes through
        ws.send_text(json.dumps({"type": "heartbeat", "v": 1, "seq": 1}))
        ws.send_text("not json")
        assert _next(ws)["type"] == "error"
    items = gw.desk.inbound.drain()
    # only the valid heartbeat and the disconnect reached the queue: no command
    assert [i.kind for i in items] == ["heartbeat", "disconnect"], items


def test_oversized_message_is_refused(served: tuple[Gateway, TestClient]) -> None:
    gw, client = served
    gw.desk.inbound.drain()
    with client.websocket_connect("/ws") as ws:
        ws.receive_json(), ws.receive_json()
        ws.send_text(json.dumps({"type": "hello", "v": 1, "client": "x" * 5000}))
        assert ws.receive_json()["error"] == "too_long"
    assert [i.kind for i in gw.desk.inbound.drain()] == ["disconnect"]


def test_schemas_served(served: tuple[Gateway, TestClient]) -> None:
    _gw, client = served
    r = client.get("/schemas")
    assert r.status_code == 200 and "client.command" in r.json()


def test_non_loopback_needs_a_token() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    with pytest.raises(ValueError, match="token"):
        _gateway("0.0.0.0", None)


@pytest.mark.parametrize("query", ["", "?token=wrong", f"?token={TOKEN}x"])
def test_missing_or_wrong_token_refused(query: str, caplog: pytest.LogCaptureFixture) -> None:
    gw = _gateway("0.0.0.0", TOKEN)
    with TestClient(gw.app) as client:
        with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect(f"/ws{query}") as ws:
            ws.receive_json()
        assert exc.value.code == 4401
        assert client.get(f"/schemas{query}").status_code == 401
    assert gw.desk.inbound.drain() == []
    assert TOKEN not in _ours(caplog)


def test_right_token_accepted_by_query_or_header_and_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    gw = _gateway("0.0.0.0", TOKEN)
    with TestClient(gw.app) as client:
        with client.websocket_connect(f"/ws?token={TOKEN}") as ws:
            assert ws.receive_json()["role"] == "operator"
        with client.websocket_connect("/ws", headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            assert ws.receive_json()["role"] == "operator"
        assert client.get(f"/schemas?token={TOKEN}").status_code == 200
    assert TOKEN not in _ours(caplog)


def test_observers_without_token_only_when_the_rig_says_so() -> None:
    gw = _gateway("0.0.0.0", TOKEN, observers_without_token=True)
    with TestClient(gw.app) as client, client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["role"] == "observer"
    gw.desk.inbound.drain()
    with TestClient(gw.app) as client:
        with pytest.raises(WebSocketDisconnect) as exc, client.websocket_connect("/ws?token=bad") as ws:
            ws.receive_json()
        assert exc.value.code == 4401  # a wrong token is not an observer


def test_foreign_origin_refused() -> None:
    gw = _gateway()
    with TestClient(gw.app) as client:
        with pytest.raises(WebSocketDisconnect) as exc, \
                client.websocket_connect("/ws", headers={"Origin": "http://evil.example"}) as ws:
            ws.receive_json()
        assert exc.value.code == 4403
        with client.websocket_connect("/ws", headers={"Origin": "http://127.0.0.1:8765"}) as ws:
            assert ws.receive_json()["type"] == "welcome"
