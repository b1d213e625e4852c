"""The MCU board as a component: pose estimate, E-stop input, valve-rail line, heartbeat.

The MCU is the vehicle's state estimator (its pose feeds the pose controller and the
radar tracker through :class:`~controller.components.seam.TickView`) and holds the E-stop
input and the valve-rail enable line. The host heartbeat goes out in the write phase of
every tick, from the first (the MCU drops the rail when it stops, SAFETY.md T03).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from controller.components.seam import (
    ARMING_STATES,
    ActionHandler,
    ComponentBase,
    Condition,
    DevicePost,
    PoseEstimate,
    TickView,
    condition,
)
from hal.snapshot import JsonValue, State, apply, capture, part

if TYPE_CHECKING:
    from hal.devices.qiki_mcu import McuDriver

#: Time (s) the MCU gets to confirm the valve rail on before a "rail dropped" fault.
RAIL_CONFIRM_S = 0.1


@functools.cache
def _mcu_conditions(status_fresh: bool, pose_fresh: bool, rebooted: bool,
                    rail: bool | None) -> tuple[Condition, ...]:
    """Return the MCU's conditions for these verdicts (made once per combination: immutable).

    Parameters
    ----------
    status_fresh, pose_fresh : bool
        Status / pose fresh (B01-B03).
    rebooted : bool
        The MCU rebooted (D08).
    rail : bool or None
        The valve rail reads on (False: dropped); None when not judged.

    Returns
    -------
    tuple of Condition
        ``mcu_status``, ``mcu_pose``, ``mcu_reboot`` and, when judged, ``rail``.
    """
    out = (
        condition("mcu_status", None if status_fresh else "MCU status stale"),
        condition("mcu_pose", None if pose_fresh else "MCU pose stale"),
        condition("mcu_reboot", "MCU rebooted" if rebooted else None),
    )
    if rail is None:
        return out
    return (*out, condition("rail", None if rail else "valve rail dropped by the MCU"))


class McuComponent(ComponentBase):
    """Runtime logic of the MCU board.

    Parameters
    ----------
    name : str
        Device name in the rig (POST key).
    driver : McuDriver
        Driver on the MCU's serial link.
    accepted_firmware : str
        Accepted firmware spec (POST, SAFETY.md D07).
    """

    def __init__(self, name: str, driver: McuDriver, accepted_firmware: str) -> None:
        self.name = name
        self.driver = driver
        self.accepted_firmware = accepted_firmware
        self.rail_requested = False
        self.rail_requested_at_s = 0.0
        self._pose_msg: object | None = None
        self._pose: PoseEstimate | None = None

    @property
    def pose(self) -> PoseEstimate | None:
        """Return the latest pose message as a :class:`PoseEstimate` (None before the first).

        Converted once per new message (the manager builds several views a tick).
        """
        p = self.driver.pose
        if p is not self._pose_msg:
            self._pose_msg = p
            self._pose = None if p is None else PoseEstimate(p.x_m, p.y_m, p.yaw_rad, p.vx_world_mps,
                                                              p.vy_world_mps, p.yaw_rate_radps)
        return self._pose

    # ------------------------------------------------------------------ snapshot
    #: The component's own state in a snapshot (issue 12 part 4); the driver's is nested.
    SNAPSHOT_FIELDS = ("rail_requested", "rail_requested_at_s")

    def snapshot(self) -> State:
        """Return the rail request and the driver's state (the pose is derived from the driver's)."""
        return {**capture(self, self.SNAPSHOT_FIELDS), "driver": self.driver.snapshot()}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Put back a :meth:`snapshot`."""
        apply(self, state, self.SNAPSHOT_FIELDS)
        self.driver.restore(part(state, "driver"))

    def estop_released(self, now_s: float) -> bool:
        """Tell whether a fresh MCU status says the E-stop input is released (D09)."""
        return bool(self.driver.estop_released_confirmed(now_s))

    # ------------------------------------------------------------------ the seam
    def read(self, view: TickView) -> None:
        """Drain the serial link, decode, stamp receipt times."""
        self.driver.poll(view.now_s)

    def post(self, view: TickView) -> Mapping[str, DevicePost]:
        """POST of the MCU: HELLO (firmware, protocol), fresh status (D05, D07)."""
        ok, reason = self.driver.post_report(view.now_s, self.accepted_firmware)
        return {self.name: DevicePost(bool(ok), reason)}

    def events(self, view: TickView) -> Sequence[str]:
        """``estop`` while the E-stop input reads pressed (D09)."""
        return ("estop",) if self.driver.estop_pressed and view.state != "estop" else ()

    def conditions(self, view: TickView) -> Sequence[Condition]:
        """Check status and pose freshness, reboots and the valve rail, outside ``boot``.

        Outside ``boot``: status and pose freshness (B01-B03), a reboot (D08), and in an
        arming state the valve rail confirmed on once requested.
        """
        if view.state == "boot":
            return ()
        d = self.driver
        now_s = view.now_s
        rail_on: bool | None = None
        if view.state in ARMING_STATES and self.rail_requested and now_s - self.rail_requested_at_s > RAIL_CONFIRM_S:
            status = d.status
            rail_on = bool(status is not None and status.rail_enabled)
        # the conditions of a combination of verdicts are made once (_mcu_conditions)
        return _mcu_conditions(d.status_fresh(now_s), d.pose_fresh(now_s), bool(d.mcu_reboots), rail_on)

    def arming_check(self, view: TickView) -> str | None:
        """Refuse arming unless a fresh status says the E-stop is released (O01, D09)."""
        return None if self.estop_released(view.now_s) else "E-stop is pressed or its state is unknown"

    def action_handlers(self) -> Mapping[str, ActionHandler]:
        """``run_post`` asks for HELLO; the rail actions drive the enable line."""
        return {"run_post": self._run_post, "enable_valve_rail": self._enable_rail,
                "disable_valve_rail": self._disable_rail}

    def _run_post(self, view: TickView) -> None:
        self.driver.request_hello()

    def _enable_rail(self, view: TickView) -> None:
        self.rail_requested = True
        self.rail_requested_at_s = view.now_s
        self.driver.request_rail(True)

    def _disable_rail(self, view: TickView) -> None:
        self.rail_requested = False
        self.driver.request_rail(False)

    def write(self, view: TickView, thrust_n: Sequence[float]) -> None:
        """Host heartbeat with the FSM state (the MCU's watchdog, T03)."""
        self.driver.service(view.now_s, view.state)

    def rail_off_confirmed_since(self, since_s: float) -> bool:
        """Tell whether a status received at or after ``since_s`` (s) says the rail is off."""
        st = self.driver.status
        rx_s = getattr(self.driver, "status_rx_s", None)
        return bool(st is not None and rx_s is not None and rx_s >= since_s and not st.rail_enabled)


def finite_pose(p: PoseEstimate | None) -> bool:
    """Tell whether ``p`` exists and its position, heading and velocity are finite."""
    return p is not None and all(math.isfinite(v) for v in (p.x_m, p.y_m, p.yaw_rad, p.vx_world_mps, p.vy_world_mps))
