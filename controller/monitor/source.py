"""Where the monitor's frames come from (a bus opened listen-only, or a log) and where they go.

Listen-only, enforced twice
---------------------------
1. In software, always: the bus is wrapped in a :class:`ListenOnlyBus`, whose ``send``
   and ``send_periodic`` raise :class:`ListenOnlyError` before anything reaches the
   adapter. The monitor's code never calls them; the wrapper makes a mistake loud.
2. At the adapter, where python-can can ask for it (:data:`LISTEN_ONLY_OPTIONS`): the
   controller then neither sends frames nor acknowledges (ACK) or flags (error frames)
   anyone else's. python-can 4.6:

   ==============  =============================================  ============================
   interface       option passed to ``can.Bus``                   effect
   ==============  =============================================  ============================
   ``slcan``       ``listen_only=True``                           opens with ``L``, not ``O``
   ``qiki_slcan``  ``listen_only=True``                           opens with ``L``, not ``O``
   ``pcan``        ``state=can.BusState.PASSIVE``                 ``PCAN_LISTEN_ONLY`` on
   ``kvaser``      ``driver_mode=False``                          ``canDRIVER_SILENT``
   ``vector``      ``listen_only=True``                           ``XL_OUTPUT_MODE_SILENT``
   ``cantact``     ``monitor=True``                               monitor mode
   ``nixnet``      ``listen_only=True``                           ``can_lstn_only``
   ``systec``      ``state=can.BusState.PASSIVE``                 ``MODE_LISTEN_ONLY``
   ``seeedstudio`` ``operation_mode="silent"``                    silent mode
   ==============  =============================================  ============================

   ``socketcan`` is configured outside the process: ``ip link set can0 type can bitrate
   500000 listen-only on`` (the monitor cannot set it; it reports the mode as software
   only). ``virtual``, ``gs_usb`` (candleLight CANable firmware) and the others have no
   listen-only switch in python-can: software only.

A listen-only adapter does not acknowledge frames: on a bench with the sender and the
monitor alone on the bus, the sender sees ACK errors. Use ``--no-adapter-listen-only``
there (the monitor still never sends).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import can

from controller.record.flight import FlightRecorder
from controller.record.flight_log import SCHEMAS
from controller.record.taps import frame_fields
from hal.can.bus import open_can_bus
from hal.can.replay import iter_can_log
from hal.errors import BusConfigError, one_line

__all__ = ["LISTEN_ONLY_OPTIONS", "ListenOnlyError", "ListenOnlyBus", "open_listen_only", "LogSource",
           "CanLogSink", "McapSink", "LOG_SUFFIXES"]

logger = logging.getLogger(__name__)

#: python-can options that make an adapter listen-only (see the module docstring).
LISTEN_ONLY_OPTIONS: Mapping[str, Mapping[str, object]] = {
    "slcan": {"listen_only": True},
    "qiki_slcan": {"listen_only": True},
    "pcan": {"state": can.BusState.PASSIVE},
    "kvaser": {"driver_mode": False},
    "vector": {"listen_only": True},
    "cantact": {"monitor": True},
    "nixnet": {"listen_only": True},
    "systec": {"state": can.BusState.PASSIVE},
    "seeedstudio": {"operation_mode": "silent"},
}

#: File suffixes ``--log`` writes (python-can's :class:`can.Logger`; ``.gz`` may follow).
LOG_SUFFIXES = (".asc", ".blf", ".log", ".trc", ".csv", ".db", ".mf4", ".txt")


class ListenOnlyError(can.CanOperationError):
    """The monitor (or code handed its bus) tried to transmit."""


class ListenOnlyBus(can.BusABC):
    """A python-can bus that receives and never transmits.

    Parameters
    ----------
    inner : can.BusABC
        The opened bus.

    Attributes
    ----------
    send_attempts : int
        Calls of :meth:`send` / :meth:`send_periodic` refused (0 in a correct monitor).
    """

    def __init__(self, inner: can.BusABC) -> None:
        super().__init__(channel=getattr(inner, "channel_info", "listen-only"))
        self._inner = inner
        self.channel_info = f"{getattr(inner, 'channel_info', '?')} (listen-only)"
        self.send_attempts = 0

    def recv(self, timeout: float | None = None) -> can.Message | None:
        """Receive one frame from the inner bus (None on timeout)."""
        return self._inner.recv(timeout=timeout)

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        """Refuse: the monitor never transmits.

        Raises
        ------
        ListenOnlyError
            Always.
        """
        self.send_attempts += 1
        raise ListenOnlyError(f"listen-only bus: refused to send 0x{msg.arbitration_id:X}")

    def send_periodic(self, *args: Any, **kwargs: Any) -> Any:  # noqa: D102 - BusABC's signature
        self.send_attempts += 1
        raise ListenOnlyError("listen-only bus: refused to start a periodic send")

    @property
    def state(self) -> can.BusState:
        """The inner bus's state."""
        return self._inner.state

    @state.setter
    def state(self, new_state: can.BusState) -> None:
        if new_state is not can.BusState.PASSIVE:
            raise ListenOnlyError(f"listen-only bus: refused to set the state {new_state.name}")
        self._inner.state = new_state

    def shutdown(self) -> None:
        """Shut the inner bus down."""
        if self._is_shutdown:
            return
        super().shutdown()
        self._inner.shutdown()


