"""Ingress range/enum tests skipped where the DBC proves they pass (``_field_within``, ``_field_named``).

The checker drops, at build time, the per-frame range test of a signal whose whole raw
field decodes inside its DBC bounds, and the enum test of a field whose VAL_ table names
every raw value. Held here to the full checker (every test kept) on random payloads of
every message of ``dbc/*.dbc``, of a synthetic DBC with narrow bounds, partial tables, a
negative scale and messages cantools decodes (multiplexed, float; that DBC also with a
codec built with ``compile_now=False``), and of the vendor ARS408 database; and every
proved field is decoded over its raw values (all of them up to 10 bits, random ones above).
"""

from __future__ import annotations

import random
from pathlib import Path

import can
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hal.can import ingress
from hal.can.codec import DbcCodec
from hal.can.ingress import IngressChecker, IngressSpec

ROOT = Path(__file__).resolve().parents[2]
REAL_CAN = ROOT.parent / "shared" / "data" / "real" / "can" / "ars408"

SYNTHETIC = '''VERSION ""

NS_ :

BS_:

BU_: A B

BO_ 200 Narrow: 8 A
 SG_ Full8 : 0|8@1+ (1,0) [0|255] "" B
 SG_ Half8 : 8|8@1+ (1,0) [0|127] "" B
 SG_ S9 : 16|9@1- (0.5,-3) [-131|125] "" B
 SG_ Scaled : 32|10@1+ (0.1,-50) [-50|52.3] "" B
 SG_ Enum2 : 48|2@1+ (1,0) [0|3] "" B
 SG_ Enum3 : 50|3@1+ (1,0) [0|7] "" B
 SG_ Open : 53|11@1+ (1,0) [0|0] "" B

BO_ 201 NegScale: 2 A
 SG_ Neg255 : 0|8@1+ (-1,0) [-255|0] "" B
 SG_ Neg254 : 8|8@1+ (-1,0) [-254|0] "" B

BO_ 202 Muxed: 4 A
 SG_ Mux M : 0|2@1+ (1,0) [0|3] "" B
 SG_ MuxA m0 : 8|8@1+ (1,0) [0|255] "" B
 SG_ MuxB m1 : 8|8@1+ (1,0) [0|127] "" B
 SG_ Plain : 16|8@1+ (1,0) [0|255] "" B
 SG_ Flag : 24|1@1+ (1,0) [0|1] "" B

BO_ 203 Floaty: 8 A
 SG_ F32 : 0|32@1- (1,0) [-1000|1000] "" B
 SG_ Other : 32|8@1+ (1,0) [0|255] "" B
 SG_ Flag2 : 40|1@1+ (1,0) [0|1] "" B

VAL_ 200 Enum2 0 "a" 1 "b" 2 "c" 3 "d" ;
VAL_ 200 Enum3 0 "a" 1 "b" 2 "c" ;
VAL_ 202 Mux 0 "a" 1 "b" 2 "c" 3 "d" ;
VAL_ 202 Flag 0 "off" 1 "on" ;
VAL_ 203 Flag2 0 "off" 1 "on" ;

SIG_VALTYPE_ 203 F32 : 1;
'''


def _codecs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, DbcCodec]]:
    out = [(p.name, DbcCodec([p])) for p in sorted((ROOT / "dbc").glob("*.dbc"))]
    syn = tmp_path_factory.mktemp("dbc") / "narrow.dbc"
    syn.write_text(SYNTHETIC)
    out.append(("narrow.dbc", DbcCodec([syn])))
    # the same DBC compiled lazily: the checker's proofs must not see the codec's stand-ins
    out.append(("narrow.dbc lazy", DbcCodec([syn], compile_now=False)))
    vendor = REAL_CAN / "ARS408_id0.dbc"
    if vendor.is_file():
        out.append((vendor.name, DbcCodec([vendor])))
    return out


def _checker(codec: DbcCodec) -> IngressChecker:
    return IngressChecker(codec, [IngressSpec(name) for name in codec.message_names])


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, DbcCodec, IngressChecker, IngressChecker]]:
    """Per DBC: the codec, the checker as built, and one with every test kept (no proof)."""
    out = []
    for label, codec in _codecs(tmp_path_factory):
        fast = _checker(codec)
        mp = pytest.MonkeyPatch()
        mp.setattr(ingress, "_field_within", lambda *a: False)
        mp.setattr(ingress, "_field_named", lambda *a: False)
        try:
            full = _checker(codec)
        finally:
            mp.undo()
        out.append((label, codec, fast, full))
    return out


