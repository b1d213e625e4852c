"""Real-time knobs (issue 10, point 9): the config section, the report and restore().

The knobs really touch this process (we run as root here and in CI); each test undoes
what it applied with ``restore()`` and checks that it did. A knob the OS refuses skips the
test that needs it, naming the reason.
"""

from __future__ import annotations

import errno
import gc
import json
import os
from pathlib import Path

import pytest
import yaml

from controller.config import RealtimeKnobsCfg, load_rig
from controller.errors import ConfigError
from controller.rt_knobs import (
    KNOBS,
    _cpu_ranges,
    _parse_cpulist,
    apply_realtime_knobs,
    current_state,
    errno_text,
    online_cpus,
    skipped_report,
)

ROOT = Path(__file__).resolve().parents[2]


def _vmlck_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmLck:"):
            return int(line.split()[1])
    raise AssertionError("no VmLck in /proc/self/status")


# --------------------------------------------------------------------------- config


def test_nothing_is_asked_by_default():
    cfg = RealtimeKnobsCfg()
    assert (cfg.sched_fifo_priority, cfg.cpu_affinity, cfg.mlockall, cfg.gc_freeze) == (None, None, False, False)


@pytest.mark.parametrize("bad", [
    {"sched_fifo_priority": 0},
    {"sched_fifo_priority": 100},
    {"sched_fifo_priority": 50.0},
    {"sched_fifo_priority": "50"},
    {"cpu_affinity": []},
    {"cpu_affinity": [-1]},
    {"cpu_affinity": [4096]},
    {"cpu_affinity": [1, 1]},
    {"cpu_affinity": list(range(65))},
    {"mlockall": "yes"},
    {"gc_freeze": 1},
    {"sched_fifo": 50},
])
def test_out_of_bounds_knobs_are_refused_by_the_schema(bad):
    with pytest.raises(ValueError):
        RealtimeKnobsCfg(**bad)


def test_rig_file_carries_the_knobs_and_refuses_a_bad_one(tmp_path):
    data = yaml.safe_load((ROOT / "rigs/virtual.yaml").read_text())
    data["controller"]["realtime"] = {"sched_fifo_priority": 50, "cpu_affinity": [0], "gc_freeze": True}
    (tmp_path / "rigs").mkdir()
    p = tmp_path / "rigs" / "rt.yaml"
    p.write_text(yaml.safe_dump(data))
    rig, _ = load_rig(p)
    assert rig.controller.realtime == RealtimeKnobsCfg(sched_fifo_priority=50, cpu_affinity=[0], gc_freeze=True)
    data["controller"]["realtime"]["sched_fifo_priority"] = 120
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="controller.realtime.sched_fifo_priority"):
        load_rig(p)


# --------------------------------------------------------------------------- helpers


def test_errno_text_names_the_error():
    assert errno_text(errno.EPERM) == "EPERM: Operation not permitted"
    assert errno_text(None) == "unknown error"


@pytest.mark.parametrize("cpus, text", [({0, 1}, "0-1"), ({0, 1, 2, 5}, "0-2,5"), ({3}, "3"), (set(), "none")])
def test_cpu_ranges_round_trip(cpus, text):
    assert _cpu_ranges(cpus) == text
    assert _parse_cpulist(text if cpus else "") == cpus


# --------------------------------------------------------------------------- report


def test_nothing_asked_reports_every_knob_not_asked():
    rep = apply_realtime_knobs(RealtimeKnobsCfg())
    d = rep.as_dict()
    assert json.loads(json.dumps(d)) == d
    assert list(d)[:2] == ["skipped", "all_applied"] and d["skipped"] is None and d["all_applied"] is True
    for k in KNOBS:
        assert d[k] == {"asked": None, "applied": False, "refused": None}
    assert set(d["effective"]) == {"policy", "priority", "cpus", "locked_kib", "gc_frozen_objects"}
    assert rep.restore() == {}


def test_skipped_report_shows_what_was_asked_and_applies_nothing():
    before = current_state()
    d = skipped_report(RealtimeKnobsCfg(sched_fifo_priority=50, mlockall=True), "lockstep run").as_dict()
    assert d["skipped"] == "lockstep run" and d["all_applied"] is True
    assert d["sched_fifo_priority"] == {"asked": 50, "applied": False, "refused": None}
    assert d["mlockall"] == {"asked": True, "applied": False, "refused": None}
    assert d["cpu_affinity"]["asked"] is None
    assert current_state() == before