def open_listen_only(interface: str, channel: str, bitrate_bps: int, *, options: Mapping[str, object] | None = None,
                     adapter_listen_only: bool = True) -> tuple[ListenOnlyBus, str]:
    """Open a bus for the monitor: listen-only at the adapter where possible, always in software.

    Parameters
    ----------
    interface, channel : str
        python-can interface and channel.
    bitrate_bps : int
        Nominal bit rate, bit/s.
    options : mapping, optional
        Further ``can.Bus`` options (``sleep_after_open`` for slcan...); they override
        the listen-only options.
    adapter_listen_only : bool, optional
        Ask the adapter for listen-only mode (default True).

    Returns
    -------
    (ListenOnlyBus, str)
        The bus and a line saying how listen-only it is.

    Raises
    ------
    BusConfigError, DeviceUnavailableError
        As :func:`hal.can.bus.open_can_bus`.
    """
    extra = dict(LISTEN_ONLY_OPTIONS.get(interface, {})) if adapter_listen_only else {}
    extra.update(options or {})
    inner = open_can_bus(interface, channel, bitrate_bps, receive_own_messages=False, **extra)
    if adapter_listen_only and interface in LISTEN_ONLY_OPTIONS:
        opts = ", ".join(f"{k}={v!r}" for k, v in LISTEN_ONLY_OPTIONS[interface].items())
        mode = f"adapter listen-only ({opts}) and software"
    elif interface == "socketcan":
        mode = "software only (set the link listen-only: ip link set DEV type can listen-only on)"
    else:
        mode = "software only (the adapter may acknowledge frames)"
    return ListenOnlyBus(inner), mode


@dataclass
class LogSource:
    """Frames of a recorded log, paced by their timestamps or as fast as they can be read.

    Parameters
    ----------
    path : Path
        Any log :func:`can.LogReader` reads.
    fast : bool
        Do not wait for the recorded spacing.
    speed : float
        Pacing factor when not ``fast`` (2.0: twice real time).
    """

    path: Path
    fast: bool = False
    speed: float = 1.0

    def frames(self, stop: Any = None) -> Iterator[can.Message]:
        """Yield the frames (their timestamps as recorded); stops early when ``stop.is_set()``.

        Raises
        ------
        BusConfigError
            The file is missing or cannot be parsed (one line naming it).
        """
        t0_rec: float | None = None
        t0 = time.monotonic()
        for msg in iter_can_log(self.path):
            if stop is not None and stop.is_set():
                return
            if not self.fast:
                if t0_rec is None:
                    t0_rec = msg.timestamp
                delay = t0 + (msg.timestamp - t0_rec) / self.speed - time.monotonic()
                if delay > 0.0:
                    if stop is not None:
                        if stop.wait(delay):
                            return
                    else:
                        time.sleep(delay)
            yield msg


class CanLogSink:
    """Writes every frame to a log file with python-can's :class:`can.Logger` (format by suffix).

    Raises
    ------
    BusConfigError
        An unknown suffix, or a file that cannot be created.
    """

    def __init__(self, path: Path) -> None:
        suffixes = [s.lower() for s in path.suffixes]
        real = suffixes[-2] if len(suffixes) >= 2 and suffixes[-1] == ".gz" else (suffixes[-1] if suffixes else "")
        if real not in LOG_SUFFIXES:
            raise BusConfigError(f"{path}: --log writes {', '.join(LOG_SUFFIXES)} (optionally .gz), "
                                 f"not {real or 'a file without suffix'!r}")
        try:
            self._writer = can.Logger(str(path))
        except Exception as exc:  # ValueError, OSError from the writer
            raise BusConfigError(f"{path}: cannot write the CAN log: {one_line(exc)}") from exc
        self.path = path
        self.frames = 0

    def put(self, msg: can.Message) -> None:
        """Write one frame (its own timestamp)."""
        self._writer.on_message_received(msg)
        self.frames += 1

    def close(self) -> None:
        """Flush and close the file."""
        self._writer.stop()


class McapSink:
    """Writes every frame into an MCAP file on ``/in/can/<bus>``, the flight record's schema.

    The record is the flight record's ``qiki.CanRx`` (:data:`controller.record.flight_log.SCHEMAS`
    ``can_rx``): ``tick`` holds the frame's index, ``call`` 0; the log time is the frame's
    time since the monitor's first frame, ns. The monitor's report is attached at close
    (``monitor_report.json``).

    Raises
    ------
    BusConfigError
        The file cannot be created.
    """

    def __init__(self, path: Path, bus_name: str, *, realtime: bool, metadata: Mapping[str, str]) -> None:
        try:
            self._rec = FlightRecorder(path, realtime=realtime)
        except OSError as exc:
            raise BusConfigError(f"{path}: cannot write the MCAP file: {one_line(exc)}") from exc
        name, schema = SCHEMAS["can_rx"]
        self._channel = self._rec.channel(f"/in/can/{bus_name}", name, schema)
        self._rec.metadata("qiki.monitor", dict(metadata))
        self.path = path
        self.frames = 0

    def put(self, msg: can.Message, t_rel_s: float) -> None:
        """Write one frame received ``t_rel_s`` after the monitor's first frame."""
        ns = max(0, round(t_rel_s * 1e9)) if math.isfinite(t_rel_s) else 0
        self._rec.write(self._channel, ns, {"tick": self.frames, "call": 0, **frame_fields(msg)})
        self.frames += 1

    def close(self, report_json: bytes | None = None) -> None:
        """Attach the report (if given) and finish the file."""
        if report_json is not None:
            self._rec.attach("monitor_report.json", report_json, "application/json")
        self._rec.close()