def test_the_synthetic_dbc_keeps_what_can_fail(pairs) -> None:
    _, codec, fast, _ = next(p for p in pairs if p[0] == "narrow.dbc")
    plan = fast._plans[codec.frame_id("Narrow")]
    assert [name for name, _, _ in plan.bounds] == ["Half8"]  # "Open" [0|0]: no bound at all
    assert [name for name, _ in plan.choices] == ["Enum3"]  # a 3-bit field, 3 names
    assert plan.bounds_proved == [("Full8", "range"), ("S9", "range"), ("Scaled", "range"),
                                  ("Enum2", "enum"), ("Enum2", "range"), ("Enum3", "range")]


@pytest.mark.parametrize("label", ["narrow.dbc", "narrow.dbc lazy"])
def test_the_synthetic_dbc_proves_only_what_is_provable(pairs, label) -> None:
    """A negative scale is proved like any other; cantools-decoded messages keep every test.

    The multiplexed and float messages are decoded by cantools (``not_compiled``), so
    nothing is proved on them, whether the codec compiled at load or lazily.
    """
    _, codec, fast, full = next(p for p in pairs if p[0] == label)
    assert set(codec.not_compiled) == {"Muxed", "Floaty"}
    neg = fast._plans[codec.frame_id("NegScale")]
    assert neg.bounds_proved == [("Neg255", "range")]
    assert [name for name, _, _ in neg.bounds] == ["Neg254"]
    for name in ("Muxed", "Floaty"):
        fid = codec.frame_id(name)
        plan, full_plan = fast._plans[fid], full._plans[fid]
        assert plan.bounds_proved == [], name
        assert plan.bounds == full_plan.bounds and plan.choices == full_plan.choices, name
    assert [n for n, _, _ in fast._plans[codec.frame_id("Muxed")].bounds] == ["Mux", "MuxA", "MuxB", "Plain", "Flag"]
    assert [n for n, _ in fast._plans[codec.frame_id("Muxed")].choices] == ["Mux", "Flag"]
    assert [n for n, _, _ in fast._plans[codec.frame_id("Floaty")].bounds] == ["F32", "Other", "Flag2"]
    assert [n for n, _ in fast._plans[codec.frame_id("Floaty")].choices] == ["Flag2"]


def test_the_radar_driver_messages_need_no_range_test(pairs) -> None:
    """The messages the ARS408 driver checks (``ars408.dbc``): every DBC bound spans its field."""
    label, codec, fast, _ = next(p for p in pairs if p[0] == "ars408.dbc")
    for name in ("ARS408_ObjStatus", "ARS408_ObjGeneral", "ARS408_ObjQuality", "ARS408_ObjExtended",
                 "ARS408_ObjWarning", "ARS408_RadarState", "ARS408_VersionId"):
        assert fast._plans[codec.frame_id(name)].bounds == [], name


def _raw_values(n: int, signed: bool) -> list[int]:
    lo, hi = (-(1 << (n - 1)), (1 << (n - 1)) - 1) if signed else (0, (1 << n) - 1)
    if n <= 10:
        return list(range(lo, hi + 1))
    r = random.Random(n)
    return [lo, hi, lo + 1, hi - 1] + [r.randint(lo, hi) for _ in range(300)]


def test_every_proved_field_decodes_within_its_test(pairs) -> None:
    for label, codec, fast, full in pairs:
        for fid, plan in fast._plans.items():
            message = plan.entry.message
            full_plan = full._plans[fid]
            bounds = {name: (lo, hi) for name, lo, hi in full_plan.bounds}
            choices = dict(full_plan.choices)
            for name, test in plan.bounds_proved:
                sig = message.get_signal_by_name(name)
                raw = {s.name: 0 for s in message.signals}
                for r in _raw_values(int(sig.length), bool(sig.is_signed)):
                    raw[name] = r
                    dec = codec.decode(can.Message(arbitration_id=fid, data=message.encode(raw, scaling=False, strict=False),
                                                   is_extended_id=plan.entry.is_extended))
                    assert dec is not None
                    if test == "range":
                        lo, hi = bounds[name]
                        assert lo <= dec.signals[name] <= hi, (label, message.name, name, r)
                    else:
                        assert dec.raw[name] in choices[name], (label, message.name, name, r)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_checker_answers_as_the_full_checker(pairs, data) -> None:
    label, codec, fast, full = data.draw(st.sampled_from(pairs))
    fid = data.draw(st.sampled_from(sorted(fast._plans)))
    plan = fast._plans[fid]
    payloads = data.draw(st.lists(st.binary(min_size=plan.entry.length, max_size=plan.entry.length),
                                  min_size=1, max_size=6))
    for k, payload in enumerate(payloads):
        msg = can.Message(arbitration_id=fid, data=payload, is_extended_id=plan.entry.is_extended)
        a = fast.check(msg, 0.01 * k)
        b = full.check(msg, 0.01 * k)
        assert (a is None) == (b is None), (label, plan.entry.name, payload)
        if a is not None and b is not None:
            assert repr(a.signals) == repr(b.signals) and a.raw == b.raw
        assert fast.rejects == full.rejects
