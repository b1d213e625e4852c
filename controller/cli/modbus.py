"""``qiki modbus read --rig RIG DEVICE [QUANTITY ...]``: live values for field debugging.

Reads the named quantities (default: all in the device's profile) of one Modbus device of
a rig, once, and prints ``name = value unit`` lines (or ``name: FAILED kind detail``).

* On a rig without ``emulation`` the device's bus is opened from its url
  (``tcp://HOST:PORT``, ``rtu:///dev/ttyUSB0?baudrate=115200``) with the bus's finite
  ``timeout_s``; nothing is written.
* On an emulated rig the emulated devices are started in-process from the rig's
  ``emulation`` block (battery, power faults) and read: ``memory://`` buses through the
  in-memory link, ``rtu://emulated`` through a pymodbus RTU server on a pty pair and the
  RTU client (real frames), torn down before returning.

Exit status: 0 every quantity read, 1 some read failed (timeout, exception response,
wrong unit, CRC), 2 bad input (unknown rig/device/quantity, not a Modbus device, bad
profile or url): one line on stderr, raised here as ``ConfigError``/``BusConfigError``
and printed by :func:`controller.cli.main`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from controller.errors import ConfigError


def _modbus_devices(rig: Any) -> dict[str, Any]:
    from controller.config import BmsDeviceCfg, PduDeviceCfg

    return {n: d for n, d in rig.devices.items() if isinstance(d, (BmsDeviceCfg, PduDeviceCfg))}


def read_device(rig_path: str, device: str, quantities: list[str] | None = None,
                timeout_s: float | None = None) -> tuple[Any, Any, list[str] | None]:
    """Read quantities of one Modbus device of a rig, once.

    Parameters
    ----------
    rig_path : str
        Rig YAML (looked up like ``qiki run --rig``).
    device : str
        Device name in the rig (``bms``, ``pdu``).
    quantities : list of str, optional
        Quantity names of the device's profile (default: all).
    timeout_s : float, optional
        Reply timeout per transaction (s); default the bus's ``timeout_s``.

    Returns
    -------
    (profile, readings, names)
        The device's :class:`DeviceProfile`, the :class:`controller.tools.modbus_read.Readings`
        and the names asked for (None: all).

    Raises
    ------
    ConfigError
        Unknown device or quantity, not a Modbus device, bad profile or url.
    BusConfigError, ProtocolError
        The link or the emulator server cannot be opened.
    """
    from controller.clock import MonotonicClock
    from controller.components.power import EMULATED_RTU_URL
    from controller.config import load_profile, load_rig
    from controller.rig.power import build_emulated_power, open_emulated_link, open_real_link
    from controller.tools.modbus_read import read_quantities

    rig, path = load_rig(rig_path)
    devices = _modbus_devices(rig)
    if device not in devices:
        known = ", ".join(sorted(devices)) or "none"
        raise ConfigError(rig_path, "devices", f"no Modbus device {device!r} (Modbus devices: {known})")
    dev = devices[device]
    bus = rig.buses[dev.bus]
    if bus.kind != "modbus":
        raise ConfigError(rig_path, f"devices.{device}.bus", f"bus {dev.bus!r} is not a modbus bus")
    profile = load_profile(dev.profile, path)
    names = list(quantities) if quantities else None
    if names:
        unknown = [q for q in names if q not in set(profile.names)]
        if unknown:
            raise ConfigError(str(dev.profile), "quantities",
                              f"unknown quantity {', '.join(map(repr, unknown))} (known: {', '.join(profile.names)})")
    timeout = float(timeout_s) if timeout_s is not None else bus.timeout_s
    if timeout <= 0:
        raise ConfigError(rig_path, "--timeout", "must be > 0")
    closers: list[Any] = []
    try:
        if rig.emulation is None:
            link = open_real_link(bus.model_copy(update={"timeout_s": timeout}), rig_path, dev.bus)
            closers.append(link.close)
        else:
            profiles = {n: load_profile(d.profile, path) for n, d in devices.items()}
            emulated = build_emulated_power(rig, rig_path, profiles, MonotonicClock())
            # memory:// in-process; rtu://emulated over a pty, so real RTU frames are read
            link, _, opened = open_emulated_link(bus, emulated.responders.get(dev.bus, {}), rig_path, dev.bus,
                                                 over_wire=bus.url == EMULATED_RTU_URL, timeout_s=timeout)
            closers += opened
        readings = read_quantities(link, profile, dev.unit_id, names)
    finally:
        for c in reversed(closers):
            try:
                c()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
    return profile, readings, names


def _cmd_modbus_read(args: argparse.Namespace) -> int:
    from controller.tools.modbus_read import format_readings

    profile, readings, names = read_device(args.rig, args.device, args.quantity, args.timeout)
    if args.json:
        out = {
            "device": args.device,
            "values": readings.values,
            "failures": {k: {"kind": f.kind, "exception_code": f.exception_code, "detail": f.detail}
                         for k, f in readings.failures.items()},
        }
        print(json.dumps(out, sort_keys=True))
    else:
        for line in format_readings(profile, readings, names):
            print(line)
    return 0 if readings.ok else 1


def add_parser(subparsers: Any) -> None:
    """Add ``qiki modbus read`` to the ``qiki`` subcommands.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``qiki`` parser's subcommands.
    """
    modbus = subparsers.add_parser("modbus", help="Modbus devices (BMS, PDU)").add_subparsers(
        dest="modbus_command", required=True)
    r = modbus.add_parser("read", help="read live values of one Modbus device of a rig, once")
    r.add_argument("--rig", default="rigs/virtual.yaml", help="rig YAML (default: rigs/virtual.yaml)")
    r.add_argument("device", help="device name in the rig (e.g. bms, pdu)")
    r.add_argument("quantity", nargs="*", help="quantities of the device's profile (default: all)")
    r.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="reply timeout per transaction in s (default: the bus's timeout_s)")
    r.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    r.set_defaults(func=_cmd_modbus_read)
