"""Composition of power: profiles, Modbus links, pollers, the power component.

Part of the composition room (:mod:`controller.rig`). :func:`check` runs every build-time
rule without opening a port; :func:`build` opens the Modbus links (or, on an emulated rig,
the emulated BMS and PDU of :mod:`controller.rig.power_emulation` behind an in-memory
link, a Modbus TCP server on 127.0.0.1 or an RTU pty), starts the pollers and builds
:class:`~controller.components.power.PowerSubsystem`. See
:mod:`controller.components.power` for what power does in the tick.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from controller.components.power import (
    BMS_REQUIRED,
    EMULATED_RTU_URL,
    PDU_REQUIRED,
    PowerSubsystem,
)
from controller.config import (
    BmsDeviceCfg,
    ModbusBusCfg,
    PduDeviceCfg,
    PowerCfg,
    RigCfg,
    load_profile,
)
from controller.errors import ConfigError, opening
from controller.rig.context import BuildContext
from controller.rig.power_emulation import (
    EmulatedPower,
    PowerWorldStepper,
    attach_stepper,
    build_emulated_power,
    open_emulated_link,
)
from firmware_bridge.protocols.modbus_profile import DeviceProfile
from hal.devices.pdu import Pdu
from hal.modbus.poller import ModbusPoller, PolledDevice, PollerPort
from hal.modbus.url import open_link

if TYPE_CHECKING:
    from hal.modbus.link import ModbusLink

__all__ = ["EmulatedPower", "PowerWorldStepper", "build", "build_emulated_power", "check",
           "open_emulated_link", "open_real_link"]

# --------------------------------------------------------------------------- links


def open_real_link(bus: ModbusBusCfg, name: str, bus_name: str) -> ModbusLink:
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


# --------------------------------------------------------------------------- subsystem


def _check_profile(profile: DeviceProfile, required: tuple[str, ...], name: str, key: str) -> None:
    names = set(profile.names)
    missing = [q for q in required if q not in names]
    if missing:
        raise ConfigError(name, key, f"profile {profile.name!r} lacks {', '.join(missing)} (the driver needs them)")


def _check_url(bus: ModbusBusCfg, emulated: bool, name: str, bus_name: str) -> None:
    """Check that the url of a Modbus bus fits the rig (what the link openers refuse, without opening).

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
        quantity the driver needs (:data:`BMS_REQUIRED`, :data:`PDU_REQUIRED`); a bus url
        that does not fit the rig (:func:`_check_url`). (Fault-plan entries naming the
        BMS or PDU are checked by :func:`controller.rig.fault_plan.check`.)
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
    for bus_name in sorted({d.bus for _, d in bms_items + pdu_items}):
        bus = rig.buses[bus_name]
        assert isinstance(bus, ModbusBusCfg)
        _check_url(bus, emu is not None, name, bus_name)
    return profiles


def build(ctx: BuildContext) -> PowerSubsystem | None:
    """Build the power subsystem of a rig, or None when it has no BMS and no PDU.

    Parameters
    ----------
    ctx : controller.rig.context.BuildContext
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
    profiles = dict(check(rig, name, ctx.path))  # the checks of `qiki rig check`

    closers: list[Callable[[], None]] = []
    bus_names = sorted({d.bus for _, d in bms_items + pdu_items})
    replaying = ctx.ingress is not None and ctx.ingress.replaying
    # Real wires are always polled by the worker (never from the tick), even if someone
    # runs a real rig on the lockstep clock; only the memory link is stepped in read.
    threaded = ctx.realtime or rig.emulation is None
    pollers: dict[str, PollerPort] = {}
    links: dict[str, ModbusLink] = {}
    transport: dict[str, str] = {}
    emulated = None
    if replaying:
        assert ctx.ingress is not None  # replaying
        for bus_name in bus_names:
            devices = [n for n, d in bms_items + pdu_items if d.bus == bus_name]
            pollers[bus_name] = ctx.ingress.replay_poller(devices, ctx.clock)
            transport[bus_name] = _transport(rig, bus_name, ctx.realtime)
    else:
        emulated = (build_emulated_power(rig, name, profiles, ctx.io_clock, ctx.faults)
                    if rig.emulation is not None else None)
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
        for bus_name in bus_names:
            devs = [PolledDevice(n, links[bus_name], profiles[n], d.unit_id)
                    for n, d in bms_items + pdu_items if d.bus == bus_name]
            live = ModbusPoller(devs, ctx.io_clock)
            tapped: PollerPort = ctx.ingress.poller(live, ctx.clock) if ctx.ingress is not None else live
            pollers[bus_name] = tapped
    bms = None
    if bms_items:
        n, d = bms_items[0]
        bms = (n, pollers[d.bus], d.cell_count)
    pdu = None
    if pdu_items:
        pdu_name, pdu_dev = pdu_items[0]
        pdu = (pdu_name, Pdu(pollers[pdu_dev.bus], pdu_name))

    stepper = None
    if emulated is not None and ctx.sim is not None:
        stepper = attach_stepper(ctx.sim, emulated, with_pdu=pdu is not None)

    sub = PowerSubsystem(
        limits=rig.power or PowerCfg(), bms=bms, pdu=pdu, pollers=pollers, links=links,
        realtime=threaded, record=ctx.record, transport=transport, closers=closers,
        emulated=emulated, stepper=stepper, control_period_s=1.0 / rig.controller.rate_hz,
    )
    ctx.record(-1, 0.0, "power_buses",
               buses={b: {"url": _modbus_url(rig, b), "transport": transport[b]} for b in bus_names})
    if threaded:
        for poller in pollers.values():
            poller.start()
    return sub


def _transport(rig: RigCfg, bus_name: str, realtime: bool) -> str:
    """Return the transport a live build would have opened for a Modbus bus (a replay's name for it)."""
    bus = rig.buses[bus_name]
    assert isinstance(bus, ModbusBusCfg)
    if rig.emulation is None:
        return urlsplit(bus.url).scheme
    if not realtime:
        return "memory"
    return "rtu" if bus.url == EMULATED_RTU_URL else "tcp"


def _modbus_url(rig: RigCfg, bus_name: str) -> str:
    """Return the url of a Modbus bus of the rig (the family's buses are Modbus by check())."""
    bus = rig.buses[bus_name]
    assert isinstance(bus, ModbusBusCfg)
    return bus.url
