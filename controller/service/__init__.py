"""Running QIKI as a systemd service: the sd_notify protocol and the files ``qiki install`` writes.

* :mod:`controller.service.notify` -- ``READY=1`` after POST, ``WATCHDOG=1`` from the
  tick, ``STOPPING=1`` at shutdown, over ``$NOTIFY_SOCKET`` (sd_notify(3)); a no-op
  outside systemd.
* :mod:`controller.service.units` -- the systemd unit, the udev rules for the serial
  symlinks and the systemd-networkd files of the SocketCAN buses, rendered from a rig
  (docs/deployment.md).
"""
