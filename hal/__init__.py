"""Host side of every bus: CAN, serial and Modbus ports and one driver per board.

No physics and no policy live here: the HAL turns bytes and frames into typed, validated,
time-stamped samples and back.
"""
