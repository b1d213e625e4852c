"""The vehicle: a manager over components, one tick read -> update -> write -> record.

See :mod:`controller.vehicle.manager` (the tick), :mod:`.seam` (the component protocol
and the tick view), :mod:`.rules` (guards and actions bound to the FSM registry),
:mod:`.control` (mission, pose PD, allocation), :mod:`.safety` (exception barrier, safe
stop) and :mod:`.faults` (the fault book).
"""

from controller.components.seam import (
    ARMING_STATES,
    Component,
    ComponentBase,
    Condition,
    DevicePost,
    PoseEstimate,
    TickView,
)
from controller.vehicle import rules as _rules  # noqa: F401  (registers guards and actions)
from controller.vehicle.control import Allocator, PoseControl
from controller.vehicle.faults import FaultBook
from controller.vehicle.manager import RecordFn, Vehicle
from controller.vehicle.safety import SHUTDOWN_ZERO_TICKS, ShutdownStatus

__all__ = [
    "ARMING_STATES",
    "SHUTDOWN_ZERO_TICKS",
    "Allocator",
    "Component",
    "ComponentBase",
    "Condition",
    "DevicePost",
    "FaultBook",
    "PoseControl",
    "PoseEstimate",
    "RecordFn",
    "ShutdownStatus",
    "TickView",
    "Vehicle",
]
