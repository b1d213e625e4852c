"""What the doctor asks of the live machine: the timer-jitter probe and the device answers.

Each probe has a finite timeout and returns a plain result that a pure check of
:mod:`controller.doctor.checks` judges. The devices are asked with the project's own
drivers: the MCU's HELLO through :class:`hal.devices.qiki_mcu.McuDriver`, the Modbus
devices through the rig's link (:func:`controller.rig.power.open_real_link`) and the
device profile's read plan, block by block as ``qiki modbus read`` does
(:func:`controller.tools.modbus_read.read_quantities`; not imported: ``qiki run`` runs the
doctor, and the runtime imports no field tool, pyproject.toml's import contracts).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from controller.doctor.checks import JitterResult
from hal.errors import one_line

if TYPE_CHECKING:
    from controller.config import McuDeviceCfg, ModbusBusCfg, RealtimeKnobsCfg, SerialBusCfg

log = logging.getLogger(__name__)

#: Longest the MCU has to answer HELLO_REQUEST (s); HELLO is asked again every 0.1 s.
HELLO_TIMEOUT_S = 0.5


def jitter_probe(rate_hz: float, probe_s: float, knobs: RealtimeKnobsCfg | None = None) -> JitterResult:
    """Run the project's own loop (:class:`~controller.loop.FixedRateLoop`) empty on the monotonic clock.

    Parameters
    ----------
    rate_hz : float
        The rig's ``controller.rate_hz`` (Hz).
    probe_s : float
        How long (s), > 0; ``qiki doctor`` default 10.
    knobs : RealtimeKnobsCfg, optional
        The rig's real-time knobs, applied for the probe and restored after (a knob the OS
        refuses is named in :attr:`JitterResult.knobs`); None: none applied.

    Returns
    -------
    JitterResult
        Period error percentiles (us) from :class:`~controller.loop.LatencyHistogram`.
    """
    from controller.clock import MonotonicClock
    from controller.loop import FixedRateLoop
    from controller.rt_knobs import apply_realtime_knobs

    report = apply_realtime_knobs(knobs) if knobs is not None else None
    try:
        loop = FixedRateLoop(MonotonicClock(), rate_hz)
        n = max(1, int(round(probe_s * rate_hz)))
        stats = loop.run(lambda k, now_s, dt_s: True, max_ticks=n)
    finally:
        if report is not None:
            report.restore()
    pct = stats.period_error_hist.percentiles((0.5, 0.99))
    if report is None:
        knob_text = "no real-time knobs"
    else:
        asked = [k for k, o in report.knobs.items() if o.asked not in (None, False)]
        refused = report.refused
        knob_text = ("knobs " + ", ".join(f"{k} {'refused: ' + refused[k] if k in refused else 'applied'}"
                                          for k in asked)) if asked else "the rig asks no real-time knobs"
    return JitterResult(rate_hz=rate_hz, probe_s=probe_s, ticks=stats.ticks, p50_us=float(pct["p50"] or 0.0),
                        p99_us=float(pct["p99"] or 0.0), max_us=float(pct["max"] or 0.0),
                        overruns=stats.overruns, knobs=knob_text)


def mcu_hello(bus: SerialBusCfg, dev: McuDeviceCfg, name: str,
              timeout_s: float = HELLO_TIMEOUT_S) -> tuple[bool, str]:
    """Ask the MCU for HELLO over its serial port; judge protocol and firmware as POST does.

    Parameters
    ----------
    bus, dev : the MCU's bus and device entries of the rig
    name : str
        Device name (for the detail).
    timeout_s : float, optional
        Longest wait for HELLO (s).

    Returns
    -------
    (answered, detail)
        True with the firmware, protocol and serial; False with why (port, silence,
        protocol, firmware). Never raises for a port or wire problem.
    """
    from firmware_bridge.protocols import qiki_mcu as proto
    from hal.devices.qiki_mcu import McuDriver, firmware_accepted
    from hal.errors import HalError
    from hal.serial.link import PySerialLink

    try:
        link = PySerialLink(bus.url, bus.baudrate, write_timeout_s=bus.write_timeout_s)
    except HalError as exc:
        return False, f"{bus.url}: cannot open: {one_line(exc)}"
    try:
        drv = McuDriver(link, name=name)
        t0 = time.monotonic()
        next_ask = t0
        while drv.hello is None:
            now = time.monotonic()
            if now - t0 > timeout_s:
                return False, f"no HELLO within {timeout_s:g} s (board absent, unpowered, wrong baud rate)"
            if now >= next_ask:
                drv.request_hello()
                next_ask = now + 0.1
            drv.poll(now - t0)
            time.sleep(0.005)
        h = drv.hello
        fw = "{}.{}.{}".format(*h.firmware_version)
        if h.protocol_version != proto.PROTOCOL_VERSION:
            return False, f"protocol version {h.protocol_version}, host speaks {proto.PROTOCOL_VERSION}"
        if not firmware_accepted(h.firmware_version, dev.accepted_firmware):
            return False, f"firmware {fw} not accepted ({dev.accepted_firmware})"
        return True, f"HELLO: firmware {fw}, protocol {h.protocol_version}, serial 0x{h.board_serial:08X}"
    finally:
        link.close()


def modbus_answer(bus: ModbusBusCfg, bus_name: str, rig_path: Path, profile_name: str,
                  unit_id: int) -> tuple[bool, str]:
    """Read every quantity of one Modbus device once (bus ``timeout_s`` per transaction).

    Returns
    -------
    (answered, detail)
        True with the number of quantities read; False with the first failure. Never
        raises for a link or wire problem.
    """
    from controller.config import load_profile
    from controller.errors import ControllerError
    from controller.rig.power import open_real_link
    from firmware_bridge.errors import ProtocolError
    from firmware_bridge.protocols.modbus_profile import decode_block, plan_reads
    from hal.errors import HalError
    from hal.modbus.link import ModbusFailure

    try:
        profile = load_profile(profile_name, rig_path)
        link = open_real_link(bus, str(rig_path), bus_name)
    except (ControllerError, HalError, ProtocolError) as exc:
        return False, f"{bus.url}: cannot open: {one_line(exc)}"
    n = 0
    try:
        for block in plan_reads(profile, None):
            if block.table in ("coil", "discrete"):
                res = link.read_bits(block.table, block.address, block.count, unit_id)
            else:
                res = link.read_registers(block.table, block.address, block.count, unit_id)
            if isinstance(res, ModbusFailure):
                what = block.members[0][0].name if block.members else f"{block.table} {block.address}"
                return False, f"unit {unit_id}: {what}: {res.kind} {res.detail}".rstrip()
            n += len(decode_block(block, res))
    except (HalError, ProtocolError) as exc:
        return False, f"unit {unit_id}: {one_line(exc)}"
    finally:
        try:
            link.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
    return True, f"unit {unit_id}: {n} quantities read"
