"""Planar frames: poses, sensor mounts and the rigid transforms between them (sans-IO).

The one place where QIKI writes a 2-D pose or moves a point or a vector from one frame to
another. Used by the radar protocols, drivers and emulators, the simulated world, the
tracker and the controller. Pure code: no I/O, no sleeping, no threads.

Frames
------
* **world** -- the planar inertial frame of the table; the vehicle pose
  ``(x_m, y_m, yaw_rad)`` is given in it (the MCU's pose estimate, the simulated world).
* **body** -- the vehicle frame: origin at the vehicle reference point, x forward, y left,
  z up (ARCHITECTURE.md section 6; the thruster geometry uses it too).
* **sensor** (radar) frame -- a sensor's own frame, x along the boresight, y left; its
  pose in the body frame is the sensor's :class:`Mount`. A sensor whose wire format uses
  other axes (TI's IWR6843: x right, y boresight) swaps them in its protocol module.

Angles are radians, yaw counter-clockwise (about +z) from the parent frame's x axis to
the child frame's x axis. Degrees exist only in YAML and are converted once, in
:meth:`Mount.from_degrees`.

Mathematics
-----------
A :class:`Pose2D` ``T_ab = (x, y, yaw)`` is the pose of frame ``b`` in frame ``a``, the
standard SE(2) rigid transform (J.-L. Blanco, *A tutorial on SE(3) transformation
parameterizations and on-manifold optimization*, UMA-MAPIR-2010-01, section 2.1; R. M.
Murray, Z. Li, S. S. Sastry, *A Mathematical Introduction to Robotic Manipulation*, CRC
1994, section 2.2)::

    p_a = t + R(yaw) p_b,        R(yaw) = [[cos yaw, -sin yaw],
                                           [sin yaw,  cos yaw]]

    compose(T_ab, T_bc) = T_ac = (t_ab + R(yaw_ab) t_bc,  yaw_ab + yaw_bc)
    inverse(T_ab)       = T_ba = (-R(yaw_ab)^T t_ab,      -yaw_ab)

Floating-point order
--------------------
Every function evaluates its products and sums in one fixed order, written out in its
docstring (``x + c*px - s*py`` is ``(x + c*px) - s*py``). Lockstep runs are compared bit
for bit (``bench/behaviour_digest.py``), so that order is part of the contract: do not
"simplify" it. Yaw sums are not wrapped (:func:`compose`); wrap with :func:`wrap_angle`
where an angle is reported.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge.errors import ProtocolError

__all__ = [
    "FrameError",
    "Mount",
    "Pose2D",
    "apply",
    "apply_inverse",
    "compose",
    "inverse",
    "rotate",
    "rotate_inverse",
    "wrap_angle",
    "yaw_cos_sin",
]


class FrameError(ProtocolError, ValueError):
    """A pose or mount given in configuration has the wrong shape or a non-finite value."""


@dataclass(frozen=True, slots=True)
class Pose2D:
    """Pose of a child frame in a parent frame: an element of SE(2).

    Attributes
    ----------
    x_m, y_m : float
        Origin of the child frame in the parent frame, m.
    yaw_rad : float
        Angle from the parent x axis to the child x axis, counter-clockwise, rad (not
        wrapped).

    Notes
    -----
    ``cos(yaw_rad)`` and ``sin(yaw_rad)`` are computed once, at construction, and used by
    every transform (:attr:`cos_yaw`, :attr:`sin_yaw`; NaN for a non-finite yaw). A pose
    unpacks like the tuple ``(x_m, y_m, yaw_rad)``.
    """

    x_m: float = 0.0
    y_m: float = 0.0
    yaw_rad: float = 0.0
    cos_yaw: float = field(init=False, repr=False, compare=False)
    sin_yaw: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        c, s = yaw_cos_sin(self.yaw_rad)
        object.__setattr__(self, "cos_yaw", c)
        object.__setattr__(self, "sin_yaw", s)

    def __iter__(self) -> Iterator[float]:
        yield self.x_m
        yield self.y_m
        yield self.yaw_rad

    def is_finite(self) -> bool:
        """Return True when all three components are finite."""
        return math.isfinite(self.x_m) and math.isfinite(self.y_m) and math.isfinite(self.yaw_rad)


@dataclass(frozen=True, slots=True)
class Mount(Pose2D):
    """Pose of a sensor frame (x along the boresight, y left) in the vehicle body frame.

    Attributes
    ----------
    x_m, y_m : float
        The sensor's reference point in the body frame, m.
    yaw_rad : float
        Boresight direction, counter-clockwise from body x, rad.

    Notes
    -----
    The rig YAML gives a mount as ``{x_m, y_m, yaw_deg}`` (``controller.config.MountCfg``);
    build it with :meth:`from_config` or :meth:`from_degrees`, the only place where a mount
    angle is converted from degrees.
    """

    @classmethod
    def from_degrees(cls, x_m: float, y_m: float, yaw_deg: float) -> Mount:
        """Build a mount from configuration units.

        Parameters
        ----------
        x_m, y_m : float
            Position in the body frame, m.
        yaw_deg : float
            Boresight direction, counter-clockwise from body x, degrees.

        Returns
        -------
        Mount
            ``yaw_rad = math.radians(yaw_deg)``.

        Raises
        ------
        FrameError
            If a value is not a finite number.
        """
        try:
            x, y, yaw = float(x_m), float(y_m), float(yaw_deg)
        except (TypeError, ValueError) as exc:
            raise FrameError(f"mount values must be numbers, got {(x_m, y_m, yaw_deg)!r}") from exc
        if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(yaw)):
            raise FrameError(f"mount values must be finite, got {(x_m, y_m, yaw_deg)!r}")
        return cls(x, y, math.radians(yaw))

    @classmethod
    def from_config(cls, mount: Any) -> Mount:
        """Build a mount from any of the shapes a configuration gives it in.

        Parameters
        ----------
        mount : Mount, mapping, object or sequence
            A :class:`Mount` (returned unchanged); a :class:`Pose2D` (radians already,
            converted as is); a mapping with keys ``x_m``, ``y_m`` and
            optionally ``yaw_deg`` (default 0); an object with attributes ``x_m``, ``y_m``,
            ``yaw_deg`` (``controller.config.MountCfg``); or ``(x_m, y_m, yaw_deg)``.
            Metres in the body frame, degrees counter-clockwise from body x.

        Returns
        -------
        Mount

        Raises
        ------
        FrameError
            If the shape is wrong or a value is not a finite number.
        """
        if isinstance(mount, Mount):
            return mount
        if isinstance(mount, Pose2D):  # iterable too: never read its yaw_rad as degrees
            return cls(mount.x_m, mount.y_m, mount.yaw_rad)
        if isinstance(mount, Mapping):
            try:
                values = (mount["x_m"], mount["y_m"], mount.get("yaw_deg", 0.0))
            except KeyError as exc:
                raise FrameError(f"mount lacks {exc.args[0]!r} (need x_m, y_m, yaw_deg)") from exc
        elif all(hasattr(mount, k) for k in ("x_m", "y_m", "yaw_deg")):
            values = (mount.x_m, mount.y_m, mount.yaw_deg)
        else:
            try:
                values = tuple(mount)
            except TypeError as exc:
                raise FrameError(f"mount must be (x_m, y_m, yaw_deg), got {mount!r}") from exc
            if len(values) != 3:
                raise FrameError(f"mount must be (x_m, y_m, yaw_deg), got {mount!r}")
        return cls.from_degrees(*values)


def compose(a: Pose2D, b: Pose2D) -> Pose2D:
    """Chain two poses: ``T_ac = T_ab * T_bc``.

    Parameters
    ----------
    a : Pose2D
        Pose of frame b in frame a (e.g. the vehicle in the world).
    b : Pose2D
        Pose of frame c in frame b (e.g. a sensor :class:`Mount` in the body).

    Returns
    -------
    Pose2D
        Pose of frame c in frame a: ``x = a.x + c*b.x - s*b.y``,
        ``y = a.y + s*b.x + c*b.y``, ``yaw = a.yaw + b.yaw`` (not wrapped), with ``c, s``
        the cosine and sine of ``a.yaw_rad``.
    """
    c, s = a.cos_yaw, a.sin_yaw
    return Pose2D(a.x_m + c * b.x_m - s * b.y_m, a.y_m + s * b.x_m + c * b.y_m, a.yaw_rad + b.yaw_rad)


def inverse(p: Pose2D) -> Pose2D:
    """Invert a pose: ``T_ba = T_ab^-1``.

    Parameters
    ----------
    p : Pose2D
        Pose of frame b in frame a.

    Returns
    -------
    Pose2D
        Pose of frame a in frame b: ``x = -c*x - s*y``, ``y = s*x - c*y``, ``yaw = -yaw``.
    """
    c, s = p.cos_yaw, p.sin_yaw
    return Pose2D(-c * p.x_m - s * p.y_m, s * p.x_m - c * p.y_m, -p.yaw_rad)


def apply(pose: Pose2D, point: tuple[float, float]) -> tuple[float, float]:
    """Express a point given in the child frame in the parent frame: ``p_a = t + R p_b``.

    Parameters
    ----------
    pose : Pose2D
        Pose of the child frame in the parent frame (a :class:`Mount` for sensor -> body,
        the vehicle pose for body -> world).
    point : (float, float)
        ``(x_m, y_m)`` in the child frame, m.

    Returns
    -------
    (float, float)
        ``(x + c*px - s*py, y + s*px + c*py)`` in the parent frame, m.
    """
    px, py = point
    c, s = pose.cos_yaw, pose.sin_yaw
    return pose.x_m + c * px - s * py, pose.y_m + s * px + c * py


def apply_inverse(pose: Pose2D, point: tuple[float, float]) -> tuple[float, float]:
    """Express a point given in the parent frame in the child frame: ``p_b = R^T (p_a - t)``.

    Parameters
    ----------
    pose : Pose2D
        Pose of the child frame in the parent frame.
    point : (float, float)
        ``(x_m, y_m)`` in the parent frame, m.

    Returns
    -------
    (float, float)
        ``(c*dx + s*dy, -s*dx + c*dy)`` with ``dx, dy = px - x, py - y``, child frame, m.
    """
    dx = point[0] - pose.x_m
    dy = point[1] - pose.y_m
    c, s = pose.cos_yaw, pose.sin_yaw
    return c * dx + s * dy, -s * dx + c * dy


def rotate(pose: Pose2D, vector: tuple[float, float]) -> tuple[float, float]:
    """Express a free vector (velocity, force) given in the child frame in the parent frame.

    Parameters
    ----------
    pose : Pose2D
        Pose of the child frame in the parent frame; only its yaw is used.
    vector : (float, float)
        ``(vx, vy)`` in the child frame's axes, any unit.

    Returns
    -------
    (float, float)
        ``(c*vx - s*vy, s*vx + c*vy)``, parent axes, same unit.
    """
    vx, vy = vector
    c, s = pose.cos_yaw, pose.sin_yaw
    return c * vx - s * vy, s * vx + c * vy


def rotate_inverse(pose: Pose2D, vector: tuple[float, float]) -> tuple[float, float]:
    """Express a free vector given in the parent frame in the child frame's axes.

    Parameters
    ----------
    pose : Pose2D
        Pose of the child frame in the parent frame; only its yaw is used.
    vector : (float, float)
        ``(vx, vy)`` in the parent frame's axes, any unit.

    Returns
    -------
    (float, float)
        ``(c*vx + s*vy, -s*vx + c*vy)``, child axes, same unit.
    """
    vx, vy = vector
    c, s = pose.cos_yaw, pose.sin_yaw
    return c * vx + s * vy, -s * vx + c * vy


def yaw_cos_sin(yaw_rad: float) -> tuple[float, float]:
    """Return ``(cos(yaw_rad), sin(yaw_rad))``, dimensionless; ``(nan, nan)`` for a non-finite yaw.

    The rule every transform of this module uses (:attr:`Pose2D.cos_yaw`), for callers
    that rotate by a bare yaw (rad) without building a :class:`Pose2D` (the pose
    controller, per tick).
    """
    if math.isfinite(yaw_rad):
        return math.cos(yaw_rad), math.sin(yaw_rad)
    return math.nan, math.nan


def wrap_angle(angle_rad: float) -> float:
    """Wrap an angle to [-pi, pi], rad, by ``math.remainder(angle_rad, 2 pi)``.

    IEEE 754 remainder: exact, ties to the even multiple.
    """
    return math.remainder(angle_rad, math.tau)
