"""The safety campaign's table: one row per SAFETY.md id, how to inject it and what must happen.

Each :class:`Scenario` says how a lockstep run injects the id (entries of the rig's
``emulation.faults``, the one fault-plan dialect of ``docs/fault-plans.md``, or a stall of
the campaign's own loop for T03), in which injection phases it applies, what the
independent monitor must see (:data:`EXPECTATIONS`) and the deadline after detectability.
Ids that a flight cannot show are rows with ``not_emulated`` saying why and where they are
tested instead. Source of every expectation: ``../shared/SAFETY.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from controller.vehicle import Vehicle

__all__ = ["D12_UNPLUGGED_S", "EXPECTATIONS", "PHASES", "PHASE_INJECT_S", "SCENARIOS", "Scenario", "TICK_S",
           "serial_links_seen"]

#: Control tick of the campaign's rig (``rigs/virtual.yaml``: 100 Hz), s.
TICK_S: Final = 0.01

#: Injection phases, in run order.
PHASES: Final = ("boot", "idle", "armed", "active")

#: Earliest injection time of each phase on the campaign's timeline, s (the seed adds up
#: to 0.2 s). POST passes at 0.51 s; the campaign's operator arms at 1.0 s and starts the
#: mission at 1.5 s (:mod:`controller.safety.campaign`).
PHASE_INJECT_S: Final[Mapping[str, float]] = MappingProxyType(
    {"boot": 0.1, "idle": 0.6, "armed": 1.1, "active": 2.5})

#: What the monitor must see. ``trip``: every command frame zero (or our node silent)
#: from detectability + the deadline on; ``no_trip``: the run goes on (a trip is a false
#: trip); ``no_arm``: no non-zero command frame ever; ``any``: only the figures every run
#: holds (no unsafe frame, no crash); ``device_zero``: the emulated valves are all closed
#: within the device-side timeout after the last command (T03).
EXPECTATIONS: Final = ("trip", "no_trip", "no_arm", "any", "device_zero")

#: Fault-plan entries of one run: ``(t_inject_s) -> [entry, ...]`` (``emulation.faults`` items).
Entries = Callable[[float], list[dict[str, object]]]

VB_STATUS_ID: Final = 0x181
VB_HEARTBEAT_ID: Final = 0x701
ARS408_OBJ_STATUS_ID: Final = 0x60A


def _one(target: str, fault: str, **params: object) -> Entries:
    def entries(t: float) -> list[dict[str, object]]:
        return [{"at_s": round(t, 6), "target": target, "fault": fault, **params}]
    return entries


@dataclass(frozen=True)
class Scenario:
    """One SAFETY.md id as the campaign runs and judges it.

    Attributes
    ----------
    id : str
        SAFETY.md id (``B01`` ... ``O04``).
    title : str
        The fault, in a few words.
    expected : str
        SAFETY.md's expected behaviour, in a few words.
    entries : callable or None
        Fault-plan entries for an injection at ``t`` (None: T03's loop stall, or not emulated).
    expect : mapping of str to str
        Per applicable phase, one of :data:`EXPECTATIONS`.
    detect_bound_s : float or None
        Upper bound of detectability after the injection, s: the reference of the time to
        safe is the controller's own first fault after the injection if earlier, else
        this bound. None: the fault's onset is random (a rate); the reference is the
        controller's first fault.
    deadline_ticks : int
        Frames after reference + this many ticks must be zero (SAFETY.md: 1 T).
    run_after_s : float
        Simulated time the run goes on after the injection, s.
    not_emulated : str
        Why a flight cannot show this id, and where it is tested instead ("" when it can).
    check_after : callable or None
        ``(vehicle, expect) -> str``: what the run must show beyond the bus, read from the
        vehicle once the run ended ("" when it holds, else why not; D12: the links
        reopened). None: nothing more.
    needs_event : str
        An event kind the controller must record after the injection ("" for none; B05:
        the ``bus_error_passive`` warning).
    """

    id: str
    title: str
    expected: str
    entries: Entries | None = None
    expect: Mapping[str, str] = field(default_factory=dict)
    detect_bound_s: float | None = None
    deadline_ticks: int = 1
    run_after_s: float = 1.5
    not_emulated: str = ""
    check_after: Callable[[Vehicle, str], str] | None = None
    needs_event: str = ""


#: A fault that trips: in ``boot`` the vehicle must simply never thrust (POST cannot pass,
#: or the fault is latched before arming).
_TRIP_ALL: Final = MappingProxyType({p: "no_arm" if p == "boot" else "trip" for p in PHASES})
#: A fault that trips once it happens, but in ``boot`` it may pass unseen (nothing sent
#: yet, a reboot before POST, a constant adapter latency): only the figures every run holds.
_TRIP_AFTER_BOOT: Final = MappingProxyType({p: "any" if p == "boot" else "trip" for p in PHASES})
_NO_TRIP_ALL: Final = MappingProxyType({p: "no_trip" for p in PHASES})
_ANY_ALL: Final = MappingProxyType({p: "any" for p in PHASES})
_T = TICK_S

#: D12: how long the serial devices stay unplugged before the replug, s.
D12_UNPLUGGED_S: Final = 1.0


def _d12_entries(t: float) -> list[dict[str, object]]:
    """Unplug the MCU's and the IWR6843's serial links at ``t`` (s), replug both ``D12_UNPLUGGED_S`` later."""
    return [{"at_s": round(t, 6), "until_s": round(t + D12_UNPLUGGED_S, 6), "target": dev, "fault": "unplug"}
            for dev in ("mcu", "radar_sr")]


def serial_links_seen(vehicle: Vehicle) -> dict[str, dict[str, object]]:
    """Return the link counters of the vehicle's serial drivers: failures, reopen attempts, reopens, up.

    Parameters
    ----------
    vehicle : Vehicle
        The run's vehicle after the run.

    Returns
    -------
    dict of str to dict
        ``{"mcu": {...}, "radar_sr": {...}}`` (a device absent from the rig is absent):
        ``failures`` (read/write raised), ``reopens`` (successful reopens), ``up`` (the
        link is open at the end); the MCU also ``reopen_attempts``.
    """
    from controller.components.radar import RadarSubsystem

    mcu = vehicle.mcu.driver
    c = mcu.stats()
    out: dict[str, dict[str, object]] = {"mcu": {"failures": c["bus_errors"], "reopen_attempts": c["reopen_attempts"],
                                                 "reopens": c["reopens"], "up": bool(mcu.link_up)}}
    for comp in vehicle.components:
        if isinstance(comp, RadarSubsystem) and comp.sr is not None and comp.sr.driver is not None:
            d = comp.sr.driver
            out["radar_sr"] = {"failures": d.link_errors, "reopens": d.reopens,
                               "up": bool(getattr(d.link, "is_open", True))}
    return out


def _d12_reconnected(vehicle: Vehicle, expect: str) -> str:
    """D12 beyond the bus: each link failed once at least, was reopened and is up; never re-armed by itself."""
    seen = serial_links_seen(vehicle)
    for dev in ("mcu", "radar_sr"):
        link = seen.get(dev)
        if link is None:
            return f"{dev}: no serial driver in the run"
        if not link["failures"]:
            return f"{dev}: the unplug was never seen by the driver ({link})"
        if not link["reopens"] or not link["up"]:
            return f"{dev}: not reopened after the replug ({link})"
    if expect == "trip" and vehicle.state in ("armed", "active"):
        return f"re-armed by itself: {vehicle.state} at the end"
    return ""

_ROWS: tuple[Scenario, ...] = (
    # ---------------------------------------------------------------- bus
    Scenario("B01", "radar stops sending", "stale, fault, safe within 1 T",
             _one("radar_lr", "silent"), _TRIP_ALL, 4 * 0.072 + _T),
    Scenario("B02", "VB_Status at half rate (50 % loss)", "warning, then safe if it persists",
             _one("can0", "loss", id=VB_STATUS_ID, prob=0.5), _TRIP_ALL, None, run_after_s=3.0),
    Scenario("B03", "frames delivered 100 ms late (buffered adapter)", "judged by receipt time; stale -> safe",
             _one("can0", "late", delay_s=0.1), _TRIP_AFTER_BOOT, 0.1 + _T),
    Scenario("B04", "bus-off", "safe immediately, TX flushed, re-arm by operator only",
             _one("can0", "bus_off"), _TRIP_ALL, _T),
    Scenario("B05", "error-passive", "warning; arming refused while passive",
             _one("can0", "error_passive"),
             MappingProxyType({"boot": "no_arm", "idle": "no_arm", "armed": "no_trip", "active": "no_trip"}),
             needs_event="bus_error_passive"),
    Scenario("B06", "sends refused for 5 ticks", "counted; safe after 3 consecutive failures",
             lambda t: [{"at_s": round(t, 6), "until_s": round(t + 5 * _T, 6), "target": "can0",
                         "fault": "send_refuse"}], _TRIP_AFTER_BOOT, 3 * _T + _T),
    Scenario("B07", "CAN adapter unplugged", "detected within 1 T; safe; reconnect with backoff",
             _one("can0", "unplug"), _TRIP_ALL, _T),
    Scenario("B08", "babbling node, 300 frames per tick", "ingress bounded; the tick keeps its deadline; no trip",
             _one("can0", "babble", id=0x000, frames_per_s=30_000.0), _NO_TRIP_ALL, run_after_s=3.0),
    Scenario("B09", "another node sends our command ID", "latched estop, all our TX stops",
             _one("can0", "foreign_command"), _TRIP_ALL, 2 * _T),
    Scenario("B10", "wall clock steps by an hour", "nothing",
             _one("can0", "wall_clock_step", step_s=3600.0), _NO_TRIP_ALL, run_after_s=2.0),
    # ---------------------------------------------------------------- devices
    Scenario("D01", "ARS408 frozen (ObjStatus repeats, counter not moving)", "invalid after 5 -> stale -> safe",
             _one("can0", "freeze", id=ARS408_OBJ_STATUS_ID), _TRIP_ALL, 8 * 0.072 + _T, run_after_s=2.0),
    Scenario("D02", "radar reports its own fault", "tracks invalid, safe; arming refused",
             _one("radar_lr", "persistent_error"), _TRIP_ALL, 1.0 + _T, run_after_s=2.0),
    Scenario("D03", "radar unknown enum values", "rejected and counted; persistent -> safe",
             _one("radar_lr", "corrupt_enum"), _TRIP_ALL, 4 * 0.072 + _T, run_after_s=2.0),
    Scenario("D04", "valve board heartbeat lost", "safe within 1 T of detection",
             _one("can0", "loss", id=VB_HEARTBEAT_ID, prob=1.0), _TRIP_ALL, None, run_after_s=2.0),
    Scenario("D05", "valve board reboots", "safe; never re-commanded automatically",
             _one("valves", "reboot"), _TRIP_AFTER_BOOT, None),
    Scenario("D06", "one valve stuck closed", "thruster failed, allocator re-plans (the rest spans)",
             _one("valves", "valve_stuck_closed", valve=0),
             MappingProxyType({"boot": "no_arm", "idle": "no_trip", "armed": "no_trip", "active": "no_trip"}),
             run_after_s=3.0),
    Scenario("D07", "valve board absent at POST", "stays out of armed; POST names the board",
             lambda t: [{"at_s": 0.0, "target": "valves", "fault": "silent"}],
             MappingProxyType({"boot": "no_arm"}), run_after_s=2.5),
    Scenario("D08", "MCU stops sending", "stale -> safe",
             _one("mcu", "silent"), _TRIP_ALL, 4 * 0.05 + _T),
    Scenario("D09", "MCU reports E-stop pressed", "estop within 1 T, latched",
             _one("mcu", "estop_press"), _TRIP_ALL, 2 * _T),
    Scenario("D10", "BMS silent", "stale after N polls -> safe",
             _one("bms", "silent"), _TRIP_ALL, None, run_after_s=3.5),
    Scenario("D11", "BMS CRC noise (every 3rd reply)", "never used as data; counted",
             _one("bms", "corrupt", every=3), _NO_TRIP_ALL, run_after_s=3.0),
    Scenario("D12", "serial devices unplugged 1 s (MCU and IWR6843 links), then replugged",
             "stale -> safe as B01; reopen with backoff; never re-armed by itself",
             _d12_entries, _TRIP_AFTER_BOOT, 4 * 0.05 + _T, run_after_s=3.0, check_after=_d12_reconnected),
    # ---------------------------------------------------------------- frames
    Scenario("F01", "VB_Status CRC mismatch (5 % of frames)", "discarded, counted; no trip",
             _one("can0", "corrupt", id=VB_STATUS_ID, prob=0.05), _NO_TRIP_ALL, run_after_s=3.0),
    Scenario("F02", "VB_Status counter repeats (frozen frame)", "wrong-counter score; invalid at 5 -> safe",
             _one("can0", "freeze", id=VB_STATUS_ID), _TRIP_ALL, None, run_after_s=2.0),
    Scenario("F03", "VB_Status wrong DLC (5 % of frames)", "never decoded; no trip",
             _one("can0", "wrong_dlc", id=VB_STATUS_ID, prob=0.05), _NO_TRIP_ALL, run_after_s=3.0),
    Scenario("F04", "error frames and remote frames on our IDs", "never decoded as data; no trip",
             lambda t: [{"at_s": round(t, 6), "target": "can0", "fault": "error_frame", "count": 20},
                        {"at_s": round(t, 6), "target": "can0", "fault": "remote_frame", "id": VB_STATUS_ID,
                         "count": 20}], _NO_TRIP_ALL, run_after_s=2.0),
    Scenario("F05", "random frames at 1000 frames/s", "nothing escapes ingress; bounded memory",
             _one("can0", "fuzz", frames_per_s=1000.0), _ANY_ALL, run_after_s=2.0),
    # ---------------------------------------------------------------- files
    *(Scenario(k, title, "refused at load", not_emulated="a bad file refuses the run before any bus opens: "
               "no flight to judge; tested by " + where) for k, title, where in (
        ("K01", "DBC missing or broken", "unit/test_can_codec.py, unit/test_cli.py"),
        ("K02", "DBC lacks a needed message", "unit/test_can_codec.py::test_require, unit/test_cli.py"),
        ("K03", "YAML duplicate keys, on/off names", "unit/test_yaml_hardening.py, fsm/test_fsm_loader.py"),
        ("K04", "unknown key, NaN, bad bounds", "unit/test_config.py, unit/test_yaml_hardening.py"),
        ("K05", "bad FSM", "fsm/test_fsm_loader.py"),
        ("K06", "geometry without the wrench span", "unit/test_effectiveness.py"))),
    # ---------------------------------------------------------------- timing and process
    Scenario("T01", "one overrun", "counted; no trip",
             _one("host", "overrun"), _NO_TRIP_ALL, run_after_s=2.0),
    Scenario("T02", "persistent overruns (10 per s)", "safe: system lagging",
             _one("host", "overruns", per_s=10), _TRIP_ALL, 0.5 + _T),
    Scenario("T03", "control loop stalls 0.5 s", "device timeouts close the valves within 200 ms",
             None, MappingProxyType({"armed": "device_zero", "active": "device_zero"})),
    Scenario("T04", "process killed and restarted", "boot -> idle, never armed",
             not_emulated="a process fault, not a flight: tests/safety/test_process.py kills and restarts "
                          "`qiki run`; tests/safety/test_process_two_process.py with `qiki emulate` in its own "
                          "process"),
    Scenario("T05", "power cut while the record is written", "readable to the last committed chunk",
             not_emulated="a process fault, not a flight: tests/safety/test_process.py kills `qiki run` at "
                          "random points and reopens every file"),
    # ---------------------------------------------------------------- operator
    Scenario("O01", "arm while POST failed", "refused with the reason",
             lambda t: [{"at_s": 0.0, "target": "valves", "fault": "silent"}],
             MappingProxyType({"boot": "no_arm"}), run_after_s=2.5),
    Scenario("O02", "step from 0 to full thrust", "rate-limited by the output guard",
             not_emulated="a rig cannot command a step (missions are smooth trajectories); "
                          "unit/test_output_guard.py::test_clamp_and_rate_limit_uses_real_dt"),
    Scenario("O03", "NaN or absurd setpoint", "zero for that tick; repeated -> safe",
             not_emulated="mission files refuse NaN at load and console commands carry no setpoint "
                          "(integer and string fields, strict JSON: controller/console/protocol.py); "
                          "unit/test_output_guard.py::test_nonfinite_zeroes_and_faults_after_repeats"),
    Scenario("O04", "two command sources at once", "one arbiter: E-stop > operator > mission",
             not_emulated="the console gateway queues into the one arbiter, drained by the tick "
                          "(tests/emulated/test_console_e2e.py); fsm/test_fsm_engine.py"),
)

#: Every SAFETY.md id, in the catalogue's order.
SCENARIOS: Final[Mapping[str, Scenario]] = MappingProxyType({s.id: s for s in _ROWS})
