"""JK BMS driver: battery state, POST and arming checks from a poller snapshot.

Everything here is a pure function of a :class:`~hal.modbus.poller.DeviceSnapshot` (no
bus I/O, cheap enough for every tick): the poller owns the bus. Quantity names are those
of ``rigs/profiles/jk_bms.yaml`` (register map JK_BMS_RS485_Modbus_V1.1).

Rules:

* SAFETY.md O01: ``arm`` is refused, with the reason, when the BMS data is stale or
  missing, an alarm bit is set, or SoC is below the rig minimum.
* SAFETY.md D07/D11: POST fails naming the reason when the BMS is absent, answers
  configuration-type exceptions (illegal function/address/value: the profile does not
  match the device), reports another cell count than the rig's, or has an alarm.
* SAFETY.md D10: during a mission, stale battery data, low SoC or over-temperature is a
  ``fault``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from firmware_bridge.protocols.modbus_profile import Value
from hal.modbus.poller import DeviceSnapshot

#: Modbus exception codes meaning "this request does not fit this device" (spec section 7).
CONFIG_EXCEPTION_CODES: dict[int, str] = {1: "illegal function", 2: "illegal data address", 3: "illegal data value"}


@dataclass(frozen=True)
class BmsReading:
    """Battery state decoded from a JK BMS snapshot.

    Attributes
    ----------
    soc_pct : float
        State of charge (%).
    pack_voltage_v : float
        Pack voltage (V).
    pack_current_a : float
        Pack current (A), JK sign convention: positive charging, negative discharging.
    cell_voltages_v : tuple of float
        The first ``cell_count`` cell voltages (V).
    cell_count : int
        Cells in series, from the BMS settings.
    max_temperature_c : float
        Hottest of the battery and MOS sensors (degC).
    alarm_word : int
        Raw alarm word (0 = none).
    alarms : tuple of str
        Names of the set alarm bits (unnamed bits as ``bit<N>``).
    """

    soc_pct: float
    pack_voltage_v: float
    pack_current_a: float
    cell_voltages_v: tuple[float, ...]
    cell_count: int
    max_temperature_c: float
    alarm_word: int
    alarms: tuple[str, ...] = field(default_factory=tuple)


def _alarm_names(alarms: Mapping[str, int | bool]) -> tuple[str, ...]:
    """Names of the set alarm bits; bits without a profile name are summarised by raw word."""
    raw = int(alarms.get("raw", 0))
    names = [k for k, v in alarms.items() if k != "raw" and v is True]
    if bin(raw).count("1") > len(names):
        names.append(f"unnamed alarm bits (raw {raw:#010x})")
    return tuple(names)


def _numbers(values: Mapping[str, Value]) -> dict[str, float]:
    """Keep the scalar quantities of a snapshot (a bitfield decodes to a dict: left out)."""
    return {k: x for k, x in values.items() if not isinstance(x, dict)}


def non_finite_reason(label: str, values: Mapping[str, Value]) -> str:
    """Why a reply must be refused for a non-finite number, or "" when every number is finite.

    An ``f32`` register pair can decode to NaN or infinity (a corrupted or uninitialised
    register, a wrong word order); such a value compares false with every limit, so a
    snapshot holding one is refused as a whole (issue 15 part 6).

    Parameters
    ----------
    label : str
        Device label for the message, e.g. ``"PDU"`` or ``"BMS"``.
    values : mapping of str to value
        The snapshot's physical values (bitfields, which decode to dicts, are skipped).

    Returns
    -------
    str
        ``"<label>: reply refused: <quantity> is nan"`` for the first non-finite quantity
        (in the snapshot's order), "" when there is none.
    """
    for name, x in values.items():
        if isinstance(x, float) and not math.isfinite(x):
            return f"{label}: reply refused: {name} is {x!r}"
    return ""


def bms_reading(snapshot: DeviceSnapshot) -> BmsReading | None:
    """Decode a JK BMS snapshot into a :class:`BmsReading` (None before the first poll).

    Parameters
    ----------
    snapshot : DeviceSnapshot
        The poller's snapshot of the BMS (profile ``jk_bms``).

    Returns
    -------
    BmsReading or None
        None if the snapshot holds no values yet.

    Raises
    ------
    KeyError
        The snapshot lacks a quantity this driver needs (profile mismatch).
    """
    values = snapshot.values
    if not values:
        return None
    v = _numbers(values)
    n = int(v["cell_count"])
    cells = tuple(float(v[f"cell_{i:02d}_voltage_v"]) for i in range(min(n, 16)))
    temps = [float(v[k]) for k in ("battery_temperature_1_c", "battery_temperature_2_c", "mos_temperature_c") if k in v]
    alarms = values["alarms"]
    assert isinstance(alarms, dict)
    return BmsReading(
        soc_pct=float(v["soc_pct"]), pack_voltage_v=float(v["pack_voltage_v"]),
        pack_current_a=float(v["pack_current_a"]), cell_voltages_v=cells, cell_count=n,
        max_temperature_c=max(temps) if temps else float("nan"),
        alarm_word=int(alarms["raw"]), alarms=_alarm_names(alarms),
    )


def bms_freshness_reason(snapshot: DeviceSnapshot, now_s: float | None) -> str:
    """Why the BMS data may not be used (SAFETY.md D10), or "" if it may. Per-tick function.

    Parameters
    ----------
    snapshot : DeviceSnapshot
        The BMS snapshot.
    now_s : float or None
        Present clock time (s); None judges only the failed-poll count, not the age.

    Returns
    -------
    str
        ``BMS: no data ...`` (no good poll yet), ``BMS: data stale (N failed polls)`` or
        ``BMS: data stale (last good poll X s ago)``, ``BMS: reply refused: <quantity> is
        nan`` (a non-finite number, :func:`non_finite_reason`); "" when fresh.
    """
    if not snapshot.values or snapshot.sample_time_s is None:
        last = f" (last failure: {snapshot.last_failure.kind})" if snapshot.last_failure else ""
        return f"BMS: no data{last}"
    if snapshot.consecutive_failures >= snapshot.stale_after_polls:
        return f"BMS: data stale ({snapshot.consecutive_failures} failed polls)"
    bad = non_finite_reason("BMS", snapshot.values)
    if bad:
        return bad
    if now_s is not None and not snapshot.is_fresh(now_s):
        return f"BMS: data stale (last good poll {snapshot.age_s(now_s):.2f} s ago)"
    return ""


def bms_arming_check(snapshot: DeviceSnapshot, min_soc_pct: float, now_s: float | None = None) -> tuple[bool, str]:
    """Tell whether the vehicle may arm, as far as the battery is concerned (SAFETY.md O01).

    Parameters
    ----------
    snapshot : DeviceSnapshot
        The BMS snapshot.
    min_soc_pct : float
        The rig's minimum state of charge to arm (%).
    now_s : float, optional
        Present clock time; when given, data older than the profile's stale limit is
        refused too (the FSM guard should always pass it).

    Returns
    -------
    ok : bool
        True if arming is allowed.
    reason : str
        Why not, one line (empty when ok): stale/missing data, active alarms by name,
        or ``SoC 12 % below minimum 30 %``.
    """
    why = bms_freshness_reason(snapshot, now_s)
    if why:
        return False, why
    r = bms_reading(snapshot)
    assert r is not None
    if r.alarm_word:
        return False, f"BMS alarm active: {', '.join(r.alarms)}"
    if r.soc_pct < min_soc_pct:
        return False, f"BMS: SoC {r.soc_pct:.0f} % below minimum {min_soc_pct:.0f} %"
    return True, ""


@dataclass(frozen=True)
class PostReport:
    """Result of a power-on self test of one device.

    Attributes
    ----------
    device : str
        Device name.
    ok : bool
        True when every check passed.
    reasons : tuple of str
        Failed checks, one line each, naming the device.
    details : dict
        Values checked (for the run record).
    """

    device: str
    ok: bool
    reasons: tuple[str, ...] = ()
    details: Mapping[str, object] = field(default_factory=dict)


def bms_post_report(snapshot: DeviceSnapshot, expected_cell_count: int, now_s: float | None = None) -> PostReport:
    """POST of the BMS: present, profile fits, cell count as the rig says, no alarm.

    Parameters
    ----------
    snapshot : DeviceSnapshot
        The BMS snapshot after at least one poll attempt.
    expected_cell_count : int
        Cells in series the rig declares.
    now_s : float, optional
        Present clock time for the freshness check.

    Returns
    -------
    PostReport
        ``ok`` and the reasons (SAFETY.md D07, D11).
    """
    reasons: list[str] = []
    lf = snapshot.last_failure
    if lf is not None and lf.kind == "exception" and lf.exception_code in CONFIG_EXCEPTION_CODES:
        reasons.append(
            f"BMS: exception {lf.exception_code} ({CONFIG_EXCEPTION_CODES[lf.exception_code]}): "
            "the profile does not match the device"
        )
    why = bms_freshness_reason(snapshot, now_s)
    if why:
        reasons.append(why)
        return PostReport("bms", False, tuple(reasons))
    r = bms_reading(snapshot)
    assert r is not None
    details = {"cell_count": r.cell_count, "soc_pct": r.soc_pct, "pack_voltage_v": r.pack_voltage_v,
               "alarm_word": r.alarm_word, "max_temperature_c": r.max_temperature_c}
    if r.cell_count != expected_cell_count:
        reasons.append(f"BMS: cell count {r.cell_count}, rig expects {expected_cell_count}")
    present = snapshot.values.get("cells_present")
    if isinstance(present, dict):
        n_present = bin(int(present["raw"])).count("1")
        details["cells_present"] = n_present
        if n_present != expected_cell_count:
            reasons.append(f"BMS: {n_present} cells present, rig expects {expected_cell_count}")
    if r.alarm_word:
        reasons.append(f"BMS alarm active: {', '.join(r.alarms)}")
    if r.cell_voltages_v and min(r.cell_voltages_v) <= 0.0:
        reasons.append("BMS: a cell reads 0 V (sense wire open?)")
    return PostReport("bms", not reasons, tuple(reasons), details)


def bms_mission_fault(snapshot: DeviceSnapshot, now_s: float, min_soc_pct: float,
                      max_temperature_c: float) -> str | None:
    """Battery condition that must raise ``fault`` during a mission, or None. Per-tick function.

    Parameters
    ----------
    snapshot : DeviceSnapshot
        The BMS snapshot.
    now_s : float
        Present clock time.
    min_soc_pct : float
        SoC below which the mission stops (%).
    max_temperature_c : float
        Battery/MOS temperature above which the mission stops (degC).

    Returns
    -------
    str or None
        The reason (stale data, alarm, low SoC, over-temperature), or None if healthy.
    """
    why = bms_freshness_reason(snapshot, now_s)
    if why:
        return why
    r = bms_reading(snapshot)
    assert r is not None
    if r.alarm_word:
        return f"BMS alarm active: {', '.join(r.alarms)}"
    if r.soc_pct < min_soc_pct:
        return f"BMS: low battery, SoC {r.soc_pct:.0f} % below {min_soc_pct:.0f} %"
    if r.max_temperature_c > max_temperature_c:
        return f"BMS: over-temperature {r.max_temperature_c:.1f} degC above {max_temperature_c:.1f} degC"
    return None
