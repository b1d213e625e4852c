"""The rig check's control side: the thruster allocator and the valve board's duty source.

Both are built from the rig alone (no file, no port) by :func:`controller.rig.check.check_rig`
(its step 2: SAFETY.md K06, the PWM period against the tick, the valve delays and the minimum
impulse bit) and handed to the build in the :class:`~controller.rig.check.CheckedRig`.
"""

from __future__ import annotations

from typing import Any

from controller.config import RigCfg, ValveBoardDeviceCfg
from controller.errors import ConfigError
from controller.valve_command import ValveCommander

__all__ = ["build_allocator", "build_valve_commander"]


def build_allocator(rig: RigCfg, name: str):
    """Build the allocator chosen by ``controller.allocation.method``.

    Parameters
    ----------
    rig : RigCfg
        A validated rig (planar thruster positions).
    name : str
        The rig file as the user named it, for error messages.

    Returns
    -------
    ExactAllocator or PinvClipAllocator
        Over the effectiveness matrix ``B`` (3, N) of the thrusters
        (:func:`controller.allocation.effectiveness`), limits ``[0, max_thrust_n]`` (N).

    Raises
    ------
    ConfigError
        When the thruster geometry does not positively span the planar wrench space
        (SAFETY.md K06), or the axis weights or priorities do not fit it.
    """
    from controller.allocation import (
        ExactAllocator,
        PinvClipAllocator,
        axis_names,
        check_positive_span,
        effectiveness,
    )

    positions = [t.position_m for t in rig.thrusters]
    dirs = [t.force_dir for t in rig.thrusters]
    if len(positions[0]) != 2:
        raise ConfigError(name, "thrusters", "the virtual rig's world is planar: positions must be [x, y]")
    B = effectiveness(positions, dirs)
    ok, reason = check_positive_span(B)
    if not ok:
        raise ConfigError(name, "thrusters", f"geometry cannot produce the needed wrench space: {reason}")
    u_max = [t.max_thrust_n for t in rig.thrusters]
    alloc_cfg = rig.controller.allocation
    kwargs: dict[str, Any] = {}
    if alloc_cfg.axis_weights is not None:
        if len(alloc_cfg.axis_weights) != B.shape[0]:
            raise ConfigError(name, "controller.allocation.axis_weights", f"needs {B.shape[0]} weights")
        kwargs["axis_weights"] = alloc_cfg.axis_weights
    if alloc_cfg.axis_priorities is not None:
        key = "controller.allocation.axis_priorities"
        if alloc_cfg.method != "exact":
            raise ConfigError(name, key, "axis priorities need method: exact")
        names = [a.lower() for a in axis_names(B.shape[0])]
        groups: list[list[int]] = []
        seen: set[str] = set()
        for gi, group in enumerate(alloc_cfg.axis_priorities):
            idx = []
            for a in group:
                if a.lower() not in names:
                    raise ConfigError(name, f"{key}.{gi}",
                                      f"unknown axis {a!r} (axes: {', '.join(axis_names(B.shape[0]))})")
                if a.lower() in seen:
                    raise ConfigError(name, f"{key}.{gi}", f"axis {a!r} named twice")
                seen.add(a.lower())
                idx.append(names.index(a.lower()))
            groups.append(idx)
        kwargs["axis_priorities"] = groups
    if alloc_cfg.method == "exact":
        return ExactAllocator(B, u_max, **kwargs)
    return PinvClipAllocator(B, u_max, **kwargs)


def build_valve_commander(rig: RigCfg, name: str) -> ValveCommander:
    """Build the valve board's duty source from the rig (PWM period, delays, impulse bit).

    Parameters
    ----------
    rig : RigCfg
        A validated rig with one valve board.
    name : str
        The rig file as the user named it, for error messages.

    Returns
    -------
    ValveCommander
        Valve delays from the valve board's ``open_delay_s``/``close_delay_s``, else the
        emulated world's, else 0.

    Raises
    ------
    ConfigError
        ``devices.<valve board>``: the PWM period is not a whole number of control ticks,
        the duty step is too coarse for the minimum impulse bit, or the valve closes a
        whole period later than it opens.
    """
    vb_name, vb = next((k, d) for k, d in rig.devices.items() if isinstance(d, ValveBoardDeviceCfg))
    emu = rig.emulation
    w_delays = (emu.world.valve_open_delay_s, emu.world.valve_close_delay_s) if emu is not None else (0.0, 0.0)
    try:
        return ValveCommander(
            [t.max_thrust_n for t in rig.thrusters],
            vb.pwm_period_s,
            1.0 / rig.controller.rate_hz,
            vb.min_impulse_bit_s,
            open_delay_s=vb.open_delay_s if vb.open_delay_s is not None else w_delays[0],
            close_delay_s=vb.close_delay_s if vb.close_delay_s is not None else w_delays[1],
        )
    except ValueError as exc:  # period vs tick rate, delays, minimum impulse bit vs duty step
        raise ConfigError(name, f"devices.{vb_name}", str(exc)) from exc
