"""Power over Modbus in the main job: BMS and PDU pollers, arming, the valve-rail relay.

Built by :func:`controller.rig.power.build` from the rig (``devices`` with ``driver: bms`` / ``driver: pdu`` on
``kind: modbus`` buses, the ``power`` block for the limits) and joined to the vehicle's
tick through the component seam (:class:`controller.components.seam.Component`).

What it does, per phase of the tick (ARCHITECTURE.md 3):

* **read**: lockstep -- step every poller at the tick's simulated time (synchronous
  polls on the memory backend); real time -- nothing touches the bus, the poller worker
  threads publish snapshots and the tick only reads them (SAFETY.md D10: the tick never
  blocks on a silent device). Each device's snapshot is read once, here; POST, arming,
  the conditions and the safe stop judge that one for the rest of the tick (issue 16).
  New BMS samples feed the ``power`` summary.
* **POST** (:meth:`PowerSubsystem.post`, from :meth:`PowerSubsystem.post_report`): waits for one poll attempt of every
  device, then reports the BMS (present, profile fits, cell count as the rig says, no
  alarm) and the PDU (present, no fault flag, valve rail open) -- SAFETY.md D07, D11.
* **arming** (:meth:`PowerSubsystem.arming_check`, SAFETY.md O01): refused with the
  reason when battery data is stale or missing, an alarm is active, the SoC is below
  ``power.min_soc_pct``, the pack is above ``power.max_temperature_c``, or the PDU is
  stale or reports a fault.
* **actions** (:meth:`PowerSubsystem.action_handlers`): ``enable_valve_rail`` queues "close the
  valve-rail relay" (absolute coil write, read back, never retried);
  ``disable_valve_rail`` (idle, safe_mode, estop) queues "open it".
* **conditions** (:meth:`PowerSubsystem.conditions`, keys ``power.<key>``), raising ``fault``:
  stale battery data in any state after boot (D10); while armed/active an alarm, SoC
  below ``power.mission_min_soc_pct`` or over-temperature; the relay not confirmed in
  the requested state within :data:`RELAY_CONFIRM_TIMEOUT_S`, or found open while armed;
  PDU data stale or a PDU fault flag.

The PDU side (its health, energy counter and the valve-rail relay's commands and
read-back) is :class:`~controller.components.power_pdu.PduUnit`; this module holds the
BMS side, POST, arming, the summary and the poller life cycle.

Buses (``url`` of a ``kind: modbus`` bus):

===========================  ==============================  ===============================
url                          lockstep (emulated rig)         ``--realtime`` (emulated rig)
===========================  ==============================  ===============================
``memory://NAME``            in-memory link, polled in read  pymodbus TCP server on
                                                             127.0.0.1 (ephemeral port),
                                                             TCP client, worker thread
``rtu://emulated``           in-memory link (a pty cannot    pymodbus RTU server on a pty
                             run in lockstep)                pair, RTU client, worker
===========================  ==============================  ===============================

On a rig without ``emulation`` the url is opened as written (``tcp://HOST:PORT``,
``rtu:///dev/ttyUSB0?baudrate=115200``) and polled by a worker in real time.

On an emulated rig the far end is a :class:`~firmware_bridge.emulation.power.PowerWorld`
(battery from ``emulation.battery``) with a JK BMS and a QIKI PDU emulator per device
(faults: ``emulation.faults`` entries naming the device). The world is stepped with the physics
(``sim.extra``): the battery drains with the valve board emulator's real open fractions,
and the PDU valve-rail relay is a ``sim.rail_gates`` entry, so an open relay really cuts
the valve board's supply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from controller.components.power_pdu import RELAY_CONFIRM_TIMEOUT_S, PduUnit
from controller.components.seam import (
    ARMING_STATES,
    ActionHandler,
    ComponentBase,
    Condition,
    ConditionSet,
    DevicePost,
    TickView,
)
from controller.config import PowerCfg
from hal.devices.bms import (
    BmsReading,
    bms_arming_check,
    bms_freshness_reason,
    bms_mission_fault,
    bms_post_report,
    bms_reading,
)
from hal.devices.pdu import Pdu, pdu_post_report
from hal.modbus.link import ModbusLink
from hal.modbus.poller import DeviceSnapshot, PollerPort
from hal.snapshot import JsonValue, State, apply, capture, part

__all__ = [
    "BMS_REQUIRED",
    "EMULATED_RTU_URL",
    "PDU_REQUIRED",
    "POWER_STEP_S",
    "RELAY_CONFIRM_TIMEOUT_S",
    "EmulatedFarEnd",
    "PowerSubsystem",
]

#: The url of a Modbus bus played by emulators over a pty in real time (memory in lockstep).
EMULATED_RTU_URL = "rtu://emulated"

#: Step (s) of the emulated battery: decimated from the physics rate (1 kHz) to 50 Hz,
#: faster than any power device is polled (PDU 10 Hz, BMS 2 Hz); the valve open fractions
#: are integrated exactly over each step, so the charge drawn does not depend on it.
POWER_STEP_S = 0.02

#: Quantities the drivers need from each profile (checked at build: a profile that lacks
#: them is a configuration error, not a crash in the tick).
BMS_REQUIRED = ("cell_count", "soc_pct", "pack_voltage_v", "pack_current_a", "alarms")
PDU_REQUIRED = ("valve_rail_enabled",)


class EmulatedFarEnd(Protocol):
    """What the power component knows of the emulated far end (built by the rig room)."""

    def summary(self, stepper: object | None) -> dict[str, object]:
        """Return the ``emulated`` block of the power summary (the world's truth)."""
        ...


class PowerSubsystem(ComponentBase):
    """BMS and PDU in the vehicle's tick (see the module doc for the rules).

    Parameters
    ----------
    limits : PowerCfg
        ``min_soc_pct`` (arming), ``mission_min_soc_pct`` and ``max_temperature_c``
        (mission faults), in % and degC.
    bms : tuple (device name, PollerPort, expected cell count) or None
    pdu : tuple (device name, Pdu) or None
    pollers : dict of str to PollerPort
        One per Modbus bus, by bus name.
    links : dict of str to ModbusLink
        One per bus (for the summary's link counters and for close).
    realtime : bool
        True: pollers run their worker threads (real time, or any real wire); False:
        :meth:`read` steps them (lockstep on the memory link).
    record : callable ``(tick, time_s, kind, **fields)``
        Event sink.
    transport : dict of str to str
        Per bus, ``memory``, ``tcp`` or ``rtu`` (for the summary).
    closers : list of callables
        Run by :meth:`close` in reverse order (servers, links), after the pollers stop.
    emulated : EmulatedPower or None
        The emulated far end (tests and the summary's ``emulated`` block).
    stepper : PowerWorldStepper or None
        The battery stepper in ``sim.extra``.
    """

    name = "power"

    def __init__(
        self,
        *,
        limits: PowerCfg,
        bms: tuple[str, PollerPort, int] | None,
        pdu: tuple[str, Pdu] | None,
        pollers: dict[str, PollerPort],
        links: dict[str, ModbusLink],
        realtime: bool,
        record: Callable[..., None],
        transport: dict[str, str],
        closers: list[Callable[[], None]] | None = None,
        emulated: EmulatedFarEnd | None = None,
        stepper: object | None = None,
        control_period_s: float | None = None,
    ) -> None:
        self.limits = limits
        self.control_period_s = control_period_s
        self._grid_aligned = False
        self.bms = bms
        self.pdu = pdu
        self.pollers = pollers
        self.links = links
        self.realtime = realtime
        self.record = record
        self.transport = transport
        self._closers = list(closers or [])
        self.emulated = emulated
        self.stepper = stepper
        self._closed = False
        #: The PDU's health, energy counter and valve-rail relay (None without a PDU).
        self.pdu_unit = PduUnit(pdu[0], pdu[1], self._log, realtime) if pdu is not None else None
        # battery bookkeeping (from BMS samples, host side)
        self._last_sample_s: float | None = None
        self._new_sample: BmsReading | None = None  # taken this tick, for telemetry
        self._last_power_w: float | None = None
        self.start_soc_pct: float | None = None
        self.end_soc_pct: float | None = None
        self.min_pack_voltage_v: float | None = None
        self.energy_used_wh = 0.0
        self._tick = 0
        self._judged_snap: DeviceSnapshot | None = None
        self._judged_reason: str | None = None
        #: The BMS snapshot read by this tick's :meth:`read` (None before the first read and
        #: after :meth:`restore`: :meth:`_bms_snap` then asks the poller).
        self._tick_bms_snap: DeviceSnapshot | None = None
        # conditions: the keys (fixed by the devices present); one tuple per set of reasons
        keys = [
            ("battery", bms is not None),
            ("pdu", pdu is not None),
            ("valve_rail_relay", pdu is not None),
        ]
        self._cond_keys = tuple(key for key, present in keys if present)
        self._tick_conds = ConditionSet([f"{self.name}.{key}" for key in self._cond_keys])

    # ------------------------------------------------------------------ snapshot
    #: The component's own state in a snapshot (issue 12 part 4): the battery bookkeeping
    #: and the last judged BMS verdict. The pollers' snapshots are inputs (recorded), not
    #: state; the PDU unit (relay, health, energy) is nested.
    SNAPSHOT_FIELDS = ("_grid_aligned", "_last_sample_s", "_new_sample", "_last_power_w", "start_soc_pct",
                       "end_soc_pct", "min_pack_voltage_v", "energy_used_wh", "_tick", "_judged_snap",
                       "_judged_reason")

    def snapshot(self) -> State:
        """Return the battery bookkeeping, the judged verdict and the PDU unit's state."""
        out: State = capture(self, self.SNAPSHOT_FIELDS)
        if self.pdu_unit is not None:
            out["pdu_unit"] = self.pdu_unit.snapshot()
        return out

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot` (a pending relay write is resumed through the poller)."""
        apply(self, state, self.SNAPSHOT_FIELDS)
        self._tick_bms_snap = None
        if self.pdu_unit is not None:
            self.pdu_unit.restore(part(state, "pdu_unit"))

    # ------------------------------------------------------------------ helpers
    def _bms_snap(self) -> DeviceSnapshot | None:
        """Return this tick's BMS snapshot (read in :meth:`read`; from the poller before any read)."""
        if self.bms is None:
            return None
        snap = self._tick_bms_snap
        if snap is None:
            name, poller, _ = self.bms
            snap = poller.snapshot(name)
        return snap

    def _log(self, now_s: float, kind: str, **fields: object) -> None:
        self.record(self._tick, now_s, kind, **fields)

    def _take_bms_sample(self, snap: DeviceSnapshot) -> None:
        if snap.sample_time_s is None or snap.sample_time_s == self._last_sample_s:
            return
        r = bms_reading(snap)
        if r is None:
            return
        power_w = r.pack_voltage_v * -r.pack_current_a  # JK: current positive charging
        if self._last_sample_s is not None and self._last_power_w is not None:
            dt = snap.sample_time_s - self._last_sample_s
            self.energy_used_wh += 0.5 * (power_w + self._last_power_w) * dt / 3600.0
        self._last_sample_s = snap.sample_time_s
        self._last_power_w = power_w
        self._new_sample = r
        if self.start_soc_pct is None:
            self.start_soc_pct = r.soc_pct
        self.end_soc_pct = r.soc_pct
        if self.min_pack_voltage_v is None or r.pack_voltage_v < self.min_pack_voltage_v:
            self.min_pack_voltage_v = r.pack_voltage_v

    # ------------------------------------------------------------------ the component seam
    def telemetry(self, view: TickView) -> Mapping[str, Mapping[str, object]]:
        """Return ``/power/bms`` when this tick took a new BMS sample (SoC, voltage, current, age)."""
        r, self._new_sample = self._new_sample, None
        if r is None or self._last_sample_s is None:
            return {}
        return {"/power/bms": {"tick": view.tick, "t_s": view.now_s, "soc_pct": r.soc_pct,
                               "voltage_v": r.pack_voltage_v, "current_a": r.pack_current_a,
                               "max_temperature_c": r.max_temperature_c,
                               "age_s": view.now_s - self._last_sample_s}}

    def read(self, view: TickView) -> None:
        """Read phase (per tick): lockstep polls due now; take any new BMS sample.

        In ``boot``, a valve-rail relay found closed (a killed predecessor left it so) is
        commanded open (:meth:`PduUnit.open_rail_found_closed`, SAFETY.md T04).

        Real time: only snapshots are read (never blocks). The first tick's time is the
        origin of the control grid (the loop's deadlines are ``t0 + k * period``), so it is
        there, once, that the workers' polls are moved between the ticks
        (:meth:`ModbusPoller.align_to_grid`; the pollers start before the loop does).
        """
        now_s = view.now_s
        self._tick = view.tick
        if not self.realtime:
            for poller in self.pollers.values():
                poller.step(now_s)
        elif not self._grid_aligned and self.control_period_s:
            # first tick: move the worker's polls between the ticks (see align_to_grid)
            for poller in self.pollers.values():
                poller.align_to_grid(now_s, self.control_period_s)
            self._grid_aligned = True
        if self.bms is not None:
            name, poller, _ = self.bms
            snap = self._tick_bms_snap = poller.snapshot(name)  # the tick's one read of it
            self._take_bms_sample(snap)
        if self.pdu_unit is not None:
            self.pdu_unit.observe()  # the tick's one read of the PDU snapshot
            if view.state == "boot":
                self.pdu_unit.open_rail_found_closed(now_s)

    def post(self, view: TickView) -> Mapping[str, DevicePost] | None:
        """POST verdict per device (see :meth:`post_report`); None while waiting."""
        rep = self.post_report(view.now_s)
        return None if rep is None else {dev: DevicePost(bool(ok), why) for dev, (ok, why) in rep.items()}

    def post_report(self, now_s: float) -> dict[str, tuple[bool, str]] | None:
        """POST verdict of the BMS and the PDU; None until each had one poll attempt."""
        out: dict[str, tuple[bool, str]] = {}
        if self.bms is not None:
            name, _, cells = self.bms
            snap = self._bms_snap()
            assert snap is not None  # a BMS is configured
            if snap.polls_ok + snap.polls_failed == 0:
                return None
            rep = bms_post_report(snap, cells, now_s)
            d = rep.details
            ok_text = (f"BMS: ok, {d.get('cell_count')} cells, SoC {d.get('soc_pct', 0):.0f} %, "
                       f"{d.get('pack_voltage_v', 0):.2f} V" if rep.ok else "")
            out[name] = (rep.ok, ok_text or "; ".join(rep.reasons))
        if self.pdu_unit is not None:
            name = self.pdu_unit.name
            snap = self.pdu_unit.tick_snapshot()
            if snap.polls_ok + snap.polls_failed == 0:
                return None
            rep = pdu_post_report(snap, now_s)
            ok_text = f"PDU: ok, bus {rep.details.get('bus_voltage_v', 0):.2f} V, valve rail open" if rep.ok else ""
            out[name] = (rep.ok, ok_text or "; ".join(rep.reasons))
        return out

    def arming_check(self, view: TickView) -> str | None:
        """Why the vehicle may not arm (battery and PDU side of SAFETY.md O01), or None."""
        ok, reason = self._arming(view.now_s)
        return None if ok else reason

    def _arming(self, now_s: float) -> tuple[bool, str]:
        snap = self._bms_snap()
        if snap is not None:
            ok, reason = bms_arming_check(snap, self.limits.min_soc_pct, now_s)
            if not ok:
                return False, reason
            r = bms_reading(snap)
            if r is not None and r.max_temperature_c > self.limits.max_temperature_c:
                return False, (f"BMS: temperature {r.max_temperature_c:.1f} degC above "
                               f"{self.limits.max_temperature_c:.1f} degC")
        if self.pdu_unit is not None:
            pdu_reason = self.pdu_unit.health(now_s)
            if pdu_reason is not None:
                return False, pdu_reason
        return True, ""

    def action_handlers(self) -> Mapping[str, ActionHandler]:
        """With a PDU: ``enable_valve_rail`` closes the valve-rail relay, ``disable_valve_rail`` opens it."""
        if self.pdu_unit is None:
            return {}
        return {"enable_valve_rail": lambda view: self._relay_action(view, True),
                "disable_valve_rail": lambda view: self._relay_action(view, False)}

    def _relay_action(self, view: TickView, closed: bool) -> None:
        """Queue the relay command (:meth:`PduUnit.request_rail`; :meth:`conditions` judges the read-back)."""
        assert self.pdu_unit is not None
        self._tick = view.tick
        self.pdu_unit.request_rail(view.now_s, closed)

    def valve_rail_open_confirmed(self) -> bool | None:
        """Has the PDU confirmed the valve-rail relay open? (safe stop, per tick).

        Returns
        -------
        bool or None
            None without a PDU; otherwise :meth:`PduUnit.rail_open_confirmed`.
        """
        return None if self.pdu_unit is None else self.pdu_unit.rail_open_confirmed()

    def conditions(self, view: TickView) -> Sequence[Condition]:
        """Fault conditions (per tick), keys ``power.<key>``: battery (D10, low SoC, over-temperature), relay, PDU.

        None in ``boot``. The reasons are judged every tick; while they equal the last
        tick's, the very same tuple is returned (:class:`~controller.components.seam.ConditionSet`).
        """
        if view.state == "boot":
            return ()
        return self._tick_conds.of(self._monitor(view.now_s, view.state))

    def _monitor(self, now_s: float, state: str) -> tuple[str | None, ...]:
        """Reasons of the conditions (not in ``boot``), in the order of ``_cond_keys``."""
        battery: tuple[str | None, ...] = ()
        snap = self._bms_snap()
        if snap is not None:
            if not snap.is_fresh(now_s):
                why = bms_freshness_reason(snap, now_s) or None  # D10
            elif state in ARMING_STATES:
                # the value checks depend on the snapshot only: judged once per new poll
                if snap is not self._judged_snap:
                    self._judged_snap = snap
                    self._judged_reason = bms_mission_fault(
                        snap, now_s, self.limits.mission_min_soc_pct, self.limits.max_temperature_c)
                why = self._judged_reason
            else:
                why = None
            battery = (why,)
        unit = self.pdu_unit
        if unit is None:
            return battery
        return (*battery, unit.health(now_s), unit.rail_condition(now_s))

    def summary(self) -> dict[str, object]:
        """Return the ``power`` block of ``summary.json``.

        Keys: ``start_soc_pct``, ``end_soc_pct``, ``min_pack_voltage_v`` (from the BMS
        samples), ``energy_used_wh`` (the PDU's energy counter, last minus first sample;
        without a PDU counter, ``energy_used_wh_bms``), ``energy_used_wh_bms`` (pack V x
        discharge current integrated over the BMS samples: coarse, the BMS is polled at
        2 Hz and the valve current is pulsed),
        ``relay_operations`` (relay commands sent), ``relay_confirmed``,
        ``relay_failures``, ``devices`` (per device: bus, unit id, Modbus transactions,
        failures and failures by kind, polls), ``buses`` (per bus: transport and the link
        counters), and on emulated rigs ``emulated`` (the world's truth: end SoC, energy,
        relay state changes, time the valve rail was closed).
        """
        devices: dict[str, object] = {}
        for bus_name, poller in self.pollers.items():
            for dev in poller.devices:
                d = poller.snapshot(dev).as_dict()
                d["bus"] = bus_name
                devices[dev] = d
        buses = {b: {"transport": self.transport[b], **link.stats().as_dict()} for b, link in self.links.items()}
        unit = self.pdu_unit
        out: dict[str, object] = {
            "start_soc_pct": self.start_soc_pct,
            "end_soc_pct": self.end_soc_pct,
            "min_pack_voltage_v": None if self.min_pack_voltage_v is None else round(self.min_pack_voltage_v, 3),
            "energy_used_wh": round(self._energy_wh(), 6),
            "energy_used_wh_bms": round(self.energy_used_wh, 6),
            "relay_operations": self.pdu[1].relay_operations if self.pdu is not None else 0,
            "relay_confirmed": unit.relay_confirmed if unit is not None else 0,
            "relay_failures": unit.relay_failures if unit is not None else 0,
            "devices": devices,
            "buses": buses,
        }
        if self.emulated is not None:
            out["emulated"] = self.emulated.summary(self.stepper)
        return out

    def _energy_wh(self) -> float:
        pdu_wh = self.pdu_unit.energy_used_wh() if self.pdu_unit is not None else None
        return self.energy_used_wh if pdu_wh is None else pdu_wh

    def close(self) -> None:
        """Open the valve-rail relay (bounded), stop the poller workers, then close links and servers.

        The workers are joined, 2 s each. Safe twice.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self.pdu_unit is not None:
                self.pdu_unit.open_rail_at_close()
        except Exception:  # noqa: BLE001 - closing must go on
            pass
        for poller in self.pollers.values():
            poller.stop(2.0)
        for c in reversed(self._closers):
            try:
                c()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._closers.clear()


