"""The radar path's per-tick shortcuts give what the plain computation gives, bit for bit.

* ``RadarSubsystem.threats`` (per-scan float rows, ``relative_geometry``, a Threat only
  for a breach) against the computation it replaced: ``assess_threats`` over the
  confirmed, detected tracks extrapolated to the tick, the significance and Doppler
  filters, the closest-approach record.
* ``_Ars408ReplayFeed`` (the log parsed once) against reading the log lazily per pass:
  the same frames, and the skip counter at every frame; a damaged log raises at the
  same frame.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import can
import numpy as np
import pytest

from controller.components.radar import RadarSubsystem, _doppler_confirms_closing
from controller.config.controller_cfg import RadarCfg
from controller.rig.radar_emulation import _Ars408ReplayFeed
from controller.tracking import Detection, Threat, assess_threats
from hal.can.replay import iter_can_log
from hal.errors import BusConfigError


class _Now(NamedTuple):
    track_id: int
    confirmed: bool
    x_m: float
    y_m: float
    vx_mps: float
    vy_mps: float
    pvv: np.ndarray
    range_rate_mps: float | None


def _reference_threats(radar: RadarSubsystem, now_s: float, closest: dict[str, object]) -> list[Threat]:
    """The keep-out check as it was written before the per-scan rows (main at 709201b)."""
    assert radar._pose is not None
    now_tracks = []
    for t in radar.tracker.confirmed():
        if t.misses:
            continue
        dt = max(0.0, now_s - t.time_s)
        now_tracks.append(_Now(t.track_id, True, t.x_m + t.vx_mps * dt, t.y_m + t.vy_mps * dt,
                               t.vx_mps, t.vy_mps, t.covariance[2:4, 2:4], t.range_rate_mps))
    if not now_tracks:
        return []
    assessed = assess_threats(now_tracks, radar._pose, radar._vel, radar.cfg.keep_out_radius_m,
                              radar.cfg.min_ttc_s, include_all=True)
    by_id = {t.track_id: t for t in now_tracks}

    def significant(a: Threat, trk: _Now) -> bool:
        assert radar._pose is not None
        if a.range_m <= 0.0:
            return True
        ux = (trk.x_m - radar._pose[0]) / a.range_m
        uy = (trk.y_m - radar._pose[1]) / a.range_m
        p = trk.pvv
        var = ux * ux * p[0, 0] + 2.0 * ux * uy * p[0, 1] + uy * uy * p[1, 1]
        return a.closing_speed_mps > 2.0 * math.sqrt(max(var, 0.0))

    assessed = [a for a in assessed if a.inside_keep_out or not a.ttc_breach
                or (significant(a, by_id[a.track_id]) and _doppler_confirms_closing(by_id[a.track_id].range_rate_mps))]
    for a in assessed:
        if a.range_m < closest["range_m"]:  # type: ignore[operator]
            closest.update(range_m=a.range_m, range_track=a.track_id, range_at_s=now_s)
        if a.ttc_s < closest["ttc_s"]:  # type: ignore[operator]
            closest.update(ttc_s=a.ttc_s, ttc_track=a.track_id, ttc_at_s=now_s)
    return [a for a in assessed if a.is_breach]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_threats_equal_the_plain_computation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    radar = RadarSubsystem(RadarCfg(keep_out_radius_m=1.0, min_ttc_s=3.0, confirm_m=2, confirm_n=3), None, None,
                           lambda *a, **k: None)
    # targets closing on the vehicle from a few metres, some fast, one static, plus clutter
    targets = [(rng.uniform(-6, 6), rng.uniform(-6, 6), rng.uniform(-2, 2), rng.uniform(-2, 2)) for _ in range(5)]
    targets.append((2.0, 0.5, 0.0, 0.0))
    ref_closest = {k: v for k, v in asdict(radar.closest).items()}
    n_breaches = n_hits_restored = 0
    for k in range(400):
        now_s = 0.01 * k
        radar._pose = (float(rng.normal(0, 0.1)), float(rng.normal(0, 0.1)), float(rng.uniform(-3, 3)))
        radar._vel = (float(rng.normal(0, 0.3)), float(rng.normal(0, 0.3)))
        if k % 7 == 0:  # a scan
            dets = [Detection(x + vx * now_s + rng.normal(0, 0.05), y + vy * now_s + rng.normal(0, 0.05), "lr",
                              range_rate_mps=None if j % 2 else float(rng.normal(-0.5, 0.5)))
                    for j, (x, y, vx, vy) in enumerate(targets) if rng.random() < 0.9]
            radar.tracker.step(now_s, dets)
        if k == 200:  # the per-scan rows come back with a restore (a replay from a snapshot)
            state = json.loads(json.dumps(radar.snapshot()))
            hits = radar.tracker.confirmed_hits()
            n_hits_restored = len(hits)
            radar = RadarSubsystem(RadarCfg(keep_out_radius_m=1.0, min_ttc_s=3.0, confirm_m=2, confirm_n=3),
                                   None, None, lambda *a, **k: None)
            radar.restore(state)
            assert radar.tracker.confirmed_hits() == hits
            ref_closest = {k: v for k, v in asdict(radar.closest).items()}
            radar._pose = (float(rng.normal(0, 0.1)), float(rng.normal(0, 0.1)), float(rng.uniform(-3, 3)))
            radar._vel = (float(rng.normal(0, 0.3)), float(rng.normal(0, 0.3)))
        want = _reference_threats(radar, now_s, ref_closest)
        got = radar.threats(now_s)
        assert got == want  # frozen dataclasses: field by field, floats to the bit
        assert asdict(radar.closest) == ref_closest
        n_breaches += len(got)
    assert n_breaches > 0  # the scene did breach
    assert n_hits_restored > 0  # the restore had confirmed tracks to bring back


# --------------------------------------------------------------------------- replay feed
def _log(tmp_path: Path, damaged: bool = False) -> Path:
    lines = []
    t = 100.0
    for i in range(40):
        arb = 0x60B if i % 3 else (0x123 if i % 2 else 0x300)  # radar frames between foreign ones
        lines.append(f"({t + 0.01 * i:.6f}) can1 {arb:03X}#{i:02X}00000000000000")
        if damaged and i == 25:
            lines.append("this is not a candump line")
    lines.append(f"({t + 1.0:.6f}) can1 300#0000000000000000")  # skipped after the last kept frame
    p = tmp_path / "radar.log"
    p.write_text("\n".join(lines) + "\n")
    return p


def _lazy_frames(path: Path, ids: frozenset[int], counter: list[int]):
    """The feed's generator before the log was parsed once (main at 709201b)."""
    for m in iter_can_log(path):
        if m.is_error_frame or m.is_remote_frame or m.is_extended_id or (ids and m.arbitration_id not in ids):
            counter[0] += 1
            continue
        yield m


