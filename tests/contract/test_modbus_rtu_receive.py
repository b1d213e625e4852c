"""RTU reply reception of PymodbusRtuLink: frames split across reads, no polling on silence.

The port is a stand-in with the pyserial surface pymodbus uses (``write``, ``read``,
``in_waiting``, ``fileno`` for ``select``); reply bytes "arrive" in chunks, one chunk each
time the receiver has drained the previous one, after the request was written.
"""

from __future__ import annotations

import os
import struct

from hal.modbus.link import ModbusFailure, PymodbusRtuLink, crc16_modbus


class ChunkedPort:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.buf = b""
        self.written = b""
        self.in_waiting_calls = 0
        self._r, self._w = os.pipe()  # never written: select on it waits for the deadline

    @property
    def in_waiting(self) -> int:
        self.in_waiting_calls += 1
        if not self.buf and self.chunks and self.written:
            self.buf = self.chunks.pop(0)
        return len(self.buf)

    def read(self, n: int) -> bytes:
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def write(self, data: bytes) -> int:
        self.written += data
        return len(data)

    def fileno(self) -> int:
        return self._r

    def reset_input_buffer(self) -> None:
        self.buf = b""

    def close(self) -> None:
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass


def _link_on(port: ChunkedPort, timeout_s: float = 0.05) -> PymodbusRtuLink:
    link = PymodbusRtuLink("/dev/null", 115200, timeout_s)  # exists: the link checks the port opens
    link._client.socket = port
    link._client.connect = lambda: True  # the stand-in is already "open"
    return link


def _reply(unit: int, regs: list[int]) -> bytes:
    body = bytes([unit, 3, 2 * len(regs)]) + b"".join(struct.pack(">H", r) for r in regs)
    return body + struct.pack("<H", crc16_modbus(body))


def test_reply_split_across_reads_is_assembled():
    frame = _reply(1, [0x1234, 0xBEEF])
    port = ChunkedPort([frame[:2], frame[2:5], frame[5:]])
    link = _link_on(port)
    try:
        assert link.read_registers("holding", 0x10, 2, 1) == [0x1234, 0xBEEF]
        assert port.chunks == []  # all three pieces were read
        assert port.written[:2] == bytes([1, 3])  # the request went out first
    finally:
        link.close()
        port.close()


def test_silent_device_waits_in_select_not_by_polling():
    port = ChunkedPort([])
    link = _link_on(port, timeout_s=0.05)
    try:
        result = link.read_registers("holding", 0x10, 2, 1)
        assert isinstance(result, ModbusFailure) and result.kind == "timeout"
        # pymodbus itself polls in_waiting every millisecond (about 50 times in 50 ms);
        # the blocking receive looks once before send and once or twice around select
        assert port.in_waiting_calls <= 4, port.in_waiting_calls
    finally:
        link.close()
        port.close()


def test_corrupt_split_reply_is_not_data():
    frame = bytearray(_reply(1, [7, 8]))
    frame[-1] ^= 0xFF  # broken CRC
    port = ChunkedPort([bytes(frame[:3]), bytes(frame[3:])])
    link = _link_on(port)
    try:
        result = link.read_registers("holding", 0x10, 2, 1)
        assert isinstance(result, ModbusFailure) and result.kind == "corrupt"
    finally:
        link.close()
        port.close()
