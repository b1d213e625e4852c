"""Suite-wide pytest set-up: the ``--rt-knobs`` option of the real-time step, the ``hil``
marker's skip, and the fixtures several test folders share.

``make test`` runs the tests marked ``realtime`` (ARCHITECTURE.md 8) in a serial step of
their own, ``pytest -m realtime --rt-knobs``: once collection is done, the pytest process
gets the same knobs a rig can ask for (controller/rt_knobs.py): SCHED_FIFO at
``--rt-fifo-priority`` (default 50), a GC freeze, and ``mlockall`` with ``--rt-mlockall``.
The emulator, bus and worker threads the tests start inherit the scheduler. A refused knob
is shown in the report header and the tests still run; the knobs are undone at the end.

Tests marked ``hil`` (ARCHITECTURE.md 8) run only against real hardware: they are skipped
unless ``QIKI_HIL_RIG=rigs/<name>.yaml`` is set (the ``hil_rig`` fixture gives that path).

Shared fixtures: ``repo_root``, ``load_bench`` (a ``bench/<name>.py`` script as a module), ``shared_data`` (``../shared/data/real``, skipped with the
reason when absent), ``rig_data``/``virtual_rig_data`` (a rig file parsed into a fresh
dict), ``write_rig`` (a dict written as YAML without aliases, which the loader refuses),
``rig_with_faults`` (the virtual rig with an emulation fault plan) and ``fly`` (build a rig
in lockstep with the square mission, run it at 100 Hz with the operator script, close it).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from hypothesis import settings as hypothesis_settings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]

# CI (.ci/run sets QIKI_HYPOTHESIS_PROFILE=ci) draws the same examples on every run, so a
# landing never hangs on a lucky draw; a developer's run keeps exploring new ones (a
# counter-example it finds becomes an explicit test, as in tests/unit/test_lean_devices.py)
hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("QIKI_HYPOTHESIS_PROFILE", "default"))
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "real"
HIL_ENV = "QIKI_HIL_RIG"

_REPORT_KEY = pytest.StashKey[object]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("qiki real time")
    group.addoption("--rt-knobs", action="store_true", default=False,
                    help="apply real-time knobs (SCHED_FIFO, GC freeze) to the test process after collection")
    group.addoption("--rt-fifo-priority", type=int, default=50, metavar="P",
                    help="SCHED_FIFO priority with --rt-knobs, 1..99 (default 50)")
    group.addoption("--rt-mlockall", action="store_true", default=False,
                    help="also mlockall(MCL_CURRENT|MCL_FUTURE) with --rt-knobs")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives Debian's /usr/bin/chromium with Playwright (tests/console); skipped when it is missing")


def pytest_collection_finish(session: pytest.Session) -> None:
    config = session.config
    if not config.getoption("--rt-knobs"):
        return
    from controller.config import RealtimeKnobsCfg
    from controller.rt_knobs import apply_realtime_knobs

    cfg = RealtimeKnobsCfg(sched_fifo_priority=config.getoption("--rt-fifo-priority"), gc_freeze=True,
                           mlockall=bool(config.getoption("--rt-mlockall")))
    report = apply_realtime_knobs(cfg)
    config.stash[_REPORT_KEY] = report
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(f"real-time knobs: {_one_line(report.as_dict())}")


def pytest_unconfigure(config: pytest.Config) -> None:
    report = config.stash.get(_REPORT_KEY, None)
    if report is not None:
        failed = report.restore()
        if failed:
            log.warning("real-time knobs not restored: %s", failed)


def _one_line(d: dict) -> str:
    parts = []
    for name in ("sched_fifo_priority", "mlockall", "gc_freeze"):
        o = d[name]
        if o["asked"] is None:
            continue
        parts.append(f"{name}={o['asked']} " + ("applied" if o["applied"] else f"REFUSED ({o['refused']})"))
    eff = d["effective"]
    parts.append(f"now {eff['policy']} {eff['priority']} on CPUs {eff['cpus']}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- hil marker


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(HIL_ENV):
        return
    skip = pytest.mark.skip(reason=f"hardware-in-the-loop test: set {HIL_ENV}=rigs/<name>.yaml to run it")
    for item in items:
        if "hil" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def hil_rig(repo_root: Path) -> Path:
    """The rig file named by ``QIKI_HIL_RIG`` (relative to the checkout unless absolute)."""
    name = os.environ.get(HIL_ENV)
    if not name:
        pytest.skip(f"{HIL_ENV} not set")
    return repo_root / name


# --------------------------------------------------------------------------- paths and rigs


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's root (the folder holding ``controller/``, ``rigs/``, ``tests/``)."""
    return REPO_ROOT