@pytest.mark.parametrize("damaged", [False, True])
def test_replay_feed_pass_equals_lazy_reading(tmp_path: Path, damaged: bool) -> None:
    p = _log(tmp_path, damaged)
    ids = frozenset({0x60B})
    bus = can.Bus(interface="virtual", channel="l-radar-feed")
    try:
        feed = _Ars408ReplayFeed(bus, p, 0.0, ids)
        for _pass in range(2):
            counter = [feed.frames_skipped]
            ref, new = _lazy_frames(p, ids, counter), feed._frames()
            while True:
                try:
                    want = next(ref)
                except BusConfigError as exc:
                    with pytest.raises(BusConfigError) as got_exc:
                        next(new)
                    assert str(got_exc.value) == str(exc)
                    assert feed.frames_skipped == counter[0]
                    break
                except StopIteration:
                    with pytest.raises(StopIteration):
                        next(new)
                    assert feed.frames_skipped == counter[0]
                    break
                got = next(new)
                assert (got.timestamp, got.arbitration_id, bytes(got.data)) == (
                    want.timestamp, want.arbitration_id, bytes(want.data))
                assert feed.frames_skipped == counter[0]
    finally:
        bus.shutdown()


# --------------------------------------------------------------------------- ingress range check
def test_range_reason_equals_the_none_bound_rule() -> None:
    """``not lo <= v <= hi`` with open bounds as -inf/inf is the old rule with None bounds."""
    from types import SimpleNamespace

    from hal.can.ingress import IngressChecker

    def old(v: float, lo: float | None, hi: float | None) -> bool:
        return (lo is not None and v < lo) or (hi is not None and v > hi) or v != v

    values = [-math.inf, -1e300, -2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 2.0, 1e300, math.inf, math.nan, 3, -3, True]
    bounds = [None, -1.0, 0.0, 1.0, -math.inf, math.inf]
    for lo in bounds:
        for hi in bounds:
            plan = SimpleNamespace(bounds=[("s", -math.inf if lo is None else lo, math.inf if hi is None else hi)],
                                   choices=[])
            for v in values:
                got = IngressChecker._range_reason(plan, SimpleNamespace(signals={"s": v}, raw={}))  # type: ignore[arg-type]
                assert (got == "range") == old(v, lo, hi), (v, lo, hi)
            assert IngressChecker._range_reason(plan, SimpleNamespace(signals={}, raw={})) is None  # type: ignore[arg-type]


