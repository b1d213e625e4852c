"""Residual acceptance of corrupted valve board frames: heartbeats at the driver, commands at the board.

Two measurements, printed as one JSON object:

* ``heartbeat`` -- the emulated board's own ``VB_Heartbeat`` stream (100 ms, uptime
  rising, OPERATIONAL) delivered to a fresh :class:`hal.devices.valve_board.ValveBoardDriver`,
  each frame replaced by a corrupted copy with probability 0.5: how many corrupted
  heartbeats the driver accepted, and how many false "rebooted" detections followed
  (the board never reboots in this run).
* ``command`` -- zero-duty ``VB_Command`` frames from the driver, each corrupted, offered to
  the emulated board right after the previous valid command (so the counter is the one
  it expects): how many it accepted, and how many of those open a valve (a non-zero
  commanded duty). Measured per command check (``--e2e``): ``crc12``, the frame as it is
  (12-bit CRC in bits 52..63, issue 15), and ``crc8``, the frame before issue 15 kept as
  the oracle of the comparison (bits 52..55 zero, CRC-8 SAE J1850 over data ID + bytes
  0..6 in byte 7, checked by a board whose command check is that CRC-8). Both runs see the
  same corruption sequence (same seed).

Corruptions, one per frame, each kind equally likely: 1-8 bit flips, one random byte, 2-4
random bytes, or a fully random payload (the DLC is kept: a wrong DLC is always refused).

Usage::

    .venv/bin/python bench/fuzz_valve.py [--frames 20000] [--seed 0] [--e2e both|crc8|crc12]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import can  # noqa: E402

from firmware_bridge.emulation.valve_board import ValveBoardEmulator  # noqa: E402
from firmware_bridge.protocols import valve_board as vb  # noqa: E402
from hal.can.codec import DbcCodec  # noqa: E402
from hal.devices.valve_board import ValveBoardDriver  # noqa: E402

QIKI_DBC = ROOT / "dbc" / "qiki.dbc"
KINDS = ("bits", "byte", "bytes", "random")


def corrupt(data: bytes | bytearray, rng: random.Random) -> tuple[bytearray, str]:
    """Return a corrupted copy of an 8-byte payload (never equal to it) and the kind used."""
    kind = rng.choice(KINDS)
    while True:
        out = bytearray(data)
        if kind == "bits":
            for bit in rng.sample(range(len(out) * 8), rng.randint(1, 8)):
                out[bit // 8] ^= 1 << (bit % 8)
        elif kind == "byte":
            i = rng.randrange(len(out))
            out[i] = rng.randrange(256)
        elif kind == "bytes":
            for i in rng.sample(range(len(out)), rng.randint(2, 4)):
                out[i] = rng.randrange(256)
        else:
            out = bytearray(rng.randrange(256) for _ in out)
        if out != data:
            return out, kind


def _board_frames(codec: DbcCodec, duration_s: float) -> list[can.Message]:
    """The emulated board's frames for ``duration_s`` of simulated time (10 ms steps)."""
    ch = f"qiki-fuzz-valve-{uuid.uuid4()}"
    board_bus = can.Bus(interface="virtual", channel=ch)
    listener = can.Bus(interface="virtual", channel=ch)
    try:
        emu = ValveBoardEmulator(board_bus, codec)
        frames: list[can.Message] = []
        for k in range(round(duration_s / 0.01) + 1):
            emu.step(k * 0.01)
            while (m := listener.recv(timeout=0.0)) is not None:
                frames.append(m)
        return frames
    finally:
        board_bus.shutdown()
        listener.shutdown()


def fuzz_heartbeats(codec: DbcCodec, n_frames: int, seed: int) -> dict[str, object]:
    """Corrupt half of the board's heartbeats on their way to the driver; count what gets in.

    Parameters
    ----------
    codec : DbcCodec
        ``dbc/qiki.dbc``.
    n_frames : int
        Heartbeats delivered (about half of them corrupted).
    seed : int
        Seed of the corruptions.

    Returns
    -------
    dict
        ``corrupted``, ``accepted`` (corrupted frames the driver applied), ``rate``,
        ``false_reboots`` and the accepted count by corruption kind.
    """
    rng = random.Random(seed)
    hb_id = codec.frame_id(vb.HEARTBEAT)
    frames = [m for m in _board_frames(codec, 0.1 * n_frames + 1.0) if m.arbitration_id == hb_id]
    frames = [m for m in frames if m.timestamp >= 0.6][:n_frames]  # past BOOT
    drv = ValveBoardDriver(codec)
    corrupted = accepted = 0
    by_kind = dict.fromkeys(KINDS, 0)
    for k, m in enumerate(frames):
        msg = can.Message(arbitration_id=m.arbitration_id, data=bytearray(m.data), is_extended_id=False)
        bad = k > 0 and rng.random() < 0.5
        kind = ""
        if bad:
            msg.data, kind = corrupt(m.data, rng)
            corrupted += 1
        ok = drv.on_frame(msg, 0.6 + 0.1 * k)
        if bad and ok:
            accepted += 1
            by_kind[kind] += 1
    return {"frames": len(frames), "corrupted": corrupted, "accepted": accepted,
            "rate": accepted / corrupted if corrupted else 0.0, "false_reboots": drv.reboot_count,
            "accepted_by_kind": by_kind}


