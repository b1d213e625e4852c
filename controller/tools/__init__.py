"""Field tools: the libraries behind ``qiki radar decode`` and ``qiki modbus read``.

* :mod:`controller.tools.radar_decode` -- an ARS408 CAN log through the driver's ingress
  path and the tracker, into a report;
* :mod:`controller.tools.radar_decode_iwr6843` -- the same for a TI IWR6843 UART capture;
* :mod:`controller.tools.modbus_read` -- one pass over a Modbus device's quantities.

The CLI verbs (:mod:`controller.cli`) import these; runtime code (the vehicle, the
subsystems, the run, the pure cores) never does (``lint-imports``, docs/layers.md).
"""