# --------------------------------------------------------------------------- ARS408 driver poll
def test_new_status_is_the_dataclass_built_by_its_init() -> None:
    """``_new_status`` (the inline ``__init__``) builds what ``Ars408Status(...)`` builds."""
    import dataclasses
    import pickle

    from hal.devices.ars408 import Ars408Status, _new_status

    values = (1.5, True, False, ("stale",), ("motion_input_missing",), None, 0.07, 12, 11, 3, 1,
              {"dlc": 2}, (1, 2, 3), {"implausible_range": 1})
    names = [f.name for f in dataclasses.fields(Ars408Status)]
    assert len(names) == len(values)  # a new field must be added to _new_status too
    a, b = _new_status(*values), Ars408Status(*values)
    assert type(a) is Ars408Status and a == b and repr(a) == repr(b)
    assert list(vars(a).items()) == list(vars(b).items())
    assert pickle.loads(pickle.dumps(a)) == b and dataclasses.replace(a, fresh=False) == dataclasses.replace(b, fresh=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.fresh = False  # type: ignore[misc]


def test_poll_rejects_equal_a_fresh_merge_every_tick() -> None:
    """The merge of the reject counters equals merging their dict copies, order included."""
    import random

    from firmware_bridge.protocols import ars408 as P
    from hal.can.codec import DbcCodec
    from hal.devices.ars408 import Ars408Config, Ars408Driver

    codec = DbcCodec([Path(__file__).resolve().parents[2] / "dbc" / "ars408.dbc"])
    drv = Ars408Driver(codec, Ars408Config())
    rng = random.Random(7)
    ids = [codec.frame_id(n) for n in (P.MSG_OBJ_STATUS, P.MSG_OBJ_GENERAL, P.MSG_OBJ_QUALITY,
                                       P.MSG_OBJ_EXTENDED, P.MSG_RADAR_STATE)] + [0x123, 0x300]
    for k in range(400):
        for _ in range(rng.choice((0, 0, 1, 3))):
            n = rng.choice((8, 8, 8, 7))
            msg = can.Message(arbitration_id=rng.choice(ids), data=bytes(rng.getrandbits(8) for _ in range(n)),
                              is_extended_id=False, is_error_frame=rng.random() < 0.05)
            drv.on_frame(msg, 0.01 * k)
        st = drv.poll(0.01 * k)
        want = dict(drv._rejects)
        for part_ in (drv.ingress.rejects, drv.assembler.rejects):
            for r, v in part_.items():
                want[r] = want.get(r, 0) + v
        assert list(st.rejects.items()) == list(want.items()), k
        st.rejects["scribbled"] = 99  # a reader changing its copy changes no later status


def test_as_pose_of_a_tuple_equals_the_general_path() -> None:
    """The plain-tuple path of ``as_pose`` gives what the sequence path gives (values, types, errors)."""
    from controller.tracking.models import TrackingError, as_pose

    class Seq(tuple):  # type: ignore[type-arg]  # a tuple subclass takes the general path
        pass

    cases = [(1.0, 2.0, 0.5), (1, -2, 3), (np.float32(0.1), np.float64(2.0), np.int64(1)), (0.0, -0.0, -1e-300),
             (math.nan, 0.0, 0.0), (0.0, math.inf, 0.0), (0.0, 0.0, -math.inf)]
    for c in cases:
        try:
            want = as_pose(Seq(c))
        except TrackingError as exc:
            with pytest.raises(TrackingError, match="non-finite"):
                as_pose(c)
            assert "non-finite" in str(exc)
            continue
        got = as_pose(c)
        assert [float(v).hex() for v in (got.x_m, got.y_m, got.yaw_rad)] == \
            [float(v).hex() for v in (want.x_m, want.y_m, want.yaw_rad)]
        assert type(got.x_m) is float and got == want
    with pytest.raises(TrackingError):
        as_pose((1.0, 2.0))
