"""Schema and loader of a rig file: vehicle, thrusters, buses, devices, emulation, controller.

:func:`load_rig` validates the file against :class:`RigCfg`, then checks what spans
sections: thrusters against the valve board, and the cross-field safety budgets
(:func:`_budget_checks`; the bounds are tabled in :mod:`controller.config.common`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from controller.config.buses import BusCfg
from controller.config.common import MAX_BUSES, MAX_DEVICES, MAX_THRUSTERS, Strict
from controller.config.console import ConsoleCfg
from controller.config.controller_cfg import ControllerCfg, PowerCfg, RadarCfg
from controller.config.devices import DeviceCfg, McuDeviceCfg, ValveBoardDeviceCfg
from controller.config.emulation import EmulationCfg
from controller.config.record import RecordCfg
from controller.errors import ConfigError
from controller.paths import resolve_data_path
from controller.yamlio import load_model


class VehicleCfg(Strict):
    """Rigid-body parameters of the planar vehicle (air-bearing table, 3 DOF)."""

    mass_kg: Annotated[float, Field(gt=0.0, le=1000.0)]
    inertia_kgm2: Annotated[float, Field(gt=0.0, le=1000.0)]


class ThrusterCfg(Strict):
    """One solenoid thruster: where it sits and which way it pushes the body.

    ``position_m`` and ``force_dir`` are in the body frame (x forward, y left, z up); 2
    components for a planar rig, 3 for a 6-DOF one. ``force_dir`` may have any non-zero
    length: it is stored as written and normalised where it is used
    (:func:`controller.allocation.effectiveness`, the emulated world's geometry).
    """

    name: str
    position_m: list[float] = Field(min_length=2, max_length=3)
    force_dir: list[float] = Field(min_length=2, max_length=3)
    max_thrust_n: Annotated[float, Field(gt=0.0)]
    valve: Annotated[int, Field(ge=0, le=7)] | None = None

    @model_validator(mode="after")
    def _dir_nonzero(self) -> ThrusterCfg:
        if len(self.position_m) != len(self.force_dir):
            raise ValueError("position_m and force_dir must have the same length")
        if math.hypot(*self.force_dir) < 1e-9:
            raise ValueError("force_dir has zero length")
        return self


class RigCfg(Strict):
    """A whole rig: vehicle, thrusters, buses, devices, optional emulation, controller."""

    name: str
    vehicle: VehicleCfg
    thrusters: list[ThrusterCfg] = Field(min_length=1, max_length=MAX_THRUSTERS)
    buses: dict[str, BusCfg] = Field(max_length=MAX_BUSES)
    devices: dict[str, DeviceCfg] = Field(max_length=MAX_DEVICES)
    emulation: EmulationCfg | None = None
    controller: ControllerCfg = Field(default_factory=ControllerCfg)
    radar: RadarCfg | None = None
    power: PowerCfg | None = None
    #: The flight record: full, event-triggered or off (:mod:`controller.config.record`).
    record: RecordCfg = Field(default_factory=RecordCfg)
    #: The operator console gateway of ``qiki run --serve`` (:mod:`controller.config.console`).
    console: ConsoleCfg = Field(default_factory=ConsoleCfg)

    @model_validator(mode="after")
    def _cross_checks(self) -> RigCfg:
        names = [t.name for t in self.thrusters]
        if len(set(names)) != len(names):
            raise ValueError("thruster names must be unique")
        for dev_name, dev in self.devices.items():
            if dev.bus not in self.buses:
                raise ValueError(f"device {dev_name!r} names unknown bus {dev.bus!r}")
        return self


def _thruster_checks(rig: RigCfg, name: str) -> None:
    boards = [d for d in rig.devices.values() if isinstance(d, ValveBoardDeviceCfg)]
    if not boards:
        raise ConfigError(name, "devices", "a rig needs one valve_board device")
    board = boards[0]
    dims = {len(t.position_m) for t in rig.thrusters}
    if len(dims) != 1:
        raise ConfigError(name, "thrusters", "mixed 2-D and 3-D thruster positions")
    if len(rig.thrusters) > board.n_valves:
        raise ConfigError(
            name, "thrusters", f"{len(rig.thrusters)} thrusters but the board has {board.n_valves} valves")
    for i, t in enumerate(rig.thrusters):
        if t.max_thrust_n > board.max_thrust_n:
            raise ConfigError(
                name,
                f"thrusters[{i}].max_thrust_n",
                f"{t.max_thrust_n} N is above the valve board maximum {board.max_thrust_n} N",
            )
        if t.valve is not None and t.valve >= board.n_valves:
            raise ConfigError(name, f"thrusters[{i}].valve", f"valve {t.valve} does not exist on the board")


def _ticks_s(period_s: float, tick_s: float) -> float:
    """``period_s`` rounded up to whole control ticks (s): when a per-tick sender acts."""
    return max(1, math.ceil(period_s / tick_s - 1e-9)) * tick_s


def _budget_checks(rig: RigCfg, name: str) -> None:
    """Cross-field safety budgets (table in :mod:`controller.config.common`); one :class:`ConfigError` each.

    * MCU: the gap between host heartbeats -- ``heartbeat_period_s`` rounded up to whole
      control ticks, since heartbeats leave in the write phase -- is at most half of every
      watchdog that applies: the device's ``watchdog_timeout_s`` and, on an emulated rig,
      ``emulation.heartbeat_timeout_s`` (issue 10: "heartbeat period <= watchdog / 2";
      one lost heartbeat must not drop the valve rail).
    * Valve board: one ``VB_Command`` per control tick; the tick is at most half of the
      board's ``command_timeout_s`` and of ``emulation.command_timeout_s`` (same rule).
    * ``controller.safety.max_overruns_per_s`` is below the tick rate, else the lag
      monitor (SAFETY.md T02) can never trip.
    """
    rate_hz = rig.controller.rate_hz
    tick_s = 1.0 / rate_hz
    emu = rig.emulation
    for dev_name, dev in rig.devices.items():
        if isinstance(dev, McuDeviceCfg):
            gap_s = _ticks_s(dev.heartbeat_period_s, tick_s)
            watchdogs = [(f"devices.{dev_name}.watchdog_timeout_s", dev.watchdog_timeout_s)]
            if emu is not None:
                watchdogs.append(("emulation.heartbeat_timeout_s", emu.heartbeat_timeout_s))
            for wd_key, wd_s in watchdogs:
                if gap_s > wd_s / 2 + 1e-9:
                    raise ConfigError(
                        name, f"devices.{dev_name}.heartbeat_period_s",
                        f"heartbeats {gap_s * 1000:.0f} ms apart (at {rate_hz:g} Hz ticks) exceed half the "
                        f"MCU watchdog {wd_key} = {wd_s:g} s (heartbeat period <= watchdog / 2)")
        elif isinstance(dev, ValveBoardDeviceCfg):
            timeouts = [(f"devices.{dev_name}.command_timeout_s", dev.command_timeout_s)]
            if emu is not None:
                timeouts.append(("emulation.command_timeout_s", emu.command_timeout_s))
            for t_key, t_s in timeouts:
                if tick_s > t_s / 2 + 1e-9:
                    raise ConfigError(
                        name, "controller.rate_hz",
                        f"one valve command per tick, {tick_s * 1000:.0f} ms apart, exceeds half the valve board "
                        f"command timeout {t_key} = {t_s:g} s (command period <= timeout / 2)")
    n_over = rig.controller.safety.max_overruns_per_s
    if n_over >= rate_hz:
        raise ConfigError(
            name, "controller.safety.max_overruns_per_s",
            f"{n_over} overruns in 1 s cannot happen at {rate_hz:g} Hz: the lag monitor would never trip "
            "(SAFETY.md T02)")


def thruster_valves(rig: RigCfg) -> list[int]:
    """Return the valve index of each thruster.

    Parameters
    ----------
    rig : RigCfg
        A validated rig.

    Returns
    -------
    list of int, shape (N,)
        Per thruster, in file order: its explicit ``valve``, else its list position.
    """
    return [t.valve if t.valve is not None else i for i, t in enumerate(rig.thrusters)]


def load_rig(path: str | Path) -> tuple[RigCfg, Path]:
    """Load and validate a rig file.

    Parameters
    ----------
    path : str or Path
        Rig YAML, as the user named it (looked up with :func:`resolve_data_path`).

    Returns
    -------
    (RigCfg, Path)
        The validated rig and the resolved file path (for resolving files it names).

    Raises
    ------
    ConfigError
        One line with file and key path (SAFETY.md K03, K04, K06), including the
        cross-field safety budgets of :func:`_budget_checks`.
    """
    name = str(path)
    resolved = resolve_data_path(path)
    rig = load_model(RigCfg, resolved, name)
    _thruster_checks(rig, name)
    valves = thruster_valves(rig)
    if len(set(valves)) != len(valves):
        raise ConfigError(name, "thrusters", "two thrusters share one valve")
    _budget_checks(rig, name)
    return rig, resolved