def _load_bench(name: str) -> ModuleType:
    """Import ``bench/<name>.py`` (not a package) as the module ``qiki_bench_<name>``."""
    spec = importlib.util.spec_from_file_location(f"qiki_bench_{name}", REPO_ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def load_bench() -> Callable[[str], ModuleType]:
    """A loader of the scripts in ``bench/`` by name (``load_bench("tick")``), for their unit tests."""
    return _load_bench


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data/real`` beside the checkout; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real recordings not found at {SHARED_DATA} (../shared/data/real beside the repo)")
    return SHARED_DATA


@pytest.fixture
def rig_data(repo_root: Path) -> Callable[[str], dict]:
    """``rig_data(name="virtual.yaml") -> dict``: ``rigs/<name>`` parsed afresh on every call."""

    def load(name: str = "virtual.yaml") -> dict:
        return yaml.safe_load((repo_root / "rigs" / name).read_text())

    return load


@pytest.fixture
def virtual_rig_data(rig_data: Callable[[str], dict]) -> dict:
    """``rigs/virtual.yaml`` as a dict of its own for this test (edit it freely)."""
    return rig_data("virtual.yaml")


class _NoAliasDumper(yaml.SafeDumper):
    """Repeated objects are written out in full: the loader refuses YAML aliases."""

    def ignore_aliases(self, data: object) -> bool:
        return True


@pytest.fixture
def write_rig(tmp_path: Path) -> Callable[..., Path]:
    """``write_rig(data, name="rig.yaml") -> Path``: ``data`` dumped as YAML (no aliases, keys
    sorted as ``yaml.safe_dump`` sorts them) to ``tmp_path / name``, folders created.

    A rig written anywhere under ``tmp_path`` still finds ``dbc/``, ``fsm_configs/`` and the
    profiles of the checkout (``controller/paths.py``).
    """

    def write(data: dict, name: str = "rig.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.dump(data, Dumper=_NoAliasDumper))
        return path

    return write


@pytest.fixture
def rig_with_faults(virtual_rig_data: dict, write_rig: Callable[..., Path]) -> Callable[[list[dict]], Path]:
    """``rig_with_faults(faults) -> Path``: the virtual rig with ``emulation.faults = faults``."""

    def make(faults: list[dict]) -> Path:
        virtual_rig_data["emulation"]["faults"] = faults
        return write_rig(virtual_rig_data)

    return make


# --------------------------------------------------------------------------- lockstep flights


@dataclass
class Flight:
    """What ``fly`` built and ran; every bus and link is closed when ``fly`` returns."""

    built: Any
    script: Any  # controller.run.OperatorScript, or None when the test plays the operator

    @property
    def vehicle(self) -> Any:
        return self.built.vehicle


@pytest.fixture
def fly(tmp_path: Path, repo_root: Path) -> Callable[..., Flight]:
    """``fly(rig_path, until_s=None, *, ...) -> Flight``: the main job in lockstep, by hand.

    Loads ``rig_path``, builds it with ``mission`` (default ``missions/square.yaml``) and
    ``seed``; events go to ``record`` (default a run record in ``tmp_path / "run"``). Then
    ``setup(flight)`` once, and at 100 Hz on the rig's clock, each tick::

        before(flight, k, now)          # optional, before the vehicle's tick
        vehicle.tick(k, now, dt)
        script.step(vehicle, now)       # with operator=True (controller.run.OperatorScript)
        go = after(flight, k, now)      # optional; returning False ends the run

    The run also ends once ``now >= until_s`` or the operator script is finished. The rig
    (and the run record) are closed however the loop ends.
    """
    from controller.config import load_mission, load_rig
    from controller.loop import FixedRateLoop
    from controller.record.run_record import RunRecord
    from controller.rig import build_rig
    from controller.run import OperatorScript

    def run(rig_path: Path, until_s: float | None = None, *, seed: int = 0,
            mission: Path | None = repo_root / "missions" / "square.yaml", operator: bool = True,
            record: Callable[..., None] | None = None,
            setup: Callable[[Flight], None] | None = None,
            before: Callable[[Flight, int, float], None] | None = None,
            after: Callable[[Flight, int, float], bool | None] | None = None) -> Flight:
        rig, path = load_rig(rig_path)
        run_record = RunRecord(tmp_path / "run") if record is None else None
        built = build_rig(rig, path, mission=load_mission(mission) if mission is not None else None,
                          record=run_record.event if run_record is not None else record, seed=seed)
        flight = Flight(built, OperatorScript() if operator else None)
        v = built.vehicle
        script = flight.script

        def tick(k: int, now: float, dt: float) -> bool:
            if before is not None:
                before(flight, k, now)
            v.tick(k, now, dt)
            if script is not None:
                script.step(v, now)
            go = after(flight, k, now) if after is not None else None
            if go is False or (until_s is not None and now >= until_s):
                return False
            return not (script is not None and script.finished)

        try:
            if setup is not None:
                setup(flight)
            FixedRateLoop(built.clock, 100.0, advance=built.advance).run(tick)
        finally:
            built.close()
            if run_record is not None:
                run_record.close()
        return flight

    return run


#: ``qiki`` with SIGINT at its default: ``qiki run`` leaves an inherited *ignored* SIGINT
#: ignored (POSIX, nohup: controller/stop.py), and a suite started as a background job
#: inherits SIGINT ignored; a served run's test stops it with SIGINT (the safe stop).
QIKI_SIGINT_DEFAULT = [sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                       "from controller.cli import main; sys.exit(main())"]


@pytest.fixture
def serve_run(tmp_path: Path, repo_root: Path) -> Callable[[Path], tuple[subprocess.Popen[str], str]]:
    """Start ``qiki run --serve`` on a rig with a two-waypoint mission; return (process, ws URL).

    The run lasts at most 120 s (``--duration``), listens on 127.0.0.1 with a free port
    and writes ``tmp_path/summary.json`` and ``tmp_path/runs/``.
    """
    def start(rig: Path) -> tuple[subprocess.Popen[str], str]:
        mission = tmp_path / "mission.yaml"
        mission.write_text(yaml.safe_dump({"name": "near", "waypoints": [
            {"x_m": 0.0, "y_m": 0.0, "yaw_deg": 0.0, "hold_s": 0.3},
            {"x_m": 0.5, "y_m": 0.0, "yaw_deg": 0.0, "hold_s": 0.3}],
            "reach_tolerance_m": 0.02, "reach_speed_mps": 0.02, "reach_yaw_tolerance_deg": 5.0, "timeout_s": 60.0}))
        proc = subprocess.Popen([*QIKI_SIGINT_DEFAULT, "run", "--serve", "--no-progress",
                                 "--rig", str(rig), "--mission", str(mission), "--listen", "127.0.0.1:0",
                                 "--runs-dir", str(tmp_path / "runs"), "--duration", "120",
                                 "--summary-json", str(tmp_path / "summary.json")],
                                cwd=repo_root, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        for line in proc.stderr:
            m = re.search(r"console gateway: (ws://\S+)", line)
            if m:
                return proc, m.group(1)
        raise AssertionError(f"no gateway line; exit {proc.wait()}")

    return start


QIKI_CLI = [sys.executable, "-c", "import sys; from controller.cli import main; sys.exit(main())"]


class EmulateProcess:
    """A running ``qiki emulate rigs/virtual.yaml`` and ``rigs/bench_two_process.yaml`` pointed at it.

    Attributes: ``dir`` (its ``--dir``), ``endpoints`` (``endpoints.json``), ``record``
    (``emulator.jsonl``), ``rig`` (the controller's rig file, in ``tmp_path``).
    """

    def __init__(self, tmp_path: Path, repo_root: Path) -> None:
        import json
        import time

        self.dir = tmp_path / "emu"
        self.proc = subprocess.Popen([*QIKI_CLI, "emulate", "rigs/virtual.yaml", "--dir", str(self.dir),
                                      "--modbus-port", "0"], cwd=repo_root, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        endpoints = self.dir / "endpoints.json"
        deadline = time.monotonic() + 60.0
        while not endpoints.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"qiki emulate did not come up: {self.proc.communicate()[1].decode()[-800:]}")
            time.sleep(0.05)  # polling for a condition, not timing anything
        self.endpoints = json.loads(endpoints.read_text())
        self.record = Path(self.endpoints["record"])
        port = self.endpoints["buses"]["power"]["url"].rsplit(":", 1)[1]
        text = (repo_root / "rigs" / "bench_two_process.yaml").read_text()
        assert "/tmp/qiki-emulate/" in text and "127.0.0.1:15020" in text
        self.rig = tmp_path / "bench_two_process.yaml"
        self.rig.write_text(text.replace("/tmp/qiki-emulate/", f"{self.dir}/")
                            .replace("127.0.0.1:15020", f"127.0.0.1:{port}"))

    def rows(self) -> list[dict[str, object]]:
        """The emulators' record so far (flushed every 0.1 s)."""
        from controller.rig.far_end_record import read_record

        return read_record(self.record) if self.record.exists() else []

    def clock_s(self, monotonic_s: float) -> float:
        """``time.monotonic()`` of this machine on the emulators' clock, s."""
        start = next(r for r in self.rows() if r.get("kind") == "start")
        return monotonic_s - float(start["monotonic_s_at_t0"])  # type: ignore[arg-type]

    def wait_for(self, what: str, ok: Callable[[list[dict[str, object]]], bool],
                 timeout_s: float = 20.0) -> list[dict[str, object]]:
        """Poll the record until ``ok(rows)``; fail after ``timeout_s``."""
        import time

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            rows = self.rows()
            if ok(rows):
                return rows
            time.sleep(0.05)  # polling for a condition, not timing anything
        pytest.fail(f"the emulator's record never showed {what}")

    def stop(self) -> str:
        """SIGTERM, wait (bounded), return stderr; the record then has its ``end`` row."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err.decode()


@pytest.fixture
def emulator(tmp_path: Path, repo_root: Path) -> Iterator[EmulateProcess]:
    """A ``qiki emulate`` in its own process for the test (stopped after it)."""
    emu = EmulateProcess(tmp_path, repo_root)
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def repo_mtimes(repo_root: Path) -> Callable[[], dict[str, int]]:
    """A function returning every file under the repository with its mtime (ns), caches and runs left out.

    T04/T05 compare it before and after a killed run: nothing may be written outside the
    runs folders.
    """
    skip = {".venv", ".git", "runs", ".pytest_cache", ".mypy_cache", ".ruff_cache", "__pycache__"}

    def snapshot() -> dict[str, int]:
        out = {}
        for dirpath, dirnames, filenames in os.walk(repo_root):
            dirnames[:] = [d for d in dirnames if d not in skip and not d.endswith(".egg-info")]
            for f in filenames:
                p = Path(dirpath) / f
                try:
                    out[str(p.relative_to(repo_root))] = p.stat().st_mtime_ns
                except FileNotFoundError:
                    pass
        return out

    return snapshot
