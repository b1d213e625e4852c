"""Exit statuses of the ``qiki`` command (documented in ``qiki --help`` and the README).

=====  ==========================================================================
0      completed: every waypoint reached and the vehicle back in ``idle``; a
       ``--no-arm`` monitor run whose duration ran out with POST passed, the vehicle
       in ``idle`` and no fault active; a command other than ``run`` that succeeded
1      safe stop or incomplete: the run ended in ``safe_mode``/``estop`` (a fault,
       an exception caught in a tick, E-stop), the mission timed out or was cut short
       by ``--duration``, POST never passed, arming was refused
2      bad input: a rig, mission, FSM, profile or DBC file, or a command-line option,
       refused with one line naming the file (or option) and the key
3      hardware unavailable: a port or adapter the rig names cannot be opened
       (missing, busy, permission denied)
129    interrupted by SIGHUP (after a safe stop)
130    interrupted by SIGINT (after a safe stop, or forced by a second SIGINT)
143    interrupted by SIGTERM (after a safe stop)
141    the reader of the output went away (a closed pipe, as ``| head``)
=====  ==========================================================================
"""

from __future__ import annotations

import signal

EXIT_OK = 0
EXIT_STOPPED = 1
EXIT_BAD_INPUT = 2
EXIT_HARDWARE_UNAVAILABLE = 3

#: 128 + signal number, the shell's convention for a process ended by a signal.
SIGNAL_EXIT: dict[int, int] = {int(s): 128 + int(s) for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)}

#: The table above, for ``qiki --help``.
HELP_TEXT = """exit status:
  0    completed (every waypoint reached, back in idle; a --no-arm run that stayed
       healthy in idle; any other command that succeeded)
  1    safe stop or incomplete (safe_mode/estop, exception in a tick, mission timed
       out or cut short, POST not passed, arming refused)
  2    bad input (a file or option refused; one line names the file and key)
  3    hardware unavailable (a port or adapter cannot be opened)
  129  interrupted by SIGHUP, 130 by SIGINT, 143 by SIGTERM (after a safe stop)"""
