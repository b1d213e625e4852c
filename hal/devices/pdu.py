"""QIKI PDU driver: relay commands with read-back, rail state, POST.

Relays are commanded through :meth:`ModbusPoller.submit_write` (never blocks the tick;
the poller writes the coil once -- no retries -- and reads it back). Their state is read
from the poller snapshot (profile ``rigs/profiles/qiki_pdu.yaml``).

Relay names: ``valve_rail``, ``radar_power``, ``mcu_power``. ``arm`` closes the valve
rail and must see the read-back before ``armed`` counts as reached; ``disarm``,
``safe_mode`` and ``estop`` open it (ARCHITECTURE.md section 4).
"""

from __future__ import annotations

from collections.abc import Mapping

from hal.devices.bms import PostReport, non_finite_reason
from hal.modbus.poller import DeviceSnapshot, PollerPort, Ticket

RELAY_QUANTITIES: dict[str, str] = {
    "valve_rail": "valve_rail_enabled",
    "radar_power": "radar_power_enabled",
    "mcu_power": "mcu_power_enabled",
}


class Pdu:
    """Front end of the PDU on a poller.

    Parameters
    ----------
    poller : PollerPort
        The poller the PDU is registered on.
    device : str, optional
        Its device name there (default ``pdu``).

    Attributes
    ----------
    relay_operations : int
        Relay commands submitted (for ``summary.json``).
    """

    def __init__(self, poller: PollerPort, device: str = "pdu") -> None:
        self.poller = poller
        self.device = device
        self.relay_operations = 0

    def request_relay(self, relay: str, closed: bool) -> Ticket:
        """Command a relay closed (True) or open; returns at once with a ticket.

        The ticket's ``done`` is set after the write and its read-back; ``ok`` tells
        whether the relay is confirmed in the requested state. Per-tick safe.

        Raises
        ------
        KeyError
            Unknown relay name.
        """
        ticket = self.poller.submit_write(self.device, RELAY_QUANTITIES[relay], bool(closed))
        self.relay_operations += 1
        return ticket

    def snapshot(self) -> DeviceSnapshot:
        """Latest PDU snapshot. Per-tick function."""
        return self.poller.snapshot(self.device)

    def relay_state(self, relay: str, now_s: float | None = None) -> bool | None:
        """Relay state from the latest fresh poll; None if unknown or stale. Per-tick function.

        Parameters
        ----------
        relay : str
            ``valve_rail``, ``radar_power`` or ``mcu_power``.
        now_s : float, optional
            Present clock time (s); when given, stale data gives None.

        Raises
        ------
        KeyError
            Unknown relay name.
        """
        snap = self.snapshot()
        if not snap.values or (now_s is not None and not snap.is_fresh(now_s)):
            return None
        value = snap.values.get(RELAY_QUANTITIES[relay])
        return None if value is None else bool(value)


def _freshness_reason(snapshot: DeviceSnapshot, now_s: float | None) -> str:
    if not snapshot.values or snapshot.sample_time_s is None:
        last = f" (last failure: {snapshot.last_failure.kind})" if snapshot.last_failure else ""
        return f"PDU: no data{last}"
    if now_s is not None and not snapshot.is_fresh(now_s):
        return f"PDU: data stale (last good poll {snapshot.age_s(now_s):.2f} s ago)"
    return non_finite_reason("PDU", snapshot.values)


def _fault_flags_reason(values: Mapping[str, object]) -> str:
    flags = values.get("fault_flags")
    if isinstance(flags, dict) and flags.get("raw"):
        names = [k for k, on in flags.items() if k != "raw" and on is True] or [f"raw {flags['raw']:#06x}"]
        return f"PDU fault flags: {', '.join(names)}"
    return ""


def pdu_health(snapshot: DeviceSnapshot, now_s: float) -> str | None:
    """Why the PDU is not healthy (stale or missing data, a fault flag), or None. Per-tick function.

    Parameters
    ----------
    snapshot : DeviceSnapshot
        The PDU snapshot (profile ``qiki_pdu``).
    now_s : float
        Present clock time (s), for the freshness check (SAFETY.md D10).

    Returns
    -------
    str or None
        ``PDU: no data ...``, ``PDU: data stale (last good poll X s ago)`` or
        ``PDU: reply refused: <quantity> is nan`` (an ``f32`` that decoded to NaN or
        infinity) or ``PDU fault flags: <names>``; None when fresh and no flag is set.
    """
    return _freshness_reason(snapshot, now_s) or _fault_flags_reason(snapshot.values) or None


def pdu_post_report(snapshot: DeviceSnapshot, now_s: float | None = None) -> PostReport:
    """POST of the PDU: present, no fault flag, MCU powered, valve rail open.

    Parameters
    ----------
    snapshot : DeviceSnapshot
        The PDU snapshot after at least one poll attempt.
    now_s : float, optional
        Present clock time for the freshness check.

    Returns
    -------
    PostReport
        ``ok`` and the reasons (SAFETY.md D07: the report names the board and the reason).
    """
    why = _freshness_reason(snapshot, now_s)
    if why:
        return PostReport("pdu", False, (why,))
    v = snapshot.values
    reasons: list[str] = []
    flags = _fault_flags_reason(v)
    if flags:
        reasons.append(flags)
    if v.get("mcu_power_enabled") is False:
        reasons.append("PDU: MCU relay open")
    if v.get("valve_rail_enabled") is True:
        reasons.append("PDU: valve rail closed at POST (must be open before arming)")
    details = {k: v[k] for k in ("bus_voltage_v", "valve_rail_enabled") if k in v}
    return PostReport("pdu", not reasons, tuple(reasons), details)
