"""Benchmark: the compiled DBC codec and the table-driven CRCs against what they replaced.

Prints one JSON object; every figure is a ratio of two timings of one run (``timeit``,
best of 5), so it means something on a shared machine:

* ``DbcCodec.encode`` (compiled pack + ``can.Message``) against cantools
  ``Message.encode(strict=True)`` + ``can.Message`` (what ``encode`` did before), on the
  valve command and the ARS408 object general message;
* ``DbcCodec.decode`` (compiled unpack) against cantools ``decode_message`` and against
  the previous bitstruct path (cantools' compiled formats + a scaling pass);
* the E2E CRC-8 checksum and CRC-16/MODBUS against the previous implementations.

Usage: ``python bench/codec.py``
"""

from __future__ import annotations

import json
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import can  # noqa: E402

from firmware_bridge.protocols import ars408 as ars  # noqa: E402
from firmware_bridge.protocols import valve_board as vb  # noqa: E402
from firmware_bridge.protocols.modbus_profile import crc16_modbus  # noqa: E402
from hal.can.codec import DbcCodec  # noqa: E402


def _best_us(fn, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def _old_crc16_modbus(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _old_decode(msg, data: bytes) -> dict:
    """The decode path before the compiled codec (cantools' bitstruct formats + scaling)."""
    formats = msg._codecs["formats"]
    raw = formats.big_endian.unpack(data)
    little = formats.little_endian.unpack(data[::-1])
    if little:
        raw.update(little)
    phys = {}
    for sig in msg.signals:
        v = raw[sig.name]
        phys[sig.name] = v if sig.scale == 1 and sig.offset == 0 else v * sig.scale + sig.offset
    return phys


def main() -> int:
    out: dict[str, object] = {"bench": "codec", "note": "ratios = new time / old time, same run (< 1: faster)"}
    cases = []
    qiki = DbcCodec([ROOT / "dbc" / "qiki.dbc"])
    cases.append(("vb_command", qiki, vb.COMMAND, vb.command_signals([37] * vb.MAX_VALVES, 5)))
    radar = DbcCodec([ROOT / "dbc" / "ars408.dbc"])
    gen = radar.message(ars.MSG_OBJ_GENERAL)
    sig = {s.name: (s.minimum if s.minimum is not None else 0) for s in gen.signals}
    cases.append(("ars408_obj_general", radar, ars.MSG_OBJ_GENERAL, sig))
    for label, codec, name, signals in cases:
        msg = codec.message(name)
        fid = codec.frame_id(name)

        def old_encode(msg=msg, signals=signals, fid=fid) -> can.Message:
            data = msg.encode(dict(signals), scaling=True, padding=False, strict=True)
            return can.Message(arbitration_id=fid, is_extended_id=False, is_fd=False, dlc=msg.length, data=data)

        frame = codec.encode(name, signals)
        assert bytes(frame.data) == bytes(old_encode().data)
        data = bytes(frame.data)
        n = 5000
        enc_new = _best_us(lambda codec=codec, name=name, signals=signals: codec.encode(name, signals), n)
        enc_old = _best_us(old_encode, n)
        dec_new = _best_us(lambda codec=codec, frame=frame: codec.decode(frame), n)
        dec_cantools = _best_us(lambda msg=msg, data=data: msg.decode(data, decode_choices=False), n)
        dec_old = _best_us(lambda msg=msg, data=data: _old_decode(msg, data), n)
        out[label] = {"encode_us": round(enc_new, 2), "encode_cantools_us": round(enc_old, 2),
                      "encode_ratio": round(enc_new / enc_old, 3),
                      "decode_us": round(dec_new, 2), "decode_cantools_us": round(dec_cantools, 2),
                      "decode_bitstruct_path_us": round(dec_old, 2),
                      "decode_ratio_vs_cantools": round(dec_new / dec_cantools, 3),
                      "decode_ratio_vs_previous": round(dec_new / dec_old, 3)}
    payload = bytes(range(1, 9))
    e2e_new = _best_us(lambda: vb.e2e_checksum(0x101, payload), 20000)
    e2e_old = _best_us(lambda: vb.crc8_sae_j1850(bytes((0x01,)) + bytes(payload[:7])), 20000)
    rtu = bytes(range(1, 41))
    m_new = _best_us(lambda: crc16_modbus(rtu), 2000)
    m_old = _best_us(lambda: _old_crc16_modbus(rtu), 2000)
    out["crc8_e2e"] = {"us": round(e2e_new, 3), "previous_us": round(e2e_old, 3), "ratio": round(e2e_new / e2e_old, 3)}
    out["crc16_modbus_40B"] = {"us": round(m_new, 3), "previous_us": round(m_old, 3), "ratio": round(m_new / m_old, 3)}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
