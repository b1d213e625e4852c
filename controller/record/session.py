"""One run's flight record: the MCAP writer, the tick cursor, the taps' sink, the attachments.

:func:`open_flight_record` is called by the main job once the run folder exists; it
attaches every file the run was built from (the rig, the mission, the FSM, the DBCs, the
Modbus profiles: each under its data-root-relative name, the name a replay resolves again)
and writes the metadata a replay needs (run options, seed, versions). The run then hands
:attr:`FlightSession.cursor` and :attr:`FlightSession.log` to the composition room (the
taps) and writes the tick's telemetry and events through it. The rig's ``record.mode``
chooses the sink: ``run.mcap`` (``full``), event files around every trigger
(``triggered``, :mod:`controller.record.triggered`), or none (``off``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import platform
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from controller.paths import checkout_data_root, resolve_data_path
from controller.record.codes import code_for
from controller.record.flight_log import FlightLog
from controller.record.ingress import Ingress
from controller.record.replay_ports import ReplayInputs
from controller.record.taps import IngressSink, Record, RowAppender, TickCursor, row_appender

if TYPE_CHECKING:
    from controller.config import RigCfg
    from controller.record.flight import FlightRecorder
    from controller.record.flight_proc import ProcessRecorder
    from controller.record.triggered import RecordHeader, TriggeredLog

_log = logging.getLogger(__name__)
_log.addHandler(logging.NullHandler())

#: Name of the canonical record in a run folder: only ever a finished file.
RECORD_FILE = "run.mcap"
#: Name of the record while the run writes it (renamed to :data:`RECORD_FILE` once
#: finished; after a SIGKILL or a power cut ``qiki runs recover`` finishes it).
RECORD_PART = "run.mcap.part"

#: Event kinds the emulated far end writes (fault plans), not the controller.
EMULATION_EVENTS = frozenset({"fault_injected", "fault_cleared"})

#: Libraries whose versions are written in the record's ``versions`` metadata.
_LIBRARIES = ("python-can", "cantools", "pymodbus", "pyserial", "numpy", "pydantic", "PyYAML", "mcap")


def referenced_files(rig: RigCfg, rig_path: Path, mission_path: str | None) -> dict[str, Path]:
    """Return every file a run is built from: attachment name -> path on disk.

    Names are the paths as the rig and the command line wrote them (``rigs/virtual.yaml``,
    ``dbc/qiki.dbc``), which :func:`controller.paths.resolve_data_path` finds again.
    """
    out: dict[str, Path] = {}

    def add(name: str | None, relative_to: Path | None) -> None:
        if not name:
            return
        p = resolve_data_path(name, relative_to)
        if p.is_file():
            out.setdefault(str(name), p)

    add(_data_name(rig_path), None)
    if mission_path:
        add(mission_path, None)
    add(rig.controller.fsm, rig_path)
    for bus in rig.buses.values():
        for dbc in getattr(bus, "dbc", None) or ():
            add(dbc, rig_path)
    for dev in rig.devices.values():
        prof = getattr(dev, "profile", None)
        if isinstance(prof, str):
            add(prof, rig_path)
    return out


def _data_name(path: Path) -> str:
    """Return the rig's name relative to the checkout when it lies inside it, else as given."""
    try:
        return str(path.resolve().relative_to(checkout_data_root()))
    except ValueError:
        return str(path)


