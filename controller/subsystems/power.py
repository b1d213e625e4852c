"""Power over Modbus in the main job: BMS and PDU pollers, arming, the valve-rail relay.

Built by :func:`build` from the rig (``devices`` with ``driver: bms`` / ``driver: pdu`` on
``kind: modbus`` buses, the ``power`` block for the limits) and joined to the vehicle's
tick through the :class:`controller.subsystems.Subsystem` seam (issue 5, point 5).

What it does, per phase of the tick (ARCHITECTURE.md 3):

* **read**: lockstep -- step every poller at the tick's simulated time (synchronous
  polls on the memory backend); real time -- nothing touches the bus, the poller worker
  threads publish snapshots and the tick only reads them (SAFETY.md D10: the tick never
  blocks on a silent device). New BMS samples feed the ``power`` summary.
* **POST** (:meth:`PowerSubsystem.post_report`): waits for one poll attempt of every
  device, then reports the BMS (present, profile fits, cell count as the rig says, no
  alarm) and the PDU (present, no fault flag, valve rail open) -- SAFETY.md D07, D11.
* **arming** (:meth:`PowerSubsystem.arming_check`, SAFETY.md O01): refused with the
  reason when battery data is stale or missing, an alarm is active, the SoC is below
  ``power.min_soc_pct``, the pack is above ``power.max_temperature_c``, or the PDU is
  stale or reports a fault.
* **actions** (:meth:`PowerSubsystem.on_action`): ``enable_valve_rail`` queues "close the
  valve-rail relay" (absolute coil write, read back, never retried);
  ``disable_valve_rail`` (idle, safe_mode, estop) queues "open it".
* **monitor** (:meth:`PowerSubsystem.monitor`), conditions raising ``fault``:
  stale battery data in any state after boot (D10); while armed/active an alarm, SoC
  below ``power.mission_min_soc_pct`` or over-temperature; the relay not confirmed in
  the requested state within :data:`RELAY_CONFIRM_TIMEOUT_S`, or found open while armed;
  PDU data stale or a PDU fault flag.

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
(fault plans from ``emulation.power_faults``). The world is stepped with the physics
(``sim.extra``): the battery drains with the valve board emulator's real open fractions,
and the PDU valve-rail relay is a ``sim.rail_gates`` entry, so an open relay really cuts
the valve board's supply.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from controller.config import BmsDeviceCfg, ModbusBusCfg, PduDeviceCfg, PowerCfg, RigCfg, load_profile
from controller.errors import ConfigError, opening
from controller.components.seam import ActionHandler, Condition, DevicePost, TickView
from firmware_bridge.protocols.modbus_profile import DeviceProfile
from hal.devices.bms import bms_arming_check, bms_freshness_reason, bms_mission_fault, bms_post_report, bms_reading
from hal.devices.pdu import Pdu, pdu_health, pdu_post_report
from hal.modbus.poller import DeviceSnapshot, ModbusPoller, PolledDevice
from hal.modbus.url import open_link

#: The url of a Modbus bus played by emulators over a pty in real time (memory in lockstep).
EMULATED_RTU_URL = "rtu://emulated"

#: Bound (s) for the PDU's read-back to confirm a valve-rail relay command. The write goes
#: out at the next poll step (lockstep: next tick; real time: the worker is woken), and
#: costs one write plus one read, each bounded by the bus timeout (<= 0.1 s by default);
#: 0.5 s leaves room for a BMS poll in flight on the same half-duplex bus.
RELAY_CONFIRM_TIMEOUT_S = 0.5

#: Step (s) of the emulated battery: decimated from the physics rate (1 kHz) to 50 Hz,
#: faster than any power device is polled (PDU 10 Hz, BMS 2 Hz); the valve open fractions
#: are integrated exactly over each step, so the charge drawn does not depend on it.
POWER_STEP_S = 0.02

#: Quantities the drivers need from each profile (checked at build: a profile that lacks
#: them is a configuration error, not a crash in the tick).
BMS_REQUIRED = ("cell_count", "soc_pct", "pack_voltage_v", "pack_current_a", "alarms")
PDU_REQUIRED = ("valve_rail_enabled",)

ARMING_STATES = frozenset({"armed", "active"})


# --------------------------------------------------------------------------- emulation


class PowerWorldStepper:
    """Steps a PowerWorld from the simulation (an entry of ``sim.extra``).

    Parameters
    ----------
    world : PowerWorld
        The emulated battery, relays and loads.
    valve_board : ValveBoardEmulator or None
        Source of the valves' physical open fractions (None: no valve load).
    step_s : float, optional
        Battery step (s); the physics calls :meth:`step` at 1 kHz and this does work only
        every ``step_s``.

    Attributes
    ----------
    valve_rail_closed_s : float
        Simulated time the valve-rail relay spent closed (s).
    valve_rail_closures : int
        Times the relay went from open to closed (as seen at the battery steps).
    """

    def __init__(self, world: Any, valve_board: Any | None, step_s: float = POWER_STEP_S) -> None:
        self.world = world
        self.valve_board = valve_board
        self.step_s = float(step_s)
        self._last_s: float | None = None
        self._next_s = -math.inf
        self._was_closed = False
        self.valve_rail_closed_s = 0.0
        self.valve_rail_closures = 0
        #: Battery above 0 V at the last battery step (cached for the 1 kHz rail gate).
        self.battery_alive = world.battery.terminal_voltage_v > 0.0

    def rail_gate(self) -> bool:
        """``sim.rail_gates`` entry: the valve board has supply through the PDU relay.

        Same as ``PowerWorld.valve_rail_powered`` with the battery voltage taken at the
        last battery step (cheap enough for the physics rate).
        """
        return self.battery_alive and self.world.relay("valve_rail")

    def step(self, t_s: float) -> None:
        """Advance the battery to ``t_s`` (s) when a battery step is due. Per physics step.

        The valve load is the sum of the valves' open fractions over the step
        (``ValveBoardEmulator.open_fractions``): 8 valves open for half the step draw as
        much as 4 valves open throughout.
        """
        if t_s < self._next_s:
            return
        last = self._last_s
        if last is None:
            self._last_s = t_s
            self._next_s = t_s + self.step_s - 1e-9
            return
        dt = t_s - last
        valves = 0.0
        if self.valve_board is not None:
            valves = float(sum(self.valve_board.open_fractions(last, t_s)))
        closed = self.world.relay("valve_rail")
        if closed:
            self.valve_rail_closed_s += dt
            if not self._was_closed:
                self.valve_rail_closures += 1
        self._was_closed = closed
        self.world.step(dt, valves)
        self.battery_alive = self.world.battery.terminal_voltage_v > 0.0
        self._last_s = t_s
        self._next_s = t_s + self.step_s - 1e-9


@dataclass
class EmulatedPower:
    """The emulated far end of a rig's power buses (see :func:`build_emulated_power`).

    Attributes
    ----------
    world : PowerWorld
    responders : dict of str to dict of int to emulator
        Per bus name, the emulated devices by unit id.
    emulators : dict of str to emulator
        By rig device name.
    """

    world: Any
    responders: dict[str, dict[int, Any]]
    emulators: dict[str, Any]


def build_emulated_power(rig: RigCfg, name: str, profiles: dict[str, Any], clock: Any) -> EmulatedPower:
    """Build the PowerWorld and one emulator per BMS/PDU device of an emulated rig.

    Parameters
    ----------
    rig : RigCfg
        A rig with an ``emulation`` block.
    name : str
        The rig file name (for errors).
    profiles : dict of str to DeviceProfile
        Profile of each power device, by device name.
    clock : Clock
        Time source of the emulators' fault windows (the run's clock).

    Returns
    -------
    EmulatedPower

    Raises
    ------
    ConfigError
        A power fault names a device that is not a BMS or PDU of the rig.

    Notes
    -----
    The emulated pack is QIKI-1's 8S LiFePO4 (``BatteryModel`` defaults): the rig's
    ``cell_count`` is what POST expects, not what the world is, so a rig that declares
    another count fails POST as it would on the real vehicle.
    """
    from firmware_bridge.emulation.power import BatteryModel, Fault, FaultPlan, JkBmsEmulator, PowerWorld, QikiPduEmulator

    emu = rig.emulation
    assert emu is not None
    b = emu.battery
    world = PowerWorld(BatteryModel(soc=b.start_soc_pct / 100.0, temperature_c=b.start_temperature_c))
    plans: dict[str, FaultPlan] = {}
    for i, f in enumerate(emu.power_faults):
        dev = rig.devices.get(f.device)
        if not isinstance(dev, (BmsDeviceCfg, PduDeviceCfg)):
            raise ConfigError(name, f"emulation.power_faults[{i}].device",
                              f"{f.device!r} is not a bms or pdu device of this rig")
        plans.setdefault(f.device, FaultPlan()).add(Fault(
            kind=f.kind, start_s=f.start_s, end_s=f.end_s, exception_code=f.exception_code,
            delay_s=f.delay_s, alarm_bits=f.alarm_bits))
    responders: dict[str, dict[int, Any]] = {}
    emulators: dict[str, Any] = {}
    for dev_name, dev in rig.devices.items():
        if isinstance(dev, BmsDeviceCfg):
            e = JkBmsEmulator(profiles[dev_name], world, clock, dev.unit_id, plans.get(dev_name))
        elif isinstance(dev, PduDeviceCfg):
            e = QikiPduEmulator(profiles[dev_name], world, clock, dev.unit_id, plans.get(dev_name))
        else:
            continue
        emulators[dev_name] = e
        responders.setdefault(dev.bus, {})[dev.unit_id] = e
    return EmulatedPower(world, responders, emulators)


def open_real_link(bus: ModbusBusCfg, name: str, bus_name: str):
    """Open the link of a real (non-emulated) Modbus bus from its url.

    Parameters
    ----------
    bus : ModbusBusCfg
        The bus: ``tcp://HOST:PORT`` or ``rtu://PATH[?baudrate=N&parity=P]`` (the bus's
        ``baudrate`` applies when the url names none); ``timeout_s`` per transaction.
    name, bus_name : str
        Rig file and bus name (for errors).

    Returns
    -------
    ModbusLink

    Raises
    ------
    ConfigError
        ``memory://`` or ``rtu://emulated`` on a rig without emulation.
    BusConfigError
        A malformed url or unusable parameters.
    """
    parts = urlsplit(bus.url)
    if parts.scheme == "memory" or bus.url == EMULATED_RTU_URL:
        raise ConfigError(name, f"buses.{bus_name}.url", f"{bus.url!r} exists only on emulated rigs")
    url = bus.url
    if parts.scheme == "rtu" and "baudrate" not in parse_qs(parts.query):
        url += ("&" if parts.query else "?") + f"baudrate={bus.baudrate}"
    return open_link(url, bus.timeout_s)


def open_emulated_link(bus: ModbusBusCfg, responders: dict[int, Any], name: str, bus_name: str, *,
                       over_wire: bool, timeout_s: float | None = None) -> tuple[Any, str, list[Callable[[], None]]]:
    """Open the link of an emulated rig's Modbus bus to its emulated devices.

    Parameters
    ----------
    bus : ModbusBusCfg
        The bus: ``memory://NAME`` or :data:`EMULATED_RTU_URL`.
    responders : dict of int to ModbusResponder
        The bus's emulated devices by unit id (:attr:`EmulatedPower.responders`).
    name, bus_name : str
        Rig file and bus name (for errors).
    over_wire : bool
        False: the in-memory link (lockstep). True: a pymodbus server on its own thread
        and a client -- Modbus TCP on 127.0.0.1 for ``memory://``, RTU over a pty pair
        for :data:`EMULATED_RTU_URL`.
    timeout_s : float, optional
        Reply timeout per transaction (s); default the bus's ``timeout_s``.

    Returns
    -------
    link : ModbusLink
    transport : {"memory", "tcp", "rtu"}
    closers : list of callables
        To call in reverse order when done (the link, then the server); empty for memory.

    Raises
    ------
    ConfigError
        Another url on an emulated rig.
    BusConfigError, ProtocolError
        The server or the client cannot be opened (nothing is left running).
    """
    is_rtu = bus.url == EMULATED_RTU_URL
    if not (is_rtu or urlsplit(bus.url).scheme == "memory"):
        raise ConfigError(name, f"buses.{bus_name}.url",
                          f"on an emulated rig a modbus url is memory://NAME or {EMULATED_RTU_URL}")
    timeout = bus.timeout_s if timeout_s is None else timeout_s
    if not over_wire:
        from hal.modbus.link import MemoryModbusLink

        return MemoryModbusLink(responders, timeout), "memory", []
    from firmware_bridge.emulation.modbus_server import ModbusEmulatorServer
    from hal.modbus.link import PymodbusRtuLink, PymodbusTcpLink

    transport = "rtu" if is_rtu else "tcp"
    server = ModbusEmulatorServer(responders, transport, baudrate=bus.baudrate).start()
    try:
        if is_rtu:
            link = PymodbusRtuLink(server.client_path, bus.baudrate, timeout)
        else:
            link = PymodbusTcpLink(server.host, server.port, timeout)
    except BaseException:
        server.stop()
        raise
    return link, transport, [server.stop, link.close]


# --------------------------------------------------------------------------- subsystem


class PowerSubsystem:
    """BMS and PDU in the vehicle's tick (see the module doc for the rules).

    Parameters
    ----------
    limits : PowerCfg
        ``min_soc_pct`` (arming), ``mission_min_soc_pct`` and ``max_temperature_c``
        (mission faults), in % and degC.
    bms : tuple (device name, ModbusPoller, expected cell count) or None
    pdu : tuple (device name, Pdu) or None
    pollers : dict of str to ModbusPoller
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
        bms: tuple[str, ModbusPoller, int] | None,
        pdu: tuple[str, Pdu] | None,
        pollers: dict[str, ModbusPoller],
        links: dict[str, Any],
        realtime: bool,
        record: Callable[..., None],
        transport: dict[str, str],
        closers: list[Callable[[], None]] | None = None,
        emulated: EmulatedPower | None = None,
        stepper: PowerWorldStepper | None = None,
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
        # battery bookkeeping (from BMS samples, host side)
        self._last_sample_s: float | None = None
        self._last_power_w: float | None = None
        self.start_soc_pct: float | None = None
        self.end_soc_pct: float | None = None
        self.min_pack_voltage_v: float | None = None
        self.energy_used_wh = 0.0
        # valve-rail relay
        self.rail_closed_requested = False
        self._rail_ticket: Any = None
        self._rail_requested_at_s = 0.0
        self._rail_confirmed_at_s: float | None = None
        self._rail_confirm_reported = False
        self.relay_confirmed = 0
        self.relay_failures = 0
        self._tick = 0
        self._judged_snap: DeviceSnapshot | None = None
        self._judged_reason: str | None = None
        self._pdu_seen: DeviceSnapshot | None = None
        self._pdu_energy_first_wh: float | None = None
        self._pdu_energy_last_wh: float | None = None

    # ------------------------------------------------------------------ helpers
    def _bms_snap(self) -> DeviceSnapshot | None:
        if self.bms is None:
            return None
        name, poller, _ = self.bms
        return poller.snapshot(name)

    def _log(self, now_s: float, kind: str, **fields: Any) -> None:
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
        if self.start_soc_pct is None:
            self.start_soc_pct = r.soc_pct
        self.end_soc_pct = r.soc_pct
        if self.min_pack_voltage_v is None or r.pack_voltage_v < self.min_pack_voltage_v:
            self.min_pack_voltage_v = r.pack_voltage_v

    # ------------------------------------------------------------------ Subsystem
    def read(self, view: TickView) -> None:
        """Read phase (per tick): lockstep polls due now; take any new BMS sample.

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
        snap = self._bms_snap()
        if snap is not None:
            self._take_bms_sample(snap)
        if self.pdu is not None:
            psnap = self.pdu[1].snapshot()
            if psnap is not self._pdu_seen:
                self._pdu_seen = psnap
                e = psnap.values.get("energy_used_wh")
                if isinstance(e, float) and math.isfinite(e):
                    if self._pdu_energy_first_wh is None:
                        self._pdu_energy_first_wh = e
                    self._pdu_energy_last_wh = e

    def events(self, view: TickView) -> Sequence[str]:
        """No events of its own."""
        return ()

    def post(self, view: TickView) -> Mapping[str, DevicePost] | None:
        """POST verdict per device (see :meth:`post_report`); None while waiting."""
        rep = self.post_report(view.now_s)
        return None if rep is None else {dev: DevicePost(bool(ok), why) for dev, (ok, why) in rep.items()}

    def post_report(self, now_s: float) -> dict[str, tuple[bool, str]] | None:
        """POST verdict of the BMS and the PDU; None until each had one poll attempt."""
        out: dict[str, tuple[bool, str]] = {}
        if self.bms is not None:
            name, poller, cells = self.bms
            snap = poller.snapshot(name)
            if snap.polls_ok + snap.polls_failed == 0:
                return None
            rep = bms_post_report(snap, cells, now_s)
            d = rep.details
            ok_text = (f"BMS: ok, {d.get('cell_count')} cells, SoC {d.get('soc_pct', 0):.0f} %, "
                       f"{d.get('pack_voltage_v', 0):.2f} V" if rep.ok else "")
            out[name] = (rep.ok, ok_text or "; ".join(rep.reasons))
        if self.pdu is not None:
            name, pdu = self.pdu
            snap = pdu.snapshot()
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
        if self.pdu is not None:
            reason = self._pdu_health(now_s)
            if reason is not None:
                return False, reason
        return True, ""

    def _pdu_health(self, now_s: float) -> str | None:
        assert self.pdu is not None
        return pdu_health(self.pdu[1].snapshot(), now_s)

    def action_handlers(self) -> Mapping[str, ActionHandler]:
        """With a PDU: ``enable_valve_rail`` closes the valve-rail relay,
        ``disable_valve_rail`` opens it."""
        if self.pdu is None:
            return {}
        return {"enable_valve_rail": lambda view: self._relay_action(view, True),
                "disable_valve_rail": lambda view: self._relay_action(view, False)}

    def _relay_action(self, view: TickView, closed: bool) -> None:
        """Queue one absolute coil write with read-back (never blocks, never retried);
        :meth:`conditions` judges the read-back."""
        assert self.pdu is not None
        now_s = view.now_s
        self._tick = view.tick
        self.rail_closed_requested = closed
        self._rail_ticket = self.pdu[1].request_relay("valve_rail", closed)
        self._rail_requested_at_s = now_s
        self._rail_confirmed_at_s = None
        self._rail_confirm_reported = False
        self._log(now_s, "relay_command", device=self.pdu[0], relay="valve_rail", closed=closed)

    def valve_rail_open_confirmed(self) -> bool | None:
        """Has the PDU confirmed the valve-rail relay open? (safe stop, per tick)

        Returns
        -------
        bool or None
            None without a PDU; True when the last relay command was "open" and its
            read-back confirmed it, or no command was ever sent and the last fresh PDU
            sample reads the relay open; False otherwise.
        """
        if self.pdu is None:
            return None
        t = self._rail_ticket
        if t is None:
            return self.pdu[1].snapshot().values.get("valve_rail_enabled") in (False, 0)
        return (not self.rail_closed_requested) and t.done.is_set() and bool(t.ok)

    def _relay_condition(self, now_s: float, state: str) -> str | None:
        t = self._rail_ticket
        if t is None:
            return None
        want = "closed" if self.rail_closed_requested else "open"
        if t.done.is_set():
            if not t.ok:
                if not self._rail_confirm_reported:
                    self._rail_confirm_reported = True
                    self.relay_failures += 1
                    self._log(now_s, "relay_failed", relay="valve_rail", want=want, reason=t.reason)
                return f"PDU: valve-rail relay not confirmed {want}: {t.reason}"
            if self._rail_confirmed_at_s is None:
                self._rail_confirmed_at_s = now_s
                self.relay_confirmed += 1
                self._log(now_s, "relay_confirmed", relay="valve_rail", closed=self.rail_closed_requested)
        elif now_s - self._rail_requested_at_s > RELAY_CONFIRM_TIMEOUT_S:
            if not self._rail_confirm_reported:
                self._rail_confirm_reported = True
                self.relay_failures += 1
                self._log(now_s, "relay_failed", relay="valve_rail", want=want, reason="no read-back")
            return f"PDU: valve-rail relay read-back not confirmed {want} within {RELAY_CONFIRM_TIMEOUT_S} s"
        else:
            return None
        # confirmed: a later fresh poll must agree (the relay can drop out on its own)
        snap = self.pdu[1].snapshot()  # type: ignore[index]
        if snap.sample_time_s is not None and snap.sample_time_s >= self._rail_confirmed_at_s and snap.is_fresh(now_s):
            actual = snap.values.get("valve_rail_enabled")
            if actual is not None and bool(actual) != self.rail_closed_requested:
                return f"PDU: valve-rail relay reads {'closed' if actual else 'open'}, commanded {want}"
        return None

    def conditions(self, view: TickView) -> Sequence[Condition]:
        """Fault conditions (per tick), keys ``power.<key>``: battery (D10, low SoC,
        over-temperature), relay, PDU."""
        return [Condition(f"{self.name}.{key}", why) for key, why in self._monitor(view.now_s, view.state)]

    def _monitor(self, now_s: float, state: str) -> list[tuple[str, str | None]]:
        if state == "boot":
            return []
        out: list[tuple[str, str | None]] = []
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
            out.append(("battery", why))
        if self.pdu is not None:
            out.append(("pdu", self._pdu_health(now_s)))
            out.append(("valve_rail_relay", self._relay_condition(now_s, state)))
        return out

    def write(self, view: TickView, thrust_n: Sequence[float]) -> None:
        """Write phase (per tick): nothing; relay writes are queued by the rail actions."""

    def summary(self) -> dict[str, Any]:
        """The ``power`` block of ``summary.json``.

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
        devices: dict[str, Any] = {}
        for bus_name, poller in self.pollers.items():
            for dev in poller.devices:
                d = poller.snapshot(dev).as_dict()
                d["bus"] = bus_name
                devices[dev] = d
        buses = {b: {"transport": self.transport[b], **link.stats().as_dict()} for b, link in self.links.items()}
        out: dict[str, Any] = {
            "start_soc_pct": self.start_soc_pct,
            "end_soc_pct": self.end_soc_pct,
            "min_pack_voltage_v": None if self.min_pack_voltage_v is None else round(self.min_pack_voltage_v, 3),
            "energy_used_wh": round(self._energy_wh(), 6),
            "energy_used_wh_bms": round(self.energy_used_wh, 6),
            "relay_operations": self.pdu[1].relay_operations if self.pdu is not None else 0,
            "relay_confirmed": self.relay_confirmed,
            "relay_failures": self.relay_failures,
            "devices": devices,
            "buses": buses,
        }
        if self.emulated is not None:
            w = self.emulated.world
            emu: dict[str, Any] = {
                "end_soc_pct": round(w.battery.soc * 100.0, 4),
                "energy_used_wh": round(w.battery.energy_used_wh, 6),
                "relay_state_changes": w.relay_operations,
                "valve_rail_closed": w.relay("valve_rail"),
            }
            if self.stepper is not None:
                emu["valve_rail_closed_s"] = round(self.stepper.valve_rail_closed_s, 3)
                emu["valve_rail_closures"] = self.stepper.valve_rail_closures
            out["emulated"] = emu
        return out

    def _energy_wh(self) -> float:
        if self._pdu_energy_first_wh is not None and self._pdu_energy_last_wh is not None:
            return self._pdu_energy_last_wh - self._pdu_energy_first_wh
        return self.energy_used_wh

    def _open_rail_at_close(self) -> None:
        """The run ends: the valve-rail relay is commanded open and the write flushed.

        A run that stops in ``armed``/``active`` (duration elapsed) or right after a
        ``disable_valve_rail`` whose write is still queued must not leave the relay closed.
        Bounded: real time waits at most :data:`RELAY_CONFIRM_TIMEOUT_S` for the worker;
        lockstep executes the queued writes at once.
        """
        if self.pdu is None:
            return
        name, pdu = self.pdu
        t = self._rail_ticket
        pending = t is not None and not t.done.is_set()
        if not (self.rail_closed_requested or pending):
            return
        if self.rail_closed_requested:
            self.rail_closed_requested = False
            self._rail_ticket = pdu.request_relay("valve_rail", False)
            try:
                self._log(pdu.poller.clock.now_s(), "relay_command", device=name, relay="valve_rail",
                          closed=False, reason="end of run")
            except Exception:  # noqa: BLE001 - the record may already be closed
                pass
        if self.realtime:
            self._rail_ticket.done.wait(RELAY_CONFIRM_TIMEOUT_S)
        else:
            pdu.poller.step()
        if self._rail_ticket.done.is_set() and self._rail_ticket.ok:
            self.relay_confirmed += 1
        else:
            self.relay_failures += 1

    def close(self) -> None:
        """Open the valve-rail relay (bounded), stop the poller workers (joined, 2 s each),
        then close links and servers. Safe twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._open_rail_at_close()
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


def _check_profile(profile: Any, required: tuple[str, ...], name: str, key: str) -> None:
    names = set(profile.names)
    missing = [q for q in required if q not in names]
    if missing:
        raise ConfigError(name, key, f"profile {profile.name!r} lacks {', '.join(missing)} (the driver needs them)")


def _check_url(bus: ModbusBusCfg, emulated: bool, name: str, bus_name: str) -> None:
    """The url of a Modbus bus fits the rig (what the link openers refuse, without opening).

    Emulated rig: ``memory://NAME`` or :data:`EMULATED_RTU_URL` (:func:`open_emulated_link`).
    Real rig: ``tcp://HOST:PORT`` or ``rtu://PATH[?baudrate=N&parity=P]``
    (:func:`open_real_link`, :func:`hal.modbus.url.open_link`).
    """
    key = f"buses.{bus_name}.url"
    parts = urlsplit(bus.url)
    if emulated:
        if not (bus.url == EMULATED_RTU_URL or parts.scheme == "memory"):
            raise ConfigError(name, key, f"on an emulated rig a modbus url is memory://NAME or {EMULATED_RTU_URL}")
        return
    if parts.scheme == "memory" or bus.url == EMULATED_RTU_URL:
        raise ConfigError(name, key, f"{bus.url!r} exists only on emulated rigs")
    if parts.scheme == "tcp":
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ConfigError(name, key, f"{bus.url!r}: expected tcp://HOST:PORT")
    elif parts.scheme == "rtu":
        if not (parts.path or parts.netloc):
            raise ConfigError(name, key, f"{bus.url!r}: expected rtu:///dev/ttyX?baudrate=N")
        baud = parse_qs(parts.query).get("baudrate", ["115200"])[0]
        if not baud.isdigit() or int(baud) <= 0:
            raise ConfigError(name, key, f"{bus.url!r}: baudrate {baud!r} is not a positive integer")
    else:
        raise ConfigError(name, key, f"{bus.url!r}: scheme must be tcp or rtu")


def check(rig: RigCfg, name: str, rig_path: Path) -> dict[str, DeviceProfile]:
    """Every build-time check of the power devices, without opening a link.

    Called by :func:`controller.rig.check_rig` (``qiki rig check`` and ``qiki run``) and
    by :func:`build`, so both refuse the same rigs with the same line.

    Parameters
    ----------
    rig : RigCfg
        A validated rig.
    name : str
        The rig file, for errors.
    rig_path : Path
        The rig file (profile paths are resolved against it).

    Returns
    -------
    dict of str to DeviceProfile
        The validated profile of each BMS and PDU, by device name (empty without them).

    Raises
    ------
    ConfigError
        More than one BMS or PDU; a power device not on a ``kind: modbus`` bus; a
        profile that fails validation (its own file and key, bounds of
        :class:`~firmware_bridge.protocols.modbus_profile.DeviceProfile`) or lacks a
        quantity the driver needs (:data:`BMS_REQUIRED`, :data:`PDU_REQUIRED`); an
        ``emulation.power_faults`` entry naming another device; a bus url that does not
        fit the rig (:func:`_check_url`).
    """
    bms_items = [(n, d) for n, d in rig.devices.items() if isinstance(d, BmsDeviceCfg)]
    pdu_items = [(n, d) for n, d in rig.devices.items() if isinstance(d, PduDeviceCfg)]
    if not bms_items and not pdu_items:
        return {}
    for kind, items in (("bms", bms_items), ("pdu", pdu_items)):
        if len(items) > 1:
            raise ConfigError(name, "devices", f"at most one {kind} device (got {', '.join(n for n, _ in items)})")
    profiles: dict[str, DeviceProfile] = {}
    for dev_name, dev in bms_items + pdu_items:
        if not isinstance(rig.buses[dev.bus], ModbusBusCfg):
            raise ConfigError(name, f"devices.{dev_name}.bus", f"bus {dev.bus!r} is not a modbus bus")
        profiles[dev_name] = p = load_profile(dev.profile, rig_path)
        if isinstance(dev, BmsDeviceCfg):
            req = BMS_REQUIRED + tuple(f"cell_{i:02d}_voltage_v" for i in range(min(dev.cell_count, 16)))
            _check_profile(p, req, name, f"devices.{dev_name}.profile")
        else:
            _check_profile(p, PDU_REQUIRED, name, f"devices.{dev_name}.profile")
    emu = rig.emulation
    if emu is not None:
        for i, f in enumerate(emu.power_faults):
            if not isinstance(rig.devices.get(f.device), (BmsDeviceCfg, PduDeviceCfg)):
                raise ConfigError(name, f"emulation.power_faults[{i}].device",
                                  f"{f.device!r} is not a bms or pdu device of this rig")
    for bus_name in sorted({d.bus for _, d in bms_items + pdu_items}):
        bus = rig.buses[bus_name]
        assert isinstance(bus, ModbusBusCfg)
        _check_url(bus, emu is not None, name, bus_name)
    return profiles


def build(ctx: Any) -> PowerSubsystem | None:
    """Build the power subsystem of a rig, or None when it has no BMS and no PDU.

    Parameters
    ----------
    ctx : SubsystemContext
        From :func:`controller.rig.build_rig`.

    Returns
    -------
    PowerSubsystem or None

    Raises
    ------
    ConfigError
        Whatever :func:`check` refuses (run first, so the line is the one ``qiki rig
        check`` prints).
    BusConfigError, ProtocolError
        A link or emulator server that cannot be opened (one line, exit status 2).
    """
    rig: RigCfg = ctx.cfg
    name = str(ctx.path)
    bms_items = [(n, d) for n, d in rig.devices.items() if isinstance(d, BmsDeviceCfg)]
    pdu_items = [(n, d) for n, d in rig.devices.items() if isinstance(d, PduDeviceCfg)]
    if not bms_items and not pdu_items:
        return None
    profiles: dict[str, Any] = dict(check(rig, name, ctx.path))  # the checks of `qiki rig check`

    closers: list[Callable[[], None]] = []
    emulated = build_emulated_power(rig, name, profiles, ctx.clock) if rig.emulation is not None else None
    links: dict[str, Any] = {}
    transport: dict[str, str] = {}
    bus_names = sorted({d.bus for _, d in bms_items + pdu_items})
    try:
        for bus_name in bus_names:
            bus = rig.buses[bus_name]
            assert isinstance(bus, ModbusBusCfg)
            if emulated is None:
                with opening(name, f"buses.{bus_name}"):
                    links[bus_name] = open_real_link(bus, name, bus_name)
                transport[bus_name] = urlsplit(bus.url).scheme
                closers.append(links[bus_name].close)
                continue
            links[bus_name], transport[bus_name], opened = open_emulated_link(
                bus, emulated.responders.get(bus_name, {}), name, bus_name, over_wire=ctx.realtime)
            closers += opened
    except BaseException:
        for c in reversed(closers):
            try:
                c()
            except Exception:  # noqa: BLE001
                pass
        raise

    pollers: dict[str, ModbusPoller] = {}
    for bus_name in bus_names:
        devs = [PolledDevice(n, links[bus_name], profiles[n], d.unit_id)
                for n, d in bms_items + pdu_items if d.bus == bus_name]
        pollers[bus_name] = ModbusPoller(devs, ctx.clock)
    bms = None
    if bms_items:
        n, d = bms_items[0]
        bms = (n, pollers[d.bus], d.cell_count)
    pdu = None
    if pdu_items:
        n, d = pdu_items[0]
        pdu = (n, Pdu(pollers[d.bus], n))

    stepper = None
    if emulated is not None and ctx.sim is not None:
        stepper = PowerWorldStepper(emulated.world, getattr(ctx.sim, "valve_board", None))
        ctx.sim.extra.append(stepper)
        if pdu is not None:
            ctx.sim.rail_gates.append(stepper.rail_gate)

    # Real wires are always polled by the worker (never from the tick), even if someone
    # runs a real rig on the lockstep clock; only the memory link is stepped in read.
    threaded = ctx.realtime or emulated is None
    sub = PowerSubsystem(
        limits=rig.power or PowerCfg(), bms=bms, pdu=pdu, pollers=pollers, links=links,
        realtime=threaded, record=ctx.record, transport=transport, closers=closers,
        emulated=emulated, stepper=stepper, control_period_s=1.0 / rig.controller.rate_hz,
    )
    ctx.record(-1, 0.0, "power_buses", buses={b: {"url": rig.buses[b].url, "transport": transport[b]} for b in bus_names})
    if threaded:
        for poller in pollers.values():
            poller.start()
    return sub
