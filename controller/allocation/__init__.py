"""Thrust allocation: effectiveness matrix, exact allocator, baseline allocator, valve PWM.

Pure modules: no I/O, no sleeping, no threads (ARCHITECTURE.md section 2, rule 1).
"""

from controller.allocation.effectiveness import axis_names, check_positive_span, effectiveness
from controller.allocation.exact import AllocationResult, ExactAllocator
from controller.allocation.lsq import solve_bounded_lsq
from controller.allocation.pinv_clip import PinvClipAllocator
from controller.allocation.pwm import PwmModulator

__all__ = [
    "AllocationResult",
    "ExactAllocator",
    "PinvClipAllocator",
    "PwmModulator",
    "axis_names",
    "check_positive_span",
    "effectiveness",
    "solve_bounded_lsq",
]
