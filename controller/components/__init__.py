"""Runtime logic per device, behind the component seam (:mod:`controller.components.seam`).

One module per device family: :mod:`.valves` (the thruster valve board, the vehicle's
actuator), :mod:`.mcu` (the MCU board: pose estimate, E-stop input, valve-rail line,
host heartbeat), :mod:`.radar` (ARS408 and IWR6843, the tracker, keep-out), :mod:`.power`
(BMS and PDU over Modbus, the valve-rail relay). Components hold drivers, never build them and
never import emulators: the composition root (:mod:`controller.rig`) wires them.
"""
