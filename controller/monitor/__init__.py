"""``qiki monitor``: a listen-only CAN bus monitor with Vector-style background checks.

* :mod:`controller.monitor.checks` -- the checks per frame, the per-ID stats and the
  violation tally with first and last times (no I/O);
* :mod:`controller.monitor.vehicle` -- the valve duties, the radar objects and the
  vehicle's phase inferred from the frames (no I/O);
* :mod:`controller.monitor.model` -- what a rig's CAN bus carries, at the devices' IDs;
* :mod:`controller.monitor.source` -- the listen-only bus, the log source, the log and
  MCAP writers;
* :mod:`controller.monitor.run` -- the reader thread and the reports;
* :mod:`controller.monitor.view` -- the terminal tables.

See ``docs/monitor.md``.
"""
