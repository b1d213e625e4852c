"""The ASC CAN log writes, from the frame itself, the lines python-can's ASCWriter writes (issue 16 part 3)."""

from __future__ import annotations

from pathlib import Path

import can

from controller.record.run_record import RunRecord, asc_channel

FRAMES = [
    (can.Message(arbitration_id=0x123, data=bytes([1, 0xAB, 0, 255]), is_extended_id=False), 0.0, True),
    (can.Message(arbitration_id=0x18FF50E5, data=bytes(8), is_extended_id=True), 0.01, False),
    (can.Message(arbitration_id=0x7FF, is_remote_frame=True, dlc=8, is_extended_id=False), 0.02, True),
    (can.Message(arbitration_id=0x1, data=b"", is_extended_id=False), 0.03, False),
    (can.Message(is_error_frame=True), 0.04, True),
    (can.Message(arbitration_id=0x200, data=bytes(range(12)), is_fd=True, is_extended_id=False), 12.345678, True),
    (can.Message(arbitration_id=0x5, data=b"\x01", is_extended_id=False), -0.5, False),
]


def _lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if not ln.startswith(("date ", "Begin Triggerblock"))]


def test_asc_lines_equal_python_cans_writer(tmp_path: Path) -> None:
    rec = RunRecord(tmp_path / "run")
    log = rec.can_logger("can1")
    for msg, t, rx in FRAMES:
        log(msg, t, rx)
    rec.close()

    # what the logger wrote before: a copy of each frame through ASCWriter.on_message_received
    ch = asc_channel("can1")
    ref = can.ASCWriter(str(tmp_path / "ref.asc"), channel=ch)
    ref.log_event(f"Start of measurement: QIKI bus can1 on channel {ch}", 0.0)
    for msg, t, rx in FRAMES:
        ref.on_message_received(can.Message(
            timestamp=t, arbitration_id=msg.arbitration_id, is_extended_id=msg.is_extended_id,
            is_remote_frame=msg.is_remote_frame, is_error_frame=msg.is_error_frame, dlc=msg.dlc, data=msg.data,
            is_rx=rx, channel=ch - 1, check=False))
    ref.file.write("End TriggerBlock\n")
    ref.file.close()
    assert _lines(tmp_path / "run" / "can1.asc") == _lines(tmp_path / "ref.asc")