def test_a_cpu_that_is_not_there_is_refused_with_the_cpus_present():
    have = online_cpus()
    absent = max(have) + 1
    before = os.sched_getaffinity(0)
    rep = apply_realtime_knobs(RealtimeKnobsCfg(cpu_affinity=[min(have), absent], gc_freeze=True))
    try:
        d = rep.as_dict()
        assert d["cpu_affinity"] == {"asked": [min(have), absent], "applied": False,
                                     "refused": f"CPU {absent} not present (have {_cpu_ranges(have)})"}
        assert d["all_applied"] is False and list(rep.refused) == ["cpu_affinity"]
        assert os.sched_getaffinity(0) == before  # a refused knob changes nothing
        assert d["gc_freeze"]["applied"] is True  # and the others are still applied
    finally:
        rep.restore()


def test_affinity_applied_then_restored():
    before = os.sched_getaffinity(0)
    cpu = min(before)
    rep = apply_realtime_knobs(RealtimeKnobsCfg(cpu_affinity=[cpu]))
    try:
        assert rep.knobs["cpu_affinity"].applied, rep.knobs["cpu_affinity"].refused
        assert os.sched_getaffinity(0) == {cpu} and rep.as_dict()["effective"]["cpus"] == [cpu]
    finally:
        assert rep.restore() == {}
    assert os.sched_getaffinity(0) == before


def test_sched_fifo_applied_then_restored_or_refused_with_errno():
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    rep = apply_realtime_knobs(RealtimeKnobsCfg(sched_fifo_priority=10))
    try:
        o = rep.knobs["sched_fifo_priority"]
        if not o.applied:
            assert o.refused.startswith(("EPERM:", "EINVAL:")), o.refused
            pytest.skip(f"SCHED_FIFO refused here: {o.refused}")
        assert os.sched_getscheduler(0) == os.SCHED_FIFO and os.sched_getparam(0).sched_priority == 10
        assert rep.as_dict()["effective"]["policy"] == "SCHED_FIFO"
    finally:
        assert rep.restore() == {}
    assert os.sched_getscheduler(0) == policy and os.sched_getparam(0) == param
    assert rep.restore() == {}  # a second restore does nothing


def test_sched_fifo_refusal_is_reported_not_raised(monkeypatch):
    def refuse(pid, policy, param):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    rep = apply_realtime_knobs(RealtimeKnobsCfg(sched_fifo_priority=80))
    assert rep.knobs["sched_fifo_priority"].refused.startswith("EPERM: Operation not permitted")
    assert rep.as_dict()["all_applied"] is False


def test_knobs_on_a_platform_without_them_are_refused(monkeypatch):
    monkeypatch.delattr(os, "sched_setscheduler")
    monkeypatch.delattr(os, "sched_setaffinity")
    rep = apply_realtime_knobs(RealtimeKnobsCfg(sched_fifo_priority=50, cpu_affinity=[0]))
    assert "not supported" in rep.refused["sched_fifo_priority"]
    assert "not supported" in rep.refused["cpu_affinity"]


def test_mlockall_refusal_carries_the_errno_text():
    import ctypes

    class RefusingLibc:
        def mlockall(self, flags):
            ctypes.set_errno(errno.ENOMEM)
            return -1

    rep = apply_realtime_knobs(RealtimeKnobsCfg(mlockall=True), libc_loader=RefusingLibc)
    assert rep.as_dict()["mlockall"] == {
        "asked": True, "applied": False,
        "refused": "ENOMEM: Cannot allocate memory (RLIMIT_MEMLOCK too low or no CAP_IPC_LOCK)"}
    assert rep.restore() == {}


def test_mlockall_applied_then_unlocked():
    if _vmlck_kib():
        pytest.skip("memory already locked by this process (run under --rt-knobs?)")
    rep = apply_realtime_knobs(RealtimeKnobsCfg(mlockall=True))
    try:
        o = rep.knobs["mlockall"]
        if not o.applied:
            pytest.skip(f"mlockall refused here: {o.refused}")
        assert _vmlck_kib() > 0
    finally:
        assert rep.restore() == {}
    assert _vmlck_kib() == 0


def test_gc_freeze_applied_then_thawed():
    if gc.get_freeze_count():
        pytest.skip("objects already frozen in this process (run under --rt-knobs?)")
    rep = apply_realtime_knobs(RealtimeKnobsCfg(gc_freeze=True))
    try:
        assert rep.knobs["gc_freeze"].applied and gc.get_freeze_count() > 0
        assert rep.as_dict()["effective"]["gc_frozen_objects"] > 0
    finally:
        assert rep.restore() == {}
    assert gc.get_freeze_count() == 0


def test_gc_freeze_leaves_an_earlier_freeze_in_place():
    if gc.get_freeze_count():
        pytest.skip("objects already frozen in this process (run under --rt-knobs?)")
    gc.freeze()
    try:
        rep = apply_realtime_knobs(RealtimeKnobsCfg(gc_freeze=True))
        rep.restore()
        assert gc.get_freeze_count() > 0  # not thawed: someone else froze first
    finally:
        gc.unfreeze()
