"""Two threads writing one :class:`ProcessRecorder`: every message reaches the file once."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from controller.record.flight_proc import ProcessRecorder
from controller.record.reader import FlightRecord

SCHEMA = {"type": "object", "properties": {"k": {"type": "integer"}}, "required": ["k"]}
N = 1000


def test_a_second_thread_registering_channels_while_idle_sends(tmp_path: Path) -> None:
    # the control thread writes and calls idle (pack + hand over); the other thread
    # registers channels (a control record: packs the waiting messages) and writes on
    # them, as the emulator's fault events reach FlightLog.put
    p = tmp_path / "threads.mcap"
    rec = ProcessRecorder(p, realtime=True, chunk_period_s=3600.0, queue_capacity=1 << 20)
    main_ch = rec.channel("/main", "s", SCHEMA)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def control() -> None:
        try:
            start.wait()
            for k in range(N):
                rec.write(main_ch, 1_000 + k, {"k": k})
                if k % 3 == 2:
                    rec.idle(0.0)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    def faults() -> None:
        try:
            start.wait()
            for k in range(N):
                if k % 10 == 0:
                    ch = rec.channel(f"/fault/{k // 10}", "s", SCHEMA)
                rec.write(ch, 1_000 + k, {"k": k})
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # many thread switches: the interleavings the lock must survive
    try:
        threads = [threading.Thread(target=control), threading.Thread(target=faults)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60.0)
    finally:
        sys.setswitchinterval(old)
    assert errors == []
    st = rec.close(30.0)
    assert st.errors == 0 and st.messages_dropped == 0
    assert st.messages_written == 2 * N
    fr = FlightRecord(p)
    assert [m["k"] for m in fr.topic("/main")] == list(range(N))
    got = sorted(m["k"] for b in range(N // 10) for m in fr.topic(f"/fault/{b}"))
    assert got == list(range(N))
