"""The options of ``qiki run`` (:class:`RunOptions`), their checks, and the run folder."""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from controller.errors import ConfigError

if TYPE_CHECKING:
    from controller.loop import LoopStats
    from controller.record.session import FlightSession
    from controller.record.snapshots import ResumePoint

__all__ = ["MAX_SEED", "OPTIONS_NAME", "RunOptions", "check_options", "prepare_run_folder"]


@dataclass
class RunOptions:
    """Options of ``qiki run`` (see the CLI for their meaning)."""

    rig: str = "rigs/virtual.yaml"
    mission: str | None = "missions/square.yaml"
    realtime: bool = False
    duration_s: float | None = None
    seed: int = 0
    summary_json: str | None = None
    runs_dir: str = "runs"
    progress: bool = True
    lr_replay: str | None = None
    sr_replay: str | None = None
    #: False: no operator script; the stack boots, passes POST and stays idle (monitors its
    #: buses) until ``duration_s``, which is then required.
    arm: bool = True
    #: Called with the loop's :class:`~controller.loop.LoopStats` when the loop ends normally
    #: (not when a tick raised); for benches, not the CLI. Setting it makes the loop keep
    #: every tick's period error, duration and start (memory grows with the run).
    on_loop_stats: Callable[[LoopStats], None] | None = None
    #: Write the flight record ``run.mcap`` (issue 12); False for benches that measure
    #: the cost of recording.
    record: bool = True
    #: Replay (``qiki replay``): the recorded inputs and the sink of the replayed outputs;
    #: the rig is built with replay ports, no emulator and no world.
    replay: FlightSession | None = None
    #: A replay from a recorded snapshot (``qiki replay --from``): its state is put back
    #: into the built vehicle and the run goes on with the tick after it (issue 12 part 4).
    resume: ResumePoint | None = None
    #: ``qiki run --serve`` (issue 14): no operator script; the vehicle boots, passes POST
    #: and waits for a console (:mod:`controller.console`); the mission is loaded, not
    #: started. Lockstep is paced to real time. Ends on a signal or ``duration_s``.
    serve: bool = False
    #: ``--listen HOST:PORT`` of the console gateway (None: ``127.0.0.1:8765``).
    listen: str | None = None
    #: Served runs: called with the gateway's ``ws://host:port/ws`` once it listens (tests,
    #: benches; the bound port when ``--listen`` asked for port 0).
    on_gateway: Callable[[str], None] | None = None


#: Name used for command-line options in one-line errors (``qiki run: --duration: ...``).
OPTIONS_NAME = "qiki run"
#: Largest accepted seed (numpy's SeedSequence and Python's random take any; 2**63-1 keeps
#: it a signed 64-bit integer in every record).
MAX_SEED = 2**63 - 1


def check_options(opts: RunOptions) -> None:
    """Validate every option of ``qiki run`` before anything is created (ISSUE 10 part 4).

    Parameters
    ----------
    opts : RunOptions
        The options.

    Raises
    ------
    ConfigError
        ``qiki run: --duration: must be a finite number of seconds > 0 (got nan)`` and
        the like: a non-finite or non-positive duration, ``--no-arm`` without a
        duration, a negative or huge seed, a runs folder that cannot be created or
        written, a ``--summary-json`` whose folder does not exist or is not writable,
        or that names a directory; replay files that are not regular files.
    """
    d = opts.duration_s
    if d is not None:
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d <= 0:
            raise ConfigError(OPTIONS_NAME, "--duration", f"must be a finite number of seconds > 0 (got {d!r})")
    if opts.listen is not None:
        if not opts.serve:
            raise ConfigError(OPTIONS_NAME, "--listen", "needs --serve")
        from controller.config.console import parse_listen

        try:
            parse_listen(opts.listen)
        except ValueError as exc:
            raise ConfigError(OPTIONS_NAME, "--listen", str(exc)) from None
    if not opts.arm and d is None:
        raise ConfigError(OPTIONS_NAME, "--no-arm", "needs --duration (an idle run has no other end)")
    if isinstance(opts.seed, bool) or not isinstance(opts.seed, int) or not 0 <= opts.seed <= MAX_SEED:
        raise ConfigError(OPTIONS_NAME, "--seed", f"must be an integer in 0..{MAX_SEED} (got {opts.seed!r})")
    if opts.summary_json:
        target = Path(opts.summary_json)
        parent = target.parent if str(target.parent) else Path(".")
        if target.is_dir():
            raise ConfigError(OPTIONS_NAME, "--summary-json", f"{target} is a directory")
        if not parent.is_dir():
            raise ConfigError(OPTIONS_NAME, "--summary-json", f"folder {parent} does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(OPTIONS_NAME, "--summary-json", f"folder {parent} is not writable")
    for key, value in (("--lr-replay", opts.lr_replay), ("--sr-replay", opts.sr_replay)):
        if value is not None:
            p = Path(value)
            if not p.exists():
                raise ConfigError(OPTIONS_NAME, key, f"{value}: file not found")
            if not p.is_file():
                raise ConfigError(OPTIONS_NAME, key, f"{value}: not a regular file")


def prepare_run_folder(runs_dir: str) -> Path:
    """Create ``runs_dir/<timestamp>/`` and prove it writable (ISSUE 10 part 4).

    Parameters
    ----------
    runs_dir : str
        Folder that holds run folders (created if missing).

    Returns
    -------
    Path
        The new, empty run folder.

    Raises
    ------
    ConfigError
        ``qiki run: --runs-dir: runs: cannot create or write: Permission denied``.
    """
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    base = Path(runs_dir)
    folder = base / stamp
    try:
        folder.mkdir(parents=True, exist_ok=False)
        probe = folder / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(OPTIONS_NAME, "--runs-dir", f"{runs_dir}: cannot create or write a run folder: "
                                                      f"{exc.strerror or exc}") from None
    return folder