class Crc8Board(ValveBoardEmulator):
    """The board before issue 15: its command check is CRC-8 SAE J1850 in byte 7."""

    @staticmethod
    def _checksum_ok(arbitration_id: int, data: bytes | bytearray) -> bool:
        return vb.checksum_ok(arbitration_id, data)


def _as_crc8(msg: can.Message) -> can.Message:
    """The driver's command re-sealed as before issue 15 (bits 52..55 zero, CRC-8 in byte 7)."""
    data = bytearray(msg.data)
    data[6] &= 0x0F
    msg.data = bytearray(vb.seal(msg.arbitration_id, data))
    return msg


E2E_SCHEMES = ("crc8", "crc12")


def fuzz_commands(codec: DbcCodec, n_frames: int, seed: int, e2e: str = "crc12") -> dict[str, object]:
    """Offer corrupted zero-duty commands to the emulated board; count accepted and opening ones.

    Parameters
    ----------
    codec : DbcCodec
        ``dbc/qiki.dbc``.
    n_frames : int
        Corrupted commands offered.
    seed : int
        Seed of the corruptions.
    e2e : {"crc12", "crc8"}, optional
        Command check: the 12-bit CRC of ``dbc/qiki.dbc`` (default) or the CRC-8 of the frame
        before issue 15 (:class:`Crc8Board`, :func:`_as_crc8`).

    Returns
    -------
    dict
        ``corrupted``, ``accepted``, ``rate``, ``opened`` (accepted with a non-zero duty)
        and ``opened_rate``, and the opening count by corruption kind.
    """
    rng = random.Random(seed)
    ch = f"qiki-fuzz-cmd-{uuid.uuid4()}"
    bus = can.Bus(interface="virtual", channel=ch)
    try:
        if e2e not in E2E_SCHEMES:
            raise ValueError(f"e2e must be one of {E2E_SCHEMES}, got {e2e!r}")
        emu = (Crc8Board if e2e == "crc8" else ValveBoardEmulator)(bus, codec)
        seal = _as_crc8 if e2e == "crc8" else (lambda m: m)
        emu.step(0.0)
        emu.step(0.6)  # past BOOT: commands are taken
        drv = ValveBoardDriver(codec)
        zero = [0.0] * drv.n_valves
        accepted = opened = 0
        by_kind = dict.fromkeys(KINDS, 0)
        t = 0.6
        for _ in range(n_frames):
            t += 0.001
            good = seal(drv.command_frame(zero))
            # a corrupted frame that got in may carry this frame's counter: the valid frame
            # resynchronises the board's counter (only the corrupted frames are measured)
            emu._last_cmd_counter = None
            if not emu._accept_command(good, t):  # the valid frame before: counter in step
                raise RuntimeError(f"the board refused a valid command: {emu.rx_rejects}")
            nxt = seal(drv.command_frame(zero))
            data, kind = corrupt(nxt.data, rng)
            bad = can.Message(arbitration_id=nxt.arbitration_id, data=data, is_extended_id=False)
            if emu._accept_command(bad, t):
                accepted += 1
                if any(d > 0.0 for d in emu.duty_commanded):
                    opened += 1
                    by_kind[kind] += 1
        return {"corrupted": n_frames, "accepted": accepted, "rate": accepted / n_frames,
                "opened": opened, "opened_rate": opened / n_frames, "opened_by_kind": by_kind,
                "board_rejects": dict(sorted(emu.rx_rejects.items()))}
    finally:
        bus.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20000, help="heartbeats delivered / commands corrupted")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--e2e", choices=("both",) + E2E_SCHEMES, default="both",
                    help="command check(s) measured: crc8 (before issue 15), crc12 (now), both")
    args = ap.parse_args()
    codec = DbcCodec([QIKI_DBC])
    schemes = E2E_SCHEMES if args.e2e == "both" else (args.e2e,)
    out = {"heartbeat": fuzz_heartbeats(codec, args.frames, args.seed),
           "command": {e2e: fuzz_commands(codec, args.frames, args.seed, e2e) for e2e in schemes}}
    print(json.dumps(out, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
