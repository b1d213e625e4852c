"""Emulated power system: battery, PDU relays, and the two Modbus devices that report them.

* :class:`BatteryModel` -- an 8S LiFePO4 pack: SoC falls with the current drawn
  (coulomb counting), terminal voltage = open-circuit voltage(SoC) - I*R (sags under
  load), temperature rises with I^2*R against a thermal resistance to ambient.
* :class:`PowerWorld` -- the battery plus the loads and the PDU relays. The valve rail
  relay really gates the valve board's supply: :attr:`PowerWorld.valve_rail_powered` is
  what the valve-board emulator must check, and valve current flows only through a
  closed relay.
* :class:`JkBmsEmulator`, :class:`QikiPduEmulator` -- the devices' Modbus firmware,
  driven by their profiles (the same :mod:`firmware_bridge.protocols.modbus_profile` the
  host drivers use) and answering :class:`ModbusRequest` with :class:`ModbusReply`.
  They serve :class:`hal.modbus.link.MemoryModbusLink` directly (lockstep) and the
  pymodbus servers of :mod:`firmware_bridge.emulation.modbus_server` (real time).
* Faults (:data:`EmulatedModbusDevice.FAULTS`, fault-plan targets of
  :mod:`firmware_bridge.emulation.faults`): ``silent``, ``exception``, ``slow``,
  ``wrong_unit``, ``corrupt`` (CRC noise) and ``alarm`` (alarm bits set). A device steps
  its own :class:`~firmware_bridge.emulation.faults.FaultPlan` at every request it
  answers, on the request's time: its faults are only ever seen in its replies.

Time comes from a :class:`controller.clock.Clock` passed in; nothing here sleeps.
Per-transaction work is bounded (one register bank refresh).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Protocol

from firmware_bridge.emulation.faults import FaultParam, FaultParams, FaultPlan, FaultSpec
from firmware_bridge.protocols.modbus_profile import (
    ILLEGAL_DATA_ADDRESS,
    ILLEGAL_FUNCTION,
    SERVER_DEVICE_FAILURE,
    DeviceProfile,
    ModbusReply,
    ModbusRequest,
    Quantity,
    decode,
    encode,
)

#: ``every`` parameter of the reply faults: affect one request in ``every`` (1 = all; 3 =
#: the 3rd, 6th...: intermittent noise).
_EVERY = FaultParam(int, 1, 1, 1_000_000, "affect one request in every (1: all)")
_READ_NAMES_N = 4096  # read ranges whose quantities are kept per device (a poller reads a few)


# --------------------------------------------------------------------------- physics

# LiFePO4 open-circuit voltage per cell against SoC (typical curve, e.g. A123 ANR26650 /
# generic LFP datasheets): flat plateau near 3.3 V, knees at both ends.
_LFP_OCV: tuple[tuple[float, float], ...] = (
    (0.00, 2.50), (0.05, 2.95), (0.10, 3.15), (0.20, 3.22), (0.40, 3.27),
    (0.60, 3.30), (0.80, 3.33), (0.90, 3.36), (0.97, 3.42), (1.00, 3.55),
)


#: Upper SoC end of each segment of :data:`_LFP_OCV` (segment i: points i and i + 1).
_LFP_OCV_ENDS: tuple[float, ...] = tuple(s1 for s1, _ in _LFP_OCV[1:])


def lfp_ocv_per_cell_v(soc: float) -> float:
    """Open-circuit voltage of one LiFePO4 cell (V) at state of charge ``soc`` (0..1).

    Piecewise-linear interpolation of a typical LFP curve; clamps outside 0..1. The
    segment is the first whose upper end is >= the clamped SoC (found by bisection).
    """
    s = min(1.0, max(0.0, soc))
    i = bisect.bisect_left(_LFP_OCV_ENDS, s)  # < len: s <= 1.0, the last end
    (s0, v0), (s1, v1) = _LFP_OCV[i], _LFP_OCV[i + 1]
    return v0 + (v1 - v0) * (s - s0) / (s1 - s0)


@dataclass
class BatteryModel:
    """Equivalent-circuit battery: OCV(SoC) in series with a resistance, lumped thermal mass.

    Parameters
    ----------
    cell_count : int
        Cells in series (default 8: 8S LiFePO4, 25.6 V nominal).
    capacity_ah : float
        Rated capacity (Ah).
    soc : float
        Initial state of charge, 0..1.
    internal_resistance_ohm : float
        Pack series resistance (Ohm).
    temperature_c : float
        Initial pack temperature (degC).
    ambient_c : float
        Ambient temperature (degC).
    thermal_mass_j_per_k : float
        Heat capacity of the pack (J/K).
    thermal_resistance_k_per_w : float
        Pack-to-ambient thermal resistance (K/W).

    Notes
    -----
    Per step: ``soc -= I dt / (3600 C)``; ``V = n OCV(soc) - I R``;
    ``dT/dt = (I^2 R - (T - T_amb)/R_th) / C_th`` (forward Euler). Discharge current is
    positive here; the JK BMS reports it negative (its current is positive charging).
    """

    cell_count: int = 8
    capacity_ah: float = 5.0
    soc: float = 0.9
    internal_resistance_ohm: float = 0.08
    temperature_c: float = 25.0
    ambient_c: float = 25.0
    thermal_mass_j_per_k: float = 600.0
    thermal_resistance_k_per_w: float = 2.0
    current_a: float = 0.0
    energy_used_wh: float = 0.0
    charge_used_ah: float = 0.0

    @property
    def open_circuit_voltage_v(self) -> float:
        """Pack OCV (V)."""
        return self.cell_count * lfp_ocv_per_cell_v(self.soc)

    @property
    def terminal_voltage_v(self) -> float:
        """Pack voltage under the present load (V)."""
        return max(0.0, self.open_circuit_voltage_v - self.current_a * self.internal_resistance_ohm)

    def cell_voltages_v(self) -> list[float]:
        """Per-cell terminal voltages (V), with a small fixed imbalance pattern (+-4 mV)."""
        mean = self.terminal_voltage_v / self.cell_count
        return [mean + ((i * 7) % 5 - 2) * 0.002 for i in range(self.cell_count)]

    def step(self, dt_s: float, current_a: float) -> None:
        """Advance by ``dt_s`` seconds drawing ``current_a`` amperes (discharge positive).

        Per-tick function.
        """
        if dt_s <= 0:
            return
        self.current_a = float(current_a)
        v = self.terminal_voltage_v
        dq_ah = self.current_a * dt_s / 3600.0
        self.soc = min(1.0, max(0.0, self.soc - dq_ah / self.capacity_ah))
        self.charge_used_ah += dq_ah
        self.energy_used_wh += v * self.current_a * dt_s / 3600.0
        heat_w = self.current_a ** 2 * self.internal_resistance_ohm
        cool_w = (self.temperature_c - self.ambient_c) / self.thermal_resistance_k_per_w
        self.temperature_c += (heat_w - cool_w) * dt_s / self.thermal_mass_j_per_k


RELAYS: tuple[str, ...] = ("valve_rail", "radar_power", "mcu_power")


class PowerWorld:
    """The battery, the PDU relays and the loads behind them.

    Parameters
    ----------
    battery : BatteryModel, optional
        The pack (default: :class:`BatteryModel` defaults).
    base_load_a : float
        Load always on the battery (the Pi, the PDU itself), A.
    mcu_load_a, radar_load_a : float
        Loads behind the MCU and radar relays, A.
    valve_current_a : float
        Current of one open solenoid valve, A (drawn only through a closed valve-rail
        relay).

    Notes
    -----
    Relays start as a powered-up PDU leaves them: MCU and radar on, valve rail OFF.
    Thread-safe: the Modbus server thread sets relays while the world thread steps.
    """

    def __init__(
        self,
        battery: BatteryModel | None = None,
        base_load_a: float = 0.8,
        mcu_load_a: float = 0.3,
        radar_load_a: float = 0.5,
        valve_current_a: float = 0.6,
    ) -> None:
        self.battery = battery if battery is not None else BatteryModel()
        self.base_load_a = base_load_a
        self.mcu_load_a = mcu_load_a
        self.radar_load_a = radar_load_a
        self.valve_current_a = valve_current_a
        self._relays = {"valve_rail": False, "radar_power": True, "mcu_power": True}
        self.relay_operations = 0
        self.valves_open = 0.0
        self._lock = threading.Lock()

    def relay(self, name: str) -> bool:
        """State of relay ``name`` (``valve_rail``, ``radar_power``, ``mcu_power``)."""
        return self._relays[name]

    def set_relay(self, name: str, closed: bool) -> None:
        """Close (True) or open a relay; counts state changes as relay operations."""
        if name not in self._relays:
            raise KeyError(f"no relay {name!r} (known: {', '.join(RELAYS)})")
        with self._lock:
            if self._relays[name] != bool(closed):
                self.relay_operations += 1
            self._relays[name] = bool(closed)

    @property
    def valve_rail_powered(self) -> bool:
        """True when the valve board has supply (relay closed and battery above 0 V)."""
        return self._relays["valve_rail"] and self.battery.terminal_voltage_v > 0.0

    def rail_currents_a(self) -> dict[str, float]:
        """Present current per relay rail (A)."""
        return {
            "valve_rail": self.valves_open * self.valve_current_a if self._relays["valve_rail"] else 0.0,
            "radar_power": self.radar_load_a if self._relays["radar_power"] else 0.0,
            "mcu_power": self.mcu_load_a if self._relays["mcu_power"] else 0.0,
        }

    def load_current_a(self) -> float:
        """Total battery current (A, discharge positive)."""
        return self.base_load_a + sum(self.rail_currents_a().values())

    def step(self, dt_s: float, valves_open: float = 0.0) -> None:
        """Advance the battery by ``dt_s`` s with ``valves_open`` valves open (0..8).

        ``valves_open`` may be fractional (sum of PWM duty cycles). Per-tick function.
        """
        with self._lock:
            self.valves_open = max(0.0, float(valves_open))
            self.battery.step(dt_s, self.load_current_a())


# --------------------------------------------------------------------------- devices


class RegisterBank:
    """A device's tables laid out by its profile.

    Parameters
    ----------
    profile : DeviceProfile
        Layout and addressing.
    ranges : mapping of str to list of (int, int)
        Valid address ranges per table, ``[start, end)`` in the profile's address units;
        a read touching anything else is an illegal data address (exception 2). Default:
        exactly the profile's registers/bits.
    """

    def __init__(self, profile: DeviceProfile, ranges: Mapping[str, list[tuple[int, int]]] | None = None) -> None:
        self.profile = profile
        self._cells: dict[tuple[str, int], int | bool] = {}
        self._ranges: dict[str, list[tuple[int, int]]] = {t: list(r) for t, r in (ranges or {}).items()}
        stride = profile.address_stride
        for q in profile.quantities:
            step = 1 if q.is_bit else stride
            for k in range(q.registers):
                self._cells[(q.table, q.address + k * step)] = False if q.is_bit else 0
            if ranges is None:
                self._ranges.setdefault(q.table, []).append((q.address, q.address + q.registers * step))
        # Per quantity name (the first of that name, as DeviceProfile.quantity finds it):
        # the quantity and the keys of its cells, in register order (the profile is frozen).
        self._slots: dict[str, tuple[Quantity, int, tuple[tuple[str, int], ...]]] = {}
        for q in profile.quantities:
            step = 1 if q.is_bit else stride
            self._slots.setdefault(
                q.name, (q, step, tuple((q.table, q.address + k * step) for k in range(q.registers))))
        # Per quantity name: the value last stored by set() and the words it wrote.
        self._written: dict[str, tuple[int | float, list[int] | list[bool]]] = {}
        # Per table: the valid ranges merged where they touch or overlap (a fast answer
        # for a read spanning several quantities; the ranges are fixed from here on).
        self._merged: dict[str, list[tuple[int, int]]] = {}
        for table, rs in self._ranges.items():
            merged: list[tuple[int, int]] = []
            for a, b in sorted(r for r in rs if r[0] < r[1]):
                if merged and a <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], b))
                else:
                    merged.append((a, b))
            self._merged[table] = merged

    def _step(self, table: str) -> int:
        return 1 if table in ("coil", "discrete") else self.profile.address_stride

    def _valid(self, table: str, address: int) -> bool:
        if table in ("holding", "input") and self.profile.address_stride == 2 and address % 2:
            return False
        return any(a <= address < b for a, b in self._ranges.get(table, []))

    def read(self, table: str, address: int, count: int) -> list[int] | list[bool] | None:
        """Values of ``count`` registers/bits from ``address``, or None if any is illegal."""
        step = self._step(table)
        addrs = range(address, address + count * step, step) if count > 0 else range(0)
        if addrs and not self._span_valid(table, address, addrs[-1]):
            return None
        bit = table in ("coil", "discrete")
        cells = self._cells
        default = False if bit else 0
        return [cells.get((table, a), default) for a in addrs]

    def _span_valid(self, table: str, first: int, last: int) -> bool:
        """Whether every address ``first, first + step, ..., last`` of ``table`` is valid.

        One merged range holding the whole span answers at once (every address in it is
        in some range); otherwise every address is checked (:meth:`_valid`).
        """
        if table in ("holding", "input") and self.profile.address_stride == 2 and first % 2:
            return False  # a register step of 2 keeps the parity: every address is odd
        for a, b in self._merged.get(table, ()):
            if a <= first and last < b:
                return True
        step = self._step(table)
        return all(self._valid(table, x) for x in range(first, last + 1, step))

    def set(self, name: str, value: object) -> None:
        """Store a physical value (in the quantity's unit) into quantity ``name``.

        One item of :meth:`set_many` (the same checks and errors).

        Raises
        ------
        KeyError
            No quantity ``name`` in the profile.
        ProtocolError
            Value out of the quantity's range (see :func:`modbus_profile.encode`).
        """
        self.set_many(((name, value),))

    def set_many(self, items: Iterable[tuple[str, object]]) -> None:
        """Store physical values into quantities, in order: ``set(name, value)`` for each item.

        One call for a whole refresh (the emulators' per-request update writes 11 to 28
        quantities; a call per value was most of its cost).

        Parameters
        ----------
        items : iterable of (str, object)
            Quantity name and value (in the quantity's unit), stored one after the other.

        Raises
        ------
        KeyError
            No quantity of an item's name in the profile (the items before it are stored).
        ProtocolError
            A value out of its quantity's range (see :func:`modbus_profile.encode`; the
            items before it are stored).
        """
        slots, cells, written = self._slots, self._cells, self._written
        for name, value in items:
            slot = slots.get(name)
            if slot is None:
                self.profile.quantity(name)  # raises the KeyError naming the known quantities
                raise KeyError(name)  # pragma: no cover - quantity() found no such name
            q, step, keys = slot
            # Unchanged value, cells still holding what it wrote: encoding it again would
            # write the same words (encode is a pure function of the quantity, the value
            # and, for a u8, the current word, which is then the word written). Immutable
            # scalars only; a float zero is always encoded (-0.0 == 0.0, but an f32 keeps
            # the sign).
            last = written.get(name)
            if (last is not None and type(value) in (int, float, bool) and (value or type(value) is not float)
                    and type(last[0]) is type(value) and last[0] == value):
                words = last[1]
                for k, key in enumerate(keys):
                    if cells[key] != words[k]:
                        break
                else:
                    continue
            current = cells.get((q.table, q.address), 0)
            words = encode(q, value, current_word=int(current))  # type: ignore[arg-type]
            for k, w in enumerate(words):
                cells[(q.table, q.address + k * step)] = w
            if type(value) in (int, float, bool) and len(words) == len(keys):
                written[name] = (value, words)  # type: ignore[assignment]
            else:
                written.pop(name, None)

    def get(self, name: str) -> object:
        """Decode quantity ``name`` from the bank (physical value, see :func:`modbus_profile.decode`).

        Raises
        ------
        KeyError
            No quantity ``name`` in the profile.
        """
        q = self.profile.quantity(name)
        step = 1 if q.is_bit else self.profile.address_stride
        return decode(q, [self._cells[(q.table, q.address + k * step)] for k in range(q.registers)])

    def quantity_at(self, table: str, address: int) -> Quantity | None:
        """Return the quantity starting at ``address`` of ``table`` (None if none)."""
        for q in self.profile.quantities:
            if q.table == table and q.address == address:
                return q
        return None


class _Clockish(Protocol):
    """The part of ``controller.clock.Clock`` the emulators use (no import of controller)."""

    def now_s(self) -> float:  # pragma: no cover - protocol only
        ...


class EmulatedModbusDevice:
    """Base of the emulated devices: fault plan + register bank -> replies.

    Parameters
    ----------
    profile : DeviceProfile
        The device's map.
    unit_id : int
        Its Modbus unit id.
    clock : Clock
        Time of every request (the fault plan is stepped with it).
    ranges : mapping, optional
        Valid address ranges (see :class:`RegisterBank`).

    Attributes
    ----------
    requests_seen : int
        Requests addressed to this device (also while silent).
    fault_plan : FaultPlan or None
        This device's entries of the rig's fault plan, stepped at every request (set by
        the composition room; None: no plan). :meth:`apply_fault` may also be called
        directly.
    """

    #: Faults of a plan (``emulation.faults`` entries whose target is this device).
    FAULTS: Final[Mapping[str, FaultSpec]] = MappingProxyType({
        "silent": FaultSpec("no reply (device off the bus)", MappingProxyType({"every": _EVERY})),
        "exception": FaultSpec("a Modbus exception to every request", MappingProxyType({
            "exception_code": FaultParam(int, SERVER_DEVICE_FAILURE, 1, 255, "Modbus exception code"),
            "every": _EVERY})),
        "slow": FaultSpec("replies late", MappingProxyType({
            "delay_s": FaultParam(float, 0.0, 0.0, 60.0, "reply delay, s"), "every": _EVERY})),
        "wrong_unit": FaultSpec("replies carry unit id + 1", MappingProxyType({"every": _EVERY})),
        "corrupt": FaultSpec("replies with a broken CRC / malformed ADU", MappingProxyType({"every": _EVERY})),
        "alarm": FaultSpec("device alarm bits set (OR-ed into the alarm word / fault flags)", MappingProxyType({
            "alarm_bits": FaultParam(int, 0, 0, 0xFFFF_FFFF, "raw alarm bits")})),
    })

    def __init__(self, profile: DeviceProfile, unit_id: int, clock: _Clockish,
                 ranges: Mapping[str, list[tuple[int, int]]] | None = None) -> None:
        self.profile = profile
        self.unit_id = unit_id
        self.clock = clock
        self.fault_plan: FaultPlan | None = None
        self._active: list[tuple[str, FaultParams]] = []
        self.bank = RegisterBank(profile, ranges)
        self._names = frozenset(profile.names)
        # Per read range (table, address, count): the quantities it touches (the profile
        # and the bank's layout are fixed, so an entry never goes stale).
        self._read_names: dict[tuple[str, int, int], frozenset[str]] = {}
        self.requests_seen = 0
        self._lock = threading.Lock()

    def apply_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """Start a fault of :data:`FAULTS` (fault-plan target protocol).

        Parameters
        ----------
        fault : str
            A key of :data:`FAULTS`.
        params : mapping
            Its parameters; missing ones take the spec's defaults.
        now_s : float
            Time, s (unused: the fault shows in the next reply).

        Raises
        ------
        KeyError
            Unknown fault.
        """
        spec = self.FAULTS[fault]
        full = {k: params.get(k, p.default) for k, p in spec.params.items()}
        self._active = [*self._active, (fault, MappingProxyType(full))]

    def clear_fault(self, fault: str, params: FaultParams, now_s: float) -> None:
        """End the fault applied with ``params`` (the oldest such, if applied twice)."""
        spec = self.FAULTS[fault]
        full = {k: params.get(k, p.default) for k, p in spec.params.items()}
        active = list(self._active)
        for i, (name, p) in enumerate(active):
            if name == fault and dict(p) == full:
                del active[i]
                break
        self._active = active

    def clear_faults(self) -> None:
        """End every active fault (a test's reset)."""
        self._active = []

    def alarm_bits(self) -> int:
        """OR of the active ``alarm`` faults' bits."""
        bits = 0
        for name, p in self._active:
            if name == "alarm":
                bits |= int(p["alarm_bits"])
        return bits

    def refresh(self, now_s: float, names: Container[str] | None = None) -> None:
        """Update the register bank from the world (subclasses).

        Parameters
        ----------
        now_s : float
            Time of the request, s.
        names : container of str, optional
            Update only these quantities (None: every quantity the device refreshes).
        """

    def names_read(self, table: str, address: int, count: int) -> frozenset[str]:
        """Return the names of the quantities with a register or bit among those a read covers.

        Parameters
        ----------
        table : str
            ``coil``, ``discrete``, ``holding`` or ``input``.
        address : int
            First address of the read (the profile's address units).
        count : int
            Registers or bits read (addresses ``address + k * step``, ``k < count``; the
            step is the profile's ``address_stride`` for registers, 1 for bits).

        Returns
        -------
        frozenset of str
            What :meth:`respond` refreshes before serving that read: the reply is made of
            these quantities' cells only (computed once per range: the profile is fixed).

        Notes
        -----
        Same replies as refreshing every quantity while every value encodes. A world value
        out of its register's range (``ProtocolError`` from the refresh) now fails only the
        reads that cover that quantity, where a full refresh failed every request to the
        device; the quantities a failed refresh had not reached keep their older cells.
        """
        key = (table, address, count)
        names = self._read_names.get(key)
        if names is None:
            bit = table in ("coil", "discrete")
            step = 1 if bit else self.profile.address_stride
            end = address + max(count, 0) * step
            names = frozenset(q.name for q in self.profile.quantities
                              if q.table == table and q.address < end and address < q.address + q.registers * step)
            if len(self._read_names) >= _READ_NAMES_N:
                self._read_names.clear()
            self._read_names[key] = names
        return names

    def handle_write(self, q: Quantity, value: int | bool) -> int:
        """Apply a write to a writable quantity; return 0 or a Modbus exception code."""
        self.bank.set(q.name, value if q.is_bit else decode(q, [int(value)]))
        return 0

    def respond(self, request: ModbusRequest) -> ModbusReply:
        """Answer one request: step the fault plan to the request's time, apply the active faults."""
        with self._lock:
            now = self.clock.now_s()
            if self.fault_plan is not None:
                self.fault_plan.step(now)
            self.requests_seen += 1
            n = self.requests_seen
            kinds = {name: p for name, p in self._active
                     if name != "alarm" and (n % int(p["every"]) == 0 or p["every"] == 1)}
            if "silent" in kinds:
                return ModbusReply("silent")
            if "exception" in kinds:
                return ModbusReply("exception", exception_code=int(kinds["exception"]["exception_code"]))
            delay = float(kinds["slow"]["delay_s"]) if "slow" in kinds else 0.0
            # A read's reply is made of the cells it covers: only the quantities there are
            # refreshed (the others are refreshed when a read covers them, from the world
            # as it is then); a write refreshes everything first, as a read never waits.
            if request.function == "read":
                names = self.names_read(request.table, request.address, request.count)
                if names:
                    self.refresh(now, names)
            else:
                self.refresh(now)
            reply = self._serve(request)
            if reply.kind != "values" or not kinds:  # no reply fault: the served reply as it is
                return reply
            for kind in ("wrong_unit", "corrupt"):
                if kind in kinds:
                    return ModbusReply(kind, values=reply.values, delay_s=delay)
            return ModbusReply("values", values=reply.values, delay_s=delay)

    def _serve(self, request: ModbusRequest) -> ModbusReply:
        if request.function == "read":
            values = self.bank.read(request.table, request.address, request.count)
            if values is None:
                return ModbusReply("exception", exception_code=ILLEGAL_DATA_ADDRESS)
            return ModbusReply("values", values=tuple(values))
        if request.table not in ("coil", "holding"):
            return ModbusReply("exception", exception_code=ILLEGAL_FUNCTION)
        q = self.bank.quantity_at(request.table, request.address)
        if q is None or not q.writable:
            return ModbusReply("exception", exception_code=ILLEGAL_DATA_ADDRESS)
        value = request.value
        if value is None:  # a write request always carries its value (ModbusRequest)
            return ModbusReply("exception", exception_code=ILLEGAL_DATA_ADDRESS)
        code = self.handle_write(q, value)
        if code:
            return ModbusReply("exception", exception_code=code)
        return ModbusReply("values", values=(value,))


#: JK BMS memory areas (byte addresses): settings 0x1000-0x111B, live data 0x1200-0x130F.
JK_BMS_RANGES: dict[str, list[tuple[int, int]]] = {"holding": [(0x1000, 0x111C), (0x1200, 0x1310)]}


class JkBmsEmulator(EmulatedModbusDevice):
    """JK BMS firmware: reports the :class:`PowerWorld` battery through the JK register map.

    Parameters
    ----------
    profile : DeviceProfile
        The JK BMS profile (``rigs/profiles/jk_bms.yaml``).
    world : PowerWorld
        Source of the battery state.
    clock : Clock
        Time source (fault windows, run time).
    unit_id : int, optional
        Modbus unit id (default 1).
    cell_undervoltage_protection_v, cell_overvoltage_protection_v : float
        Settings reported in the settings block and used to raise the cell alarms.
    discharge_overtemperature_protection_c : float
        Setting above which ``discharge_overtemperature`` is raised.

    Notes
    -----
    Alarm word bits follow the map (BIT4 cell OVP, BIT11 cell UVP, BIT15 discharge OTP,
    BIT21 battery over-temperature alarm, raised 5 degC below the protection).
    """

    def __init__(self, profile: DeviceProfile, world: PowerWorld, clock: _Clockish, unit_id: int = 1,
                 cell_undervoltage_protection_v: float = 2.60,
                 cell_overvoltage_protection_v: float = 3.65,
                 discharge_overtemperature_protection_c: float = 60.0) -> None:
        super().__init__(profile, unit_id, clock, JK_BMS_RANGES)
        self.world = world
        self.uv_v = cell_undervoltage_protection_v
        self.ov_v = cell_overvoltage_protection_v
        self.dot_c = discharge_overtemperature_protection_c
        b = world.battery
        static = {
            "cell_undervoltage_protection_v": self.uv_v,
            "cell_overvoltage_protection_v": self.ov_v,
            "discharge_overtemperature_protection_c": self.dot_c,
            "cell_count": b.cell_count,
            "design_capacity_ah": b.capacity_ah,
            "capacity_full_ah": b.capacity_ah,
            "voltage_correction_factor": 1.0,
            "soh_pct": 100,
            "cells_present": (1 << b.cell_count) - 1,
        }
        for k, v in static.items():
            if k in self._names:
                self.bank.set(k, v)
        self.refresh(clock.now_s())

    def alarm_word(self, now_s: float) -> int:
        """Alarm bits computed from the battery, OR the active ``alarm`` faults' bits."""
        return self._alarm_word(self.world.battery.cell_voltages_v())

    def _alarm_word(self, cells: list[float]) -> int:
        """:meth:`alarm_word` from the cell voltages already computed (V, one per cell)."""
        b = self.world.battery
        bits = 0
        if min(cells) < self.uv_v:
            bits |= 1 << 11
        if max(cells) > self.ov_v:
            bits |= 1 << 4
        if b.temperature_c >= self.dot_c:
            bits |= 1 << 15
        if b.temperature_c >= self.dot_c - 5.0:
            bits |= 1 << 21
        return bits | self.alarm_bits()

    def refresh(self, now_s: float, names: Container[str] | None = None) -> None:
        """Write the present battery state into the live-data block (only ``names``, if given)."""
        b = self.world.battery
        cells = b.cell_voltages_v()
        pack_v = b.terminal_voltage_v
        values: dict[str, object] = {
            "cell_voltage_average_v": sum(cells) / len(cells),
            "cell_voltage_spread_v": max(cells) - min(cells),
            "max_voltage_cell_index": cells.index(max(cells)),
            "min_voltage_cell_index": cells.index(min(cells)),
            "mos_temperature_c": b.temperature_c + 2.0,
            "pack_voltage_v": pack_v,
            "pack_power_w": abs(pack_v * b.current_a),
            "pack_current_a": -b.current_a,
            "battery_temperature_1_c": b.temperature_c,
            "battery_temperature_2_c": b.temperature_c - 0.5,
            "alarms": self._alarm_word(cells),
            "balance_current_a": 0.0,
            "balance_state": 0,
            "soc_pct": round(b.soc * 100.0),
            "capacity_remaining_ah": b.soc * b.capacity_ah,
            "cycle_count": 12,
            "precharge_on": 0,
            "run_time_s": int(max(0.0, now_s)),
            "charge_on": 1,
            "discharge_on": 1,
        }
        for i, cell_v in enumerate(cells):
            values[f"cell_{i:02d}_voltage_v"] = cell_v
        wanted = self._names if names is None else names
        self.bank.set_many([(k, v) for k, v in values.items() if k in wanted])


_PDU_COILS = {
    "valve_rail_enabled": "valve_rail", "radar_power_enabled": "radar_power", "mcu_power_enabled": "mcu_power",
}


class QikiPduEmulator(EmulatedModbusDevice):
    """QIKI PDU firmware: relay coils drive the :class:`PowerWorld` relays; rails reported.

    Parameters
    ----------
    profile : DeviceProfile
        The PDU profile (``rigs/profiles/qiki_pdu.yaml``).
    world : PowerWorld
        Relays and loads.
    clock : Clock
        Time source.
    unit_id : int, optional
        Modbus unit id (default 2).
    """

    def __init__(self, profile: DeviceProfile, world: PowerWorld, clock: _Clockish, unit_id: int = 2) -> None:
        super().__init__(profile, unit_id, clock)
        self.world = world
        self.refresh(clock.now_s())

    def handle_write(self, q: Quantity, value: int | bool) -> int:
        """Coil writes switch the world's relay (absolute setpoint, idempotent)."""
        relay = _PDU_COILS.get(q.name)
        if relay is None:
            return super().handle_write(q, value)
        self.world.set_relay(relay, bool(value))
        self.bank.set(q.name, bool(value))
        return 0

    def refresh(self, now_s: float, names: Container[str] | None = None) -> None:
        """Report relay states and rail measurements (only ``names``, if given)."""
        w = self.world
        bus_v = w.battery.terminal_voltage_v
        amps = w.rail_currents_a()
        values: dict[str, object] = {
            "bus_voltage_v": bus_v,
            "valve_rail_voltage_v": bus_v - 0.05 if w.relay("valve_rail") else 0.0,
            "valve_rail_current_a": amps["valve_rail"],
            "radar_rail_voltage_v": bus_v - 0.05 if w.relay("radar_power") else 0.0,
            "radar_rail_current_a": amps["radar_power"],
            "mcu_rail_voltage_v": bus_v - 0.05 if w.relay("mcu_power") else 0.0,
            "mcu_rail_current_a": amps["mcu_power"],
            "board_temperature_c": 30.0,
            "fault_flags": self.alarm_bits() & 0xFFFF,
            "relay_operations": w.relay_operations,
            "energy_used_wh": w.battery.energy_used_wh,
        }
        for coil, relay in _PDU_COILS.items():
            values[coil] = w.relay(relay)
        wanted = self._names if names is None else names
        self.bank.set_many([(k, v) for k, v in values.items() if k in wanted])
