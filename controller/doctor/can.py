"""The SocketCAN checks of one bus, over ``ip -details -statistics -json link show`` and sysfs.

Key names follow iproute2 (``ip/iplink_can.c``: ``linkinfo.info_data.state``,
``berr_counter``, ``restart_ms``, ``bittiming.bitrate``; ``ip/iplink.c``: ``info_xstats``
with ``-statistics``). Rules and fix hints: docs/doctor.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from controller.doctor.host import Host
from controller.doctor.verdict import Verdict
from controller.doctor.verdict import as_int as _int
from controller.doctor.verdict import info as _info

#: ISO 11898-1 fault confinement: error-warning limit and error-passive threshold (counts).
CAN_ERROR_WARNING_N = 96
CAN_ERROR_PASSIVE_N = 128

#: ``txqueuelen`` outside this range is a warning (frames): below, a short burst gets
#: ENOBUFS; above, a stalled bus queues seconds of stale commands (docs/doctor.md).
TXQUEUELEN_RANGE_N = (10, 1000)


def parse_ip_links(text: str | None) -> dict[str, dict[str, object]] | None:
    """Index the output of ``ip -details -json link show`` by interface name.

    Returns
    -------
    dict or None
        ``{ifname: link object}``; None when the text is missing or not the JSON array
        iproute2 prints.
    """
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, list):
        return None
    return {str(d["ifname"]): d for d in data if isinstance(d, dict) and "ifname" in d}


def link_bitrate_bps(link: Mapping[str, object]) -> int | None:
    """Return the configured nominal bitrate of a CAN link (bit/s), or None when not set.

    ``linkinfo.info_data.bittiming.bitrate``; devices with fixed bitrates report it as
    ``info_data.bittiming_bitrate`` (iproute2 ``ip/iplink_can.c``).
    """
    data = _info(link, "info_data")
    bt = data.get("bittiming")
    if isinstance(bt, dict) and _int(bt.get("bitrate")):
        return _int(bt.get("bitrate"))
    return _int(data.get("bittiming_bitrate")) or None


def dbc_bitrate_bps(text: str) -> int | None:
    """Return the network attribute ``BA_ "Baudrate" N;`` of a DBC (bit/s), or None.

    Vector's CANdb++ convention for the bus speed a database was written for.
    """
    m = re.search(r'^\s*BA_\s+"Baudrate"\s+(\d+)\s*;', text, re.MULTILINE)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------------- CAN (SocketCAN)
def check_can_link(bus: str, channel: str, link: Mapping[str, object] | None, host: Host) -> Verdict:
    """Check that the interface exists and is up (``ip`` link flags/operstate, else sysfs ``operstate``)."""
    name = f"{bus}: link {channel}"
    sys_state = host.read_text(host.sys_root / "class" / "net" / channel / "operstate")
    if link is None and sys_state is None:
        return Verdict(name, "fail", f"no network interface {channel}",
                       f"load the CAN driver (Pi: dtoverlay=mcp2515-can0 or mcp251xfd in config.txt; "
                       f"USB: plug the adapter), then `ip link show {channel}`")
    if link is not None:
        flags = link.get("flags")
        flags = flags if isinstance(flags, list) else []
        state = str(link.get("operstate", "?")).upper()
        admin_up = "UP" in flags or state == "UP"
        carrier = state == "UP" or ("LOWER_UP" in flags and "NO-CARRIER" not in flags)
    else:
        state = str(sys_state).upper()
        admin_up = carrier = state == "UP"
    if not admin_up:
        return Verdict(name, "fail", f"{channel} is down (operstate {state})",
                       f"sudo ip link set {channel} up type can bitrate <rig bitrate> restart-ms 100 "
                       "(or enable its systemd-networkd file)")
    if not carrier:
        return Verdict(name, "fail", f"{channel} is up but has no carrier (operstate {state}): bus-off or stopped",
                       "see the controller state below")
    return Verdict(name, "pass", f"{channel} up")


def check_can_bitrate(bus: str, channel: str, link: Mapping[str, object] | None, rig_bps: int,
                      dbc_bps: Mapping[str, int]) -> Verdict:
    """Check that the link's bitrate equals the rig's ``bitrate_bps`` and every DBC's ``Baudrate``."""
    name = f"{bus}: bitrate"
    for dbc, bps in dbc_bps.items():
        if bps != rig_bps:
            return Verdict(name, "fail", f"rig says {rig_bps} bit/s but {dbc} says Baudrate {bps}",
                           f"make buses.{bus}.bitrate_bps and the DBC agree (the DBC describes the network)")
    if link is None:
        return Verdict(name, "skip", f"{channel} absent (see the link check)")
    got = link_bitrate_bps(link)
    src = f" (as {', '.join(dbc_bps)})" if dbc_bps else " (no DBC states a Baudrate)"
    if got is None:
        return Verdict(name, "fail", f"{channel} has no bitrate set",
                       f"sudo ip link set {channel} down; sudo ip link set {channel} type can bitrate {rig_bps}; "
                       f"sudo ip link set {channel} up")
    if got != rig_bps:
        return Verdict(name, "fail", f"{channel} runs at {got} bit/s; the rig says {rig_bps}{src}",
                       f"sudo ip link set {channel} down; sudo ip link set {channel} type can bitrate {rig_bps} "
                       f"restart-ms 100; sudo ip link set {channel} up")
    return Verdict(name, "pass", f"{got} bit/s as the rig says{src}")


