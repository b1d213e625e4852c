"""The simulated world of the virtual rig: a planar (3-DOF) rigid body pushed by valves.

State, world frame (x east/forward at start, y left, z up; yaw about z, counter-clockwise):
``x_m, y_m, yaw_rad`` and their rates ``vx_mps, vy_mps, yaw_rate_radps``. Forces come from
thrusters fixed in the body frame, each delivering ``max_thrust_n`` while its valve is
physically open. The valve board emulator says, per physics step, what fraction of the
step each valve was open, so the impulse integrated here is exact for on/off valves even
when a pulse is shorter than the step.

Integration: semi-implicit (symplectic) Euler at ``physics_rate_hz`` (>= 1 kHz), with the
constant-over-the-step force rotated at the step's starting yaw. At 1 kHz and yaw rates
below 1 rad/s the rotation error per step is below 1e-3 rad of force direction.
Reference: E. Hairer, C. Lubich, G. Wanner, *Geometric Numerical Integration*, 2006, I.1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

_RUN_FORCES_N = 1024  # World.run force sums kept (one per valve pattern: 2**8 at most)
#: tau / 2 (exactly pi as a float). ``math.remainder(x, math.tau)`` returns ``x`` itself
#: for every ``x`` with ``abs(x) <= _HALF_TURN`` (the nearest multiple of tau is 0, ties
#: to even; CPython's ``m_remainder`` then gives ``copysign(1.0, x) * abs(x)``, signed
#: zero included) and for a NaN (returned as it is), so :meth:`World.run` calls it only
#: above or below that range (an infinite yaw still raises there). Two plain float
#: comparisons: a chained ``-a <= x <= a`` was slower than the call it saved.
_HALF_TURN = math.tau / 2


@dataclass(frozen=True, slots=True)
class ThrusterGeometry:
    """One thruster in the body frame: position (m), unit force direction, max thrust (N)."""

    x_m: float
    y_m: float
    dir_x: float
    dir_y: float
    max_thrust_n: float


class World:
    """Planar rigid body with thrusters; stepped by the caller, never by itself.

    Parameters
    ----------
    mass_kg : float
        Vehicle mass (kg), > 0.
    inertia_kgm2 : float
        Moment of inertia about z (kg m^2), > 0.
    thrusters : sequence of ThrusterGeometry
        Thrusters in valve order (thruster i is driven by open fraction i).
    start_pose : (3,) sequence of float
        ``(x_m, y_m, yaw_rad)`` in the world frame.
    linear_drag_n_per_mps : float, optional
        Viscous drag of the air bearing (N per m/s), default 0.
    """

    __slots__ = (
        "mass_kg", "inertia_kgm2", "thrusters", "x_m", "y_m", "yaw_rad", "vx_mps", "vy_mps",
        "yaw_rate_radps", "ax_body_mps2", "ay_body_mps2", "time_s", "impulse_ns",
        "_fx", "_fy", "_mz", "_drag", "_run_forces",
    )

    def __init__(
        self,
        mass_kg: float,
        inertia_kgm2: float,
        thrusters: Sequence[ThrusterGeometry],
        start_pose: Sequence[float] = (0.0, 0.0, 0.0),
        linear_drag_n_per_mps: float = 0.0,
    ) -> None:
        if mass_kg <= 0 or inertia_kgm2 <= 0:
            raise ValueError("mass_kg and inertia_kgm2 must be > 0")
        self.mass_kg = float(mass_kg)
        self.inertia_kgm2 = float(inertia_kgm2)
        self.thrusters = tuple(thrusters)
        self.x_m, self.y_m, self.yaw_rad = (float(v) for v in start_pose)
        self.vx_mps = self.vy_mps = self.yaw_rate_radps = 0.0
        self.ax_body_mps2 = self.ay_body_mps2 = 0.0
        self.time_s = 0.0
        #: Delivered impulse per thruster (N s) since start.
        self.impulse_ns = [0.0] * len(self.thrusters)
        # Body-frame force and torque per unit open fraction, precomputed once.
        self._fx = [t.max_thrust_n * t.dir_x for t in self.thrusters]
        self._fy = [t.max_thrust_n * t.dir_y for t in self.thrusters]
        self._mz = [t.x_m * fy - t.y_m * fx for t, fx, fy in zip(self.thrusters, self._fx, self._fy, strict=True)]
        self._drag = float(linear_drag_n_per_mps)
        # run()'s force sums and impulse increments per (dt_s, open fractions): a pure
        # function of the key and the fixed thrusters, computed once per key.
        self._run_forces: dict[tuple[float, tuple[float, ...]],
                               tuple[float, float, float, tuple[tuple[int, float], ...]]] = {}

    def step(self, dt_s: float, open_fractions: Sequence[float]) -> None:
        """Advance the body by ``dt_s`` seconds (per physics step, 1 kHz or finer).

        Parameters
        ----------
        dt_s : float
            Step length (s), > 0.
        open_fractions : sequence of float, shape (N,)
            Fraction of the step during which each valve was physically open, in [0, 1].
        """
        fxb = fyb = mz = 0.0
        fx, fy, m = self._fx, self._fy, self._mz
        imp = self.impulse_ns
        for i, u in enumerate(open_fractions):
            if u:
                fxb += fx[i] * u
                fyb += fy[i] * u
                mz += m[i] * u
                imp[i] += self.thrusters[i].max_thrust_n * u * dt_s
        # Body -> world rotation of the force, written out (the convention and operation
        # order of firmware_bridge.protocols.frames.rotate / rotate_inverse): a Pose2D per
        # 1 kHz step would double the cost of the step.
        c = math.cos(self.yaw_rad)
        s = math.sin(self.yaw_rad)
        fxw = c * fxb - s * fyb - self._drag * self.vx_mps
        fyw = s * fxb + c * fyb - self._drag * self.vy_mps
        inv_m = 1.0 / self.mass_kg
        self.vx_mps += fxw * inv_m * dt_s
        self.vy_mps += fyw * inv_m * dt_s
        self.yaw_rate_radps += mz / self.inertia_kgm2 * dt_s
        self.x_m += self.vx_mps * dt_s
        self.y_m += self.vy_mps * dt_s
        self.yaw_rad = math.remainder(self.yaw_rad + self.yaw_rate_radps * dt_s, math.tau)
        # What an IMU on the body feels (specific force, body frame).
        self.ax_body_mps2 = (c * fxw + s * fyw) * inv_m
        self.ay_body_mps2 = (-s * fxw + c * fyw) * inv_m
        self.time_s += dt_s

    def run(self, n_steps: int, dt_s: float, open_fractions: Sequence[float]) -> None:
        """Take ``n_steps`` steps of ``dt_s`` with the same open fractions; bit for bit :meth:`step` n times.

        The event-driven simulation's inner loop: between two valve edges (and between two
        emulator actions) the fractions do not change, so the per-step work is only the
        integration, with the force sums, the impulse increments and the torque term
        computed once (the sums and increments once per valve pattern and step length,
        kept for the next run with the same). When no valve is open, there is no drag and
        every rate is non-zero, the rates cannot change (they gain an exact zero), so the
        steps before the last only move the pose; the last step is a full one (it sets the
        IMU's specific force).

        Parameters
        ----------
        n_steps : int
            Steps to take (>= 0; 0 does nothing).
        dt_s : float
            Step length (s), > 0.
        open_fractions : sequence of float, shape (N,)
            Fraction of every step during which each valve was physically open, in [0, 1],
            as Python floats (the simulation passes lists): the yaw is wrapped with
            ``math.remainder`` only when it leaves [-pi, pi], so inside it ``yaw_rad`` keeps
            the type of the sums (a numpy scalar from numpy fractions; :meth:`step` gives a float).
        """
        if n_steps <= 0:
            return
        key = (dt_s, tuple(open_fractions))
        forces = self._run_forces.get(key)
        if forces is None:
            fxb = fyb = mz = 0.0
            fx, fy, m = self._fx, self._fy, self._mz
            inc_list: list[tuple[int, float]] = []
            for i, u in enumerate(open_fractions):
                if u:
                    fxb += fx[i] * u
                    fyb += fy[i] * u
                    mz += m[i] * u
                    inc_list.append((i, self.thrusters[i].max_thrust_n * u * dt_s))
            forces = (fxb, fyb, mz, tuple(inc_list))
            if len(self._run_forces) >= _RUN_FORCES_N:
                self._run_forces.clear()
            self._run_forces[key] = forces
        fxb, fyb, mz, incs = forces
        imp = self.impulse_ns
        drag = self._drag
        inv_m = 1.0 / self.mass_kg
        dr = mz / self.inertia_kgm2 * dt_s
        x, y, yaw = self.x_m, self.y_m, self.yaw_rad
        vx, vy, r = self.vx_mps, self.vy_mps, self.yaw_rate_radps
        time_s = self.time_s
        cos, sin, rem, tau = math.cos, math.sin, math.remainder, math.tau
        half_turn, neg_half_turn = _HALF_TURN, -_HALF_TURN
        n = n_steps
        r_kept = math.isfinite(r) and (r != 0.0 or math.copysign(1.0, r) > 0.0)
        if (not incs and drag == 0.0 and r_kept and vx != 0.0 and vy != 0.0
                and math.isfinite(vx) and math.isfinite(vy)):
            # no force, no drag: v += (+-0) leaves a non-zero rate as it is (and r + 0.0 a +0.0)
            vxdt, vydt, rdt = vx * dt_s, vy * dt_s, r * dt_s
            for _ in range(n - 1):
                x += vxdt
                y += vydt
                yaw += rdt
                if yaw > half_turn or yaw < neg_half_turn:  # else remainder(yaw, tau) is yaw (NaN too)
                    yaw = rem(yaw, tau)
                time_s += dt_s
            n = 1
        c = s = fxw = fyw = 0.0
        for _ in range(n):
            for i, inc in incs:
                imp[i] += inc
            c = cos(yaw)
            s = sin(yaw)
            fxw = c * fxb - s * fyb - drag * vx
            fyw = s * fxb + c * fyb - drag * vy
            vx += fxw * inv_m * dt_s
            vy += fyw * inv_m * dt_s
            r += dr
            x += vx * dt_s
            y += vy * dt_s
            yaw += r * dt_s
            if yaw > half_turn or yaw < neg_half_turn:  # else remainder(yaw, tau) is yaw (NaN too)
                yaw = rem(yaw, tau)
            time_s += dt_s
        self.x_m, self.y_m, self.yaw_rad = x, y, yaw
        self.vx_mps, self.vy_mps, self.yaw_rate_radps = vx, vy, r
        self.ax_body_mps2 = (c * fxw + s * fyw) * inv_m
        self.ay_body_mps2 = (-s * fxw + c * fyw) * inv_m
        self.time_s = time_s

    @property
    def pose(self) -> tuple[float, float, float]:
        """``(x_m, y_m, yaw_rad)`` in the world frame."""
        return (self.x_m, self.y_m, self.yaw_rad)