def _git_commit() -> str:
    root = checkout_data_root()
    if not (root / ".git").exists():
        return ""
    try:
        r = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                           timeout=5.0, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def qiki_version() -> str:
    """Return QIKI's installed version ("unknown" outside an installed checkout)."""
    try:
        return importlib.metadata.version("qiki")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _versions() -> dict[str, str]:
    out = {"qiki": qiki_version(), "git_commit": _git_commit(), "python": platform.python_version()}
    for lib in _LIBRARIES:
        try:
            out[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            out[lib] = ""
    return out


def _text(kind: str, fields: Mapping[str, object]) -> str:
    """One line for an event (the human-greppable form of ``events.jsonl``)."""
    if kind == "transition":
        return f"{fields.get('source')} --{fields.get('event')}--> {fields.get('target')}"
    for key in ("reason", "fault", "event"):
        if fields.get(key):
            return f"{kind}: {fields[key]}"
    return kind


def _jsonable(v: object) -> object:
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    return repr(v)


@dataclass
class FlightSession:
    """The open flight record of one run."""

    path: Path | None
    recorder: FlightRecorder | ProcessRecorder | None
    cursor: TickCursor
    log: IngressSink
    #: A replay's recorded inputs (None when recording a live run).
    replay: ReplayInputs | None = None
    #: A replay of a record that ends early (recovered after a kill): the last tick to run.
    replay_last_tick: int | None = None
    #: A replay from a snapshot (``--from``): the tick after which it starts.
    resume_tick: int | None = None
    #: A replay: the recorded run's metadata by name (``doctor``: the verdicts that gated it).
    recorded_metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    closed: bool = False
    stats: dict[str, object] = field(default_factory=dict)
    #: Triggered mode (rig ``record.mode: triggered``): the sink that writes the event files.
    triggered: TriggeredLog | None = None
    #: Per topic, ``append(keys, values)`` of :attr:`log` (:func:`~controller.record.taps.row_appender`), made once.
    _appenders: dict[str, RowAppender] = field(init=False, repr=False, compare=False, default_factory=dict)

    def event_sink(self, inner: Callable[..., None]) -> Callable[..., None]:
        """Wrap the run record's event sink: every event also goes to the flight record with its code.

        The controller's events go to ``/events``; what the emulated far end reports
        (:data:`EMULATION_EVENTS`, possibly from the emulator's thread) to
        ``/emulation/events``, which a replay (no emulator) does not reproduce.
        """
        def event(tick: int, time_s: float, kind: str, **fields: object) -> None:
            inner(tick, time_s, kind, **fields)
            if self.closed:
                return
            rec: Record = {"tick": tick, "t_s": float(time_s), "code": code_for(kind, fields), "kind": kind,
                           "text": _text(kind, fields)}
            for k, v in fields.items():
                if k not in rec:
                    rec[k] = _jsonable(v)  # type: ignore[assignment]
            self.log.put("/emulation/events" if kind in EMULATION_EVENTS else "/events", rec)
        return event

    def ingress(self) -> Ingress:
        """Return how the composition room opens ports for this run (tapped, or replayed)."""
        return Ingress(self.cursor, self.log, self.replay, self.replay_last_tick, self.resume_tick)

    def begin_tick(self, tick: int, now_s: float) -> None:
        """Start recording tick ``tick`` (its start ``now_s`` on the run clock)."""
        self.cursor.begin(tick, int(round(now_s * 1e9)))

    def put(self, topic: str, record: Mapping[str, object]) -> None:
        """Write one record at the current tick's time (nothing once closed or not recording)."""
        if not self.closed and self.cursor.recording:
            self.log.put(topic, record)

    def row(self, topic: str, keys: tuple[str, ...], values: tuple[object, ...]) -> None:
        """Write the record ``row_record(keys, values)`` as :meth:`put` does, handed over as a row.

        The sink builds the record (the flight log's writer process, off the tick:
        :meth:`FlightLog.row <controller.record.flight_log.FlightLog.row>`); a sink
        without ``row`` gets :meth:`put` of it. Each topic's rows go through one appender made on its first row
        (:func:`~controller.record.taps.row_appender`: the flight log's goes straight into
        the writer's list).
        """
        if not self.closed and self.cursor.recording:
            append = self._appenders.get(topic)
            if append is None:
                append = self.appender(topic)
            append(keys, values)

    def appender(self, topic: str) -> RowAppender:
        """Return ``append(keys, values)`` of ``topic``: the one :meth:`row` uses, made on first use.

        It hands the row to :attr:`log` without :meth:`row`'s tests (closed, recording):
        for a caller that made them once per tick
        (:class:`~controller.vehicle.telemetry.TickTelemetry`). The same rows, in the
        same order, as through :meth:`row`; making it has no effect on the record (the
        channel is registered on the first row).
        """
        append = self._appenders.get(topic)
        if append is None:
            append = self._appenders[topic] = row_appender(self.log, topic)
        return append

    def metadata(self, name: str, values: Mapping[str, str]) -> None:
        """Write one metadata record (the doctor's report); nothing in a replay or once closed."""
        if self.recorder is not None and not self.closed:
            self.recorder.metadata(name, dict(values))

    def finish(self) -> None:
        """Close the record at the end of a run; a failure is logged in one line, never raised.

        The summary is written before this: nothing else is lost if the record cannot be
        finished (``qiki runs recover`` can still finish ``run.mcap.part``).
        """
        try:
            self.close()
        except Exception as exc:  # noqa: BLE001 - see above
            _log.error("flight record %s not finished: %s", self.path, " ".join(str(exc).split()))

    def close(self) -> dict[str, object]:
        """Finish the file (summary and index); return the recorder's statistics. Safe twice."""
        if not self.closed:
            self.closed = True
            if self.recorder is not None:
                # the run ended here: a record without this (recovered after a kill) ends early
                self.recorder.metadata("run_end", {"last_tick": str(self.cursor.tick)})
                st = self.recorder.close()
                self.stats = st.as_dict()
                if self.path is not None:
                    os.replace(self.path.with_name(RECORD_PART), self.path)
            if self.triggered is not None:
                self.stats = self.triggered.close()
        return self.stats


def replay_session(inputs: ReplayInputs, sink: IngressSink, last_tick: int | None = None,
                   resume_tick: int | None = None) -> FlightSession:
    """Return the session of a replay: no file; outputs, telemetry and events go to ``sink``.

    ``last_tick``: for a record that ends early, the replay stops after that tick.
    ``resume_tick``: a replay from the snapshot taken after that tick (its ports start there).
    """
    return FlightSession(None, None, TickCursor(), sink, replay=inputs, replay_last_tick=last_tick,
                         resume_tick=resume_tick)


def record_header(rig: RigCfg, rig_path: Path, mission_path: str | None, options: Mapping[str, object],
                  extra_files: Iterable[Path] = ()) -> RecordHeader:
    """Return the attachments and metadata of every flight record file of a run (read once).

    Parameters as for :func:`open_flight_record`.
    """
    import json

    from controller.record.triggered import RecordHeader  # a replay writes no record: not imported there

    attachments = tuple(
        (name, p.read_bytes(), "application/yaml" if name.endswith((".yaml", ".yml")) else "text/plain")
        for name, p in referenced_files(rig, rig_path, mission_path).items())
    metadata: list[tuple[str, Mapping[str, str]]] = [
        ("run_options", {k: json.dumps(_jsonable(v)) for k, v in options.items()}),
        ("versions", _versions()),
    ]
    digests = {}
    for p in extra_files:
        try:
            digests[str(p)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
        except OSError as exc:
            digests[str(p)] = f"unreadable: {exc}"
    if digests:
        metadata.append(("input_recordings", digests))
    return RecordHeader(attachments, tuple(metadata))


def open_flight_record(folder: Path, *, realtime: bool, rig: RigCfg, rig_path: Path, mission_path: str | None,
                       options: Mapping[str, object], extra_files: Iterable[Path] = ()) -> FlightSession | None:
    """Open the run's flight record as the rig's ``record.mode`` says, with its attachments and metadata.

    ``full`` (default): ``<folder>/run.mcap``. ``triggered``: no ``run.mcap``; a
    :class:`~controller.record.triggered.TriggeredLog` writes ``<folder>/event-*.mcap``
    around every trigger. ``off``: None (no flight record).

    Parameters
    ----------
    folder : Path
        The run folder.
    realtime : bool
        Real time: the tick hands its messages to the writer process between ticks, never
        blocking (:mod:`controller.record.flight_proc`).
    rig, rig_path : the validated rig and its file
    mission_path : str or None
        The mission file as given on the command line.
    options : mapping
        The run options a replay needs (``seed``, ``arm``, ``duration_s``, ``realtime``,
        ``mission``, ``rig``, ``lr_replay``, ``sr_replay``); written as metadata
        ``run_options`` (values as JSON text).
    extra_files : iterable of Path
        Input recordings named by the options: their SHA-256 goes in the metadata, not
        the file (recordings can be large).
    """
    from controller.record.flight_proc import open_recorder
    from controller.record.triggered import TriggeredLog

    cfg = rig.record
    if cfg.mode == "off":
        return None
    header = record_header(rig, rig_path, mission_path, options, extra_files)
    cursor = TickCursor()
    if cfg.mode == "triggered":
        sink = TriggeredLog(folder, cursor, header, realtime=realtime, pre_s=cfg.pre_s, post_s=cfg.post_s,
                            trigger_codes=cfg.trigger_codes, max_files=cfg.max_files, buffer_max_n=cfg.buffer_max_n)
        return FlightSession(None, None, cursor, sink, triggered=sink)
    recorder = open_recorder(folder / RECORD_PART, realtime=realtime)
    session = FlightSession(folder / RECORD_FILE, recorder, cursor, FlightLog(recorder, cursor))
    header.write(recorder)
    return session