def check_can_state(bus: str, channel: str, link: Mapping[str, object] | None) -> Verdict:
    """Judge the controller state (``info_data.state``): ERROR-ACTIVE passes, ERROR-WARNING warns."""
    name = f"{bus}: controller state"
    if link is None:
        return Verdict(name, "skip", f"{channel} absent (see the link check)")
    state = str(_info(link, "info_data").get("state", "")).upper()
    if state == "ERROR-ACTIVE":
        return Verdict(name, "pass", state)
    if not state:
        return Verdict(name, "warn", f"{channel} reports no CAN state (not a SocketCAN CAN device?)",
                       f"ip -details link show {channel}")
    wiring = "check wiring, 120 ohm termination at both ends and that every node uses the same bitrate"
    if state == "ERROR-WARNING":
        return Verdict(name, "warn", f"{state}: error counters above {CAN_ERROR_WARNING_N}", wiring)
    if state == "BUS-OFF":
        return Verdict(name, "fail", "BUS-OFF: the controller left the bus after too many errors",
                       f"{wiring}; then sudo ip link set {channel} type can restart (or set restart-ms)")
    if state == "ERROR-PASSIVE":
        return Verdict(name, "fail", "ERROR-PASSIVE: the vehicle refuses to arm on an error-passive bus", wiring)
    return Verdict(name, "fail", f"{state}: not on the bus", f"sudo ip link set {channel} up")


def check_can_restart(bus: str, channel: str, link: Mapping[str, object] | None) -> Verdict:
    """``restart-ms`` > 0: the kernel restarts the controller after a bus-off by itself."""
    name = f"{bus}: restart-ms"
    if link is None:
        return Verdict(name, "skip", f"{channel} absent (see the link check)")
    ms = _int(_info(link, "info_data").get("restart_ms"))
    if not ms:
        return Verdict(name, "warn", "restart-ms 0: after a bus-off the bus stays off until someone restarts it",
                       f"sudo ip link set {channel} down; sudo ip link set {channel} type can restart-ms 100; "
                       f"sudo ip link set {channel} up (networkd: RestartSec=100ms)")
    return Verdict(name, "pass", f"restart-ms {ms}")


def check_can_errors(bus: str, channel: str, link: Mapping[str, object] | None) -> Verdict:
    """Error counters (``berr_counter``) below the ISO 11898-1 limits; bus-offs since up (``info_xstats``)."""
    name = f"{bus}: error counters"
    if link is None:
        return Verdict(name, "skip", f"{channel} absent (see the link check)")
    bc = _info(link, "info_data").get("berr_counter")
    tx = _int(bc.get("tx")) if isinstance(bc, dict) else None
    rx = _int(bc.get("rx")) if isinstance(bc, dict) else None
    xs = _info(link, "info_xstats")
    bus_off, restarts = _int(xs.get("bus_off")), _int(xs.get("restarts"))
    parts = [f"tx {tx} rx {rx}" if tx is not None else "counters not reported"]
    if bus_off is not None:
        parts.append(f"{bus_off} bus-off, {restarts or 0} restarts since up")
    detail = "; ".join(parts)
    worst = max(tx or 0, rx or 0)
    hint = "check wiring, termination and bitrate of every node; the counters fall with error-free traffic"
    if worst >= CAN_ERROR_PASSIVE_N:
        return Verdict(name, "fail", f"{detail} (>= {CAN_ERROR_PASSIVE_N}: error-passive)", hint)
    if worst >= CAN_ERROR_WARNING_N:
        return Verdict(name, "warn", f"{detail} (>= {CAN_ERROR_WARNING_N}: error-warning)", hint)
    if bus_off:
        return Verdict(name, "warn", detail, f"{hint}; find out why it went bus-off (dmesg)")
    return Verdict(name, "pass", detail)


def check_can_txqueuelen(bus: str, channel: str, link: Mapping[str, object] | None, host: Host) -> Verdict:
    """``txqueuelen`` within :data:`TXQUEUELEN_RANGE_N` (``ip`` ``txqlen``, else sysfs ``tx_queue_len``)."""
    name = f"{bus}: txqueuelen"
    n = _int(link.get("txqlen")) if link is not None else None
    if n is None:
        n = _int(host.read_text(host.sys_root / "class" / "net" / channel / "tx_queue_len"))
    if n is None:
        return Verdict(name, "skip", f"{channel} absent (see the link check)")
    lo, hi = TXQUEUELEN_RANGE_N
    fix = f"sudo ip link set {channel} txqueuelen 100"
    if n < lo:
        return Verdict(name, "warn", f"txqueuelen {n} < {lo}: a short burst gets ENOBUFS", fix)
    if n > hi:
        return Verdict(name, "warn", f"txqueuelen {n} > {hi}: a stalled bus queues seconds of stale commands", fix)
    return Verdict(name, "pass", f"txqueuelen {n}")


def can_checks(bus: str, channel: str, host: Host, links: Mapping[str, Mapping[str, object]] | None,
               rig_bps: int, dbc_bps: Mapping[str, int]) -> list[Verdict]:
    """Every SocketCAN check of one bus, in table order."""
    link = links.get(channel) if links is not None else None
    return [check_can_link(bus, channel, link, host), check_can_bitrate(bus, channel, link, rig_bps, dbc_bps),
            check_can_state(bus, channel, link), check_can_restart(bus, channel, link),
            check_can_errors(bus, channel, link), check_can_txqueuelen(bus, channel, link, host)]
