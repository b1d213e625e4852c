"""Sans-IO codecs (bytes <-> typed messages), one module per device family.

Rule: no I/O, no sleeping, no threads. Shared by the driver (``hal.devices``) and the
emulator (``firmware_bridge.emulation``).
"""
