"""The device side of every wire: sans-IO protocol codecs and emulated firmware."""
