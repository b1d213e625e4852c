"""TI captures from other SDKs/platforms, and radar replays that must be refused or filtered.

Packets are crafted here: an SDK 2.1 xWR14xx packet in its own layout (36-byte header
without ``subFrameNumber``; detected-objects TLV = 4-byte descriptor + 12-byte Q-format
points; mmWave SDK 2.x ``mmw_output.h``), and SDK 3.x headers with foreign versions or
platforms.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import can
import pytest

from controller.cli import main
from controller.errors import ConfigError
from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols.ars408 import status_signals
from firmware_bridge.protocols.iwr6843 import (
    MAGIC_WORD,
    Iwr6843Parser,
    RejectReason,
    decode_packet,
    encode_packet,
    header_label,
    platform_name,
)
from hal.can.codec import DbcCodec
from hal.devices.iwr6843 import Iwr6843Driver

ROOT = Path(__file__).resolve().parents[2]


def sdk2_xwr14xx_packet(frame_number: int, n_obj: int = 2) -> bytes:
    """One SDK 2.1 xWR14xx packet: 36-byte header, one type-1 TLV, padded to 32 bytes."""
    points = b"".join(struct.pack("<HhHhhh", 10 + i, 0, 500, 100 * i, 1000, 0) for i in range(n_obj))
    tlv_payload = struct.pack("<HH", n_obj, 9) + points
    body = struct.pack("<II", 1, len(tlv_payload)) + tlv_payload
    total = 36 + len(body)
    total += (-total) % 32
    header = MAGIC_WORD + struct.pack("<7I", 0x02010004, total, 0xA1443, frame_number, 1234, n_obj, 1)
    pkt = header + body
    return pkt + bytes(total - len(pkt))


def test_names():
    assert platform_name(0xA1443) == "xWR14xx" and platform_name(0xA6843) == "xWR68xx"
    assert platform_name(0x12345) == "platform 0x12345"
    assert header_label(0x02010004, 0xA1443) == "SDK 2.1 / xWR14xx"


def test_sdk2_packets_are_rejected_by_name():
    parser = Iwr6843Parser()
    data = b"".join(sdk2_xwr14xx_packet(i) for i in range(50))
    assert parser.feed(data) == []
    assert parser.rejects == {RejectReason.UNSUPPORTED_SDK: 50}
    assert parser.unsupported == {"SDK 2.1 / xWR14xx": 50}
    assert parser.rejection_text() == "unsupported SDK 2.1 / xWR14xx"
    with pytest.raises(ProtocolError, match="unsupported_sdk: SDK 2.1 / xWR14xx"):
        decode_packet(sdk2_xwr14xx_packet(1))


def test_sdk3_header_from_xwr14xx_is_an_unsupported_platform():
    pkt = encode_packet(3, [], platform=0xA1443)
    parser = Iwr6843Parser()
    assert parser.feed(pkt) == []
    assert parser.rejects == {RejectReason.UNSUPPORTED_PLATFORM: 1}
    assert parser.rejection_text() == "unsupported SDK 3.3 / xWR14xx"


def test_good_packets_count_their_headers():
    parser = Iwr6843Parser()
    data = b"".join(encode_packet(i, []) for i in range(3)) + sdk2_xwr14xx_packet(9)
    assert len(parser.feed(data)) == 3
    assert parser.headers == {"SDK 3.3 / xWR68xx": 3, "SDK 2.1 / xWR14xx": 1}
    assert parser.rejection_text() == "unsupported SDK 2.1 / xWR14xx"  # every REJECTED one


def test_decode_report_names_the_sdk_and_exits_1(tmp_path, capsys):
    p = tmp_path / "xwr14xx.dat"
    p.write_bytes(b"".join(sdk2_xwr14xx_packet(i) for i in range(20)))
    assert main(["radar", "decode", str(p), "--format", "iwr6843", "--json"]) == 1
    r = json.loads(capsys.readouterr().out)
    assert r["frames"] == 0 and not r["healthy"]
    assert r["problems"] == ["receiving packets, all rejected: unsupported SDK 2.1 / xWR14xx"]
    assert r["headers"] == {"SDK 2.1 / xWR14xx": 20} and r["rejected"] == {"unsupported_sdk": 20}
    assert main(["radar", "decode", str(p), "--format", "iwr6843"]) == 1
    out = capsys.readouterr().out
    assert "receiving packets, all rejected: unsupported SDK 2.1 / xWR14xx" in out
    assert "SDK None" not in out and "point_count_mismatch" not in out


class _Link:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, n: int) -> bytes:
        out, self.data = self.data[:n], self.data[n:]
        return out


def test_driver_waiting_text_for_post():
    drv = Iwr6843Driver(_Link(b"".join(sdk2_xwr14xx_packet(i) for i in range(5))))
    assert drv.waiting_text() == "no frame yet"
    drv.poll(0.0)
    assert drv.waiting_text() == "receiving packets, all rejected: unsupported SDK 2.1 / xWR14xx"
    assert drv.stats()["unsupported"] == {"SDK 2.1 / xWR14xx": 5}


# --------------------------------------------------------------------------- replays
def test_sr_replay_without_a_valid_packet_is_refused(tmp_path):
    from controller.rig.radar import _check_sr_replay

    p = tmp_path / "x.dat"
    with pytest.raises(ConfigError) as exc:
        _check_sr_replay(p, b"".join(sdk2_xwr14xx_packet(i) for i in range(3)))
    msg = str(exc.value)
    assert "--sr-replay" in msg and "unsupported SDK 2.1 / xWR14xx" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="no IWR6843 packet start"):
        _check_sr_replay(p, bytes(range(256)) * 4)
    _check_sr_replay(p, encode_packet(1, []))  # one valid packet: accepted


def _qiki_run_log(tmp_path: Path, *, with_radar: bool) -> Path:
    """A QIKI-like whole-bus log: valve commands, heartbeats, ego motion, an error frame,
    and (optionally) one radar object-list cycle."""
    qiki = DbcCodec([ROOT / "dbc" / "qiki.dbc"])
    ars = DbcCodec([ROOT / "dbc" / "ars408.dbc"])
    frames = []
    for msg in qiki.message_names:
        m = qiki.message(msg)
        frames.append(can.Message(arbitration_id=m.frame_id, is_extended_id=False, data=bytes(m.length)))
    frames.append(ars.encode("ARS408_SpeedInformation", {"speed_direction": 0, "speed_mps": 0.0}))
    frames.append(can.Message(arbitration_id=0x4, is_error_frame=True, data=bytes(8)))
    if with_radar:
        frames.append(ars.encode("ARS408_ObjStatus", status_signals(0, 1)))
    p = tmp_path / "run.log"
    with can.Logger(str(p)) as w:
        for i, f in enumerate(frames):
            f.timestamp = 1.0 + 0.01 * i
            f.channel = "qiki-can0"
            w.on_message_received(f)
    return p


def test_lr_replay_injects_only_the_radar_ids(tmp_path):
    from controller.rig.radar import _Ars408ReplayFeed, _check_lr_replay

    p = _qiki_run_log(tmp_path, with_radar=True)
    rx = frozenset({0x201, 0x60A, 0x60B, 0x60C, 0x60D, 0x60E, 0x700})
    _check_lr_replay(p, rx, 0)
    bus = can.Bus(interface="virtual", channel="tp-lr-replay")
    rx_bus = can.Bus(interface="virtual", channel="tp-lr-replay")
    try:
        feed = _Ars408ReplayFeed(bus, p, 0.0, rx)
        feed.emu.step(10.0)
        got = []
        while (m := rx_bus.recv(timeout=0.0)) is not None:
            got.append(m.arbitration_id)
        assert got == [0x60A]
        assert feed.frames_skipped == 5  # 3 valve-board messages, 0x300, the error frame
    finally:
        bus.shutdown()
        rx_bus.shutdown()


def test_lr_replay_without_radar_frames_is_refused(tmp_path):
    from controller.rig.radar import _check_lr_replay

    p = _qiki_run_log(tmp_path, with_radar=False)
    with pytest.raises(ConfigError) as exc:
        _check_lr_replay(p, frozenset({0x201, 0x60A}), 0)
    assert "--lr-replay" in str(exc.value) and "no frame of the ARS408 with sensor ID 0" in str(exc.value)
