"""The radar component's two radar kinds, one class each: what is particular to each radar.

* :class:`LrRadar` -- the ARS408 long-range radar on CAN (driver, CAN port, emulator feed);
* :class:`SrRadar` -- the IWR6843 short-range radar on a UART (driver, emulator).

Each knows, for its own radar: the scans it completed since the last tick as tracker
detections in the body frame (:meth:`LrRadar.poll`), its health conditions (SAFETY.md B01
stale, D02 radar-reported errors, D03 rejected values), its POST verdict (D07) and its
block of the ``radar`` summary. What the radars share -- band selection, the tracker, the
keep-out / TTC guard, the ego-motion frames and the confirmed-track rows -- is
:class:`controller.components.radar.RadarSubsystem`'s, which holds one of each (or none).

Built by :func:`controller.rig.radar.build`; the emulators are known here only through the
small protocols :class:`LrFeed` and :class:`SrEmulator` (the rig room is the only importer
of :mod:`firmware_bridge.emulation`). Per tick, never blocks, no threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from controller.config import Ars408DeviceCfg, Iwr6843DeviceCfg
from controller.tracking import BAND_LR, BAND_SR, Detection
from controller.tracking.detections import sr_tracking_detection, tracking_detection
from firmware_bridge.protocols.frames import Mount
from hal.can.port import CanPort
from hal.devices.ars408 import Ars408Driver, Ars408Status
from hal.devices.iwr6843 import Iwr6843Driver

__all__ = ["LrFeed", "LrRadar", "SrEmulator", "SrRadar"]

#: ARS408 status faults that are the radar's own report (SAFETY.md D02), as opposed to
#: ``stale`` (B01) and ``values_rejected`` (D03), which have their own fault keys.
_NOT_D02 = frozenset({"stale", "values_rejected"})


class LrFeed(Protocol):
    """What the radar component knows of an emulated ARS408 feed (built by the rig room)."""

    def replay_summary(self) -> dict[str, object] | None:
        """Return the ``replay`` block of the radar's summary (None: not a replay)."""
        ...


class SrEmulator(Protocol):
    """What the radar component knows of an IWR6843 emulator (built by the rig room)."""

    @property
    def replay_frames(self) -> int:
        """Replay mode: per-frame chunks in the capture (0 in synthetic mode)."""

    @property
    def frames_sent(self) -> int:
        """Frames written to the UART so far."""


@dataclass
class LrRadar:
    """The ARS408 long-range radar of the radar component (CAN).

    Attributes
    ----------
    name : str
        Device name (fault keys ``<name>.stale``, ``.error``, ``.values``).
    cfg : Ars408DeviceCfg
        Its ``devices`` entry (mount, sensor ID).
    bus : str
        CAN bus name.
    driver : Ars408Driver or None
        None when the build refused it (``build_error`` says why; POST fails).
    port : CanPort or None
        The bus port the ego-motion frames go out on.
    build_error : str or None
        Why the driver was not built (K02: the DBC lacks what it needs).
    mode : str
        ``hardware``, ``synthetic`` or ``replay``.
    feed : LrFeed or None
        The emulated feed (summary only).
    status : Ars408Status or None
        The driver's status of the last poll (None before the first).
    detections, scans : int
        Detections and completed object-list cycles so far.
    """

    name: str
    cfg: Ars408DeviceCfg
    bus: str
    driver: Ars408Driver | None = None
    port: CanPort | None = None
    build_error: str | None = None
    mode: str = "hardware"
    feed: LrFeed | None = None
    status: Ars408Status | None = None
    detections: int = 0
    scans: int = 0

    @property
    def mount(self) -> Mount:
        """The radar's pose in the body frame."""
        return Mount.from_config(self.cfg.mount)

    def poll(self, now_s: float) -> list[list[Detection]]:
        """Poll the driver (per tick): the object-list cycles completed since, body frame.

        Returns
        -------
        list of list of Detection
            One scan per completed cycle, tagged ``lr``; empty without a driver.
        """
        if self.driver is None:
            return []
        self.status = self.driver.poll(now_s)
        scans = []
        for cycle in self.driver.take_cycles():
            dets = [tracking_detection(d, source=BAND_LR) for d in self.driver.detections(cycle)]
            self.detections += len(dets)
            self.scans += 1
            scans.append(dets)
        return scans

    def conditions(self) -> list[tuple[str, str | None]]:
        """Health (per tick): ``(key, reason or None)`` for B01 stale, D02 error, D03 values."""
        n = self.name
        if self.driver is None:
            return [(f"{n}.error", f"{n}: {self.build_error}")]
        st = self.status
        if st is None:
            return []
        d02 = [f for f in st.faults if f not in _NOT_D02]
        return [
            (f"{n}.stale", f"{n} stale: no complete object-list cycle for "
                           f"{self.driver.config.stale_after_periods:g} periods" if st.stale else None),
            (f"{n}.error", f"{n} reports {', '.join(d02)}" if d02 else None),
            (f"{n}.values", f"{n}: out-of-range values in {self.driver.config.reject_streak_limit} "
                            "consecutive cycles" if "values_rejected" in st.faults else None),
        ]

    def post_verdict(self) -> tuple[bool, str]:
        """POST (boot only): present, fresh, state clean, version; ``(False, "waiting: ...")`` until ready."""
        st = self.status
        if self.driver is None:
            return False, self.build_error or "driver not built"
        if st is None or st.cycles_complete == 0:
            return False, "waiting: no complete object-list cycle yet"
        if st.health is None:
            return False, "waiting: no RadarState (0x201) yet"
        if st.faults:
            return False, "radar reports " + ", ".join(st.faults)
        if not st.fresh:
            return False, "waiting: object-list cycles not yet regular"
        version = ".".join(str(v) for v in st.version) if st.version else "not seen (0x700)"
        warn = f"; warnings: {', '.join(st.warnings)}" if st.warnings else ""
        return True, f"firmware {version}{warn}"

    def summary_block(self) -> dict[str, object]:
        """Its block of the ``radar`` summary, without the tracks (the component adds them)."""
        st = self.status
        block: dict[str, object] = {"driver": "ars408", "mode": self.mode}
        if self.driver is None:
            block["error"] = self.build_error
        elif st is not None:
            block.update({
                "frames": st.frames, "decoded": st.decoded, "cycles": st.cycles_complete,
                "cycles_dropped": st.cycles_dropped, "rejects": dict(sorted(st.rejects.items())),
                "detections": self.detections, "stale_at_end": st.stale,
                "faults_at_end": list(st.faults), "warnings_at_end": list(st.warnings),
                "version": ".".join(str(v) for v in st.version) if st.version else None,
            })
            if st.implausible:  # objects dropped by the plausibility gate (issue 15)
                block["implausible"] = dict(sorted(st.implausible.items()))
        replay = self.feed.replay_summary() if self.feed is not None else None
        if replay is not None:
            block["replay"] = replay
        return block


