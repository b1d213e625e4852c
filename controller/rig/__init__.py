"""The composition room: the only place that knows how a rig's pieces are wired.

* :mod:`.check` -- :func:`check_rig`: every rule a build relies on, no port opened;
* :mod:`.build` -- :func:`build_rig`: buses, drivers, components, the vehicle and, on an
  emulated rig, the world and every emulator (the only importer of
  :mod:`firmware_bridge.emulation`, with :mod:`.radar`, :mod:`.power` and :mod:`.tank`);
* :mod:`.radar`, :mod:`.power`, :mod:`.tank` -- the builders of those device families, listed in
  :data:`controller.rig.build.COMPONENT_BUILDERS`;
* :mod:`.context` -- what the builders share while a rig is built.
"""

from controller.rig.build import (
    COMPONENT_BUILDERS,
    DRIVER_FAMILIES,
    BuiltRig,
    build_rig,
)
from controller.rig.check import (
    CheckedCanBus,
    CheckedRig,
    build_allocator,
    build_valve_commander,
    check_rig,
)
from controller.rig.context import BuildContext

__all__ = [
    "COMPONENT_BUILDERS",
    "DRIVER_FAMILIES",
    "BuildContext",
    "BuiltRig",
    "CheckedCanBus",
    "CheckedRig",
    "build_allocator",
    "build_rig",
    "build_valve_commander",
    "check_rig",
]