@dataclass
class SrRadar:
    """The IWR6843 short-range radar of the radar component (UART).

    Attributes
    ----------
    name : str
        Device name (fault key ``<name>.stale``).
    cfg : Iwr6843DeviceCfg
        Its ``devices`` entry (mount, frame period).
    bus : str
        Serial bus name.
    driver : Iwr6843Driver or None
        The driver (built by the rig room).
    mode : str
        ``hardware``, ``synthetic`` or ``replay``.
    emulator : SrEmulator or None
        The emulator on an emulated rig (summary only).
    detections, scans : int
        Detections and accepted frames so far.
    stale : bool
        The driver's verdict at the last poll (SAFETY.md B01).
    """

    name: str
    cfg: Iwr6843DeviceCfg
    bus: str
    driver: Iwr6843Driver | None = None
    mode: str = "hardware"
    emulator: SrEmulator | None = None
    detections: int = 0
    scans: int = 0
    stale: bool = True

    @property
    def mount(self) -> Mount:
        """The radar's pose in the body frame."""
        return Mount.from_config(self.cfg.mount)

    def poll(self, now_s: float) -> list[list[Detection]]:
        """Poll the driver (per tick): the frames accepted since, body frame.

        Returns
        -------
        list of list of Detection
            One scan per frame, tagged ``sr``; empty without a driver.
        """
        if self.driver is None:
            return []
        scans = []
        for scan in self.driver.poll(now_s):
            dets = [sr_tracking_detection(d, source=BAND_SR) for d in scan.detections]
            self.detections += len(dets)
            self.scans += 1
            scans.append(dets)
        self.stale = self.driver.is_stale(now_s)
        return scans

    def conditions(self) -> list[tuple[str, str | None]]:
        """Health (per tick): ``(key, reason or None)`` for B01 stale."""
        if self.driver is None:
            return []
        return [(f"{self.name}.stale", f"{self.name} stale: no new frame for "
                 f"{self.driver.stale_after_periods:g} periods" if self.stale else None)]

    def post_verdict(self) -> tuple[bool, str] | None:
        """POST (boot only): a frame accepted and fresh; None without a driver.

        Until the first frame the reason is ``"waiting: "`` and the driver's
        :meth:`~hal.devices.iwr6843.Iwr6843Driver.waiting_text`, which names what arrives
        (packets of another SDK or platform are not "no frame").
        """
        if self.driver is None:
            return None
        if self.scans == 0:
            return False, "waiting: " + self.driver.waiting_text()
        if self.stale:
            return False, "stale"
        return True, f"{self.scans} frames"

    def summary_block(self) -> dict[str, object]:
        """Its block of the ``radar`` summary, without the tracks (the component adds them)."""
        block: dict[str, object] = {"driver": "iwr6843", "mode": self.mode}
        if self.driver is not None:
            s = self.driver.stats()
            block.update({"frames": s["frames"], "cycles": s["frames"], "rejects": s["rejects"],
                          "resyncs": s["resyncs"], "detections": self.detections,
                          "stale_at_end": self.stale})
            if s["points_dropped"]:  # points outside the gate (issue 15)
                block["implausible"] = s["points_dropped"]
        if self.emulator is not None and self.mode == "replay":
            block["replay"] = {"frames_in_capture": self.emulator.replay_frames,
                               "frames_sent": self.emulator.frames_sent}
        return block
