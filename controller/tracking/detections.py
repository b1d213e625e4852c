"""Radar detections into the tracker's :class:`~controller.tracking.models.Detection`.

The conversions the main job's radar component and the ``qiki radar decode`` tools share,
one per radar kind: :func:`tracking_detection` (ARS408 objects) and
:func:`sr_tracking_detection` (IWR6843 points). They take any body-frame object with the
driver's field names (structurally: the tracker does not import device protocols), so
they stay pure helpers.
"""

from __future__ import annotations

from typing import Protocol

from controller.tracking.models import Detection

__all__ = ["BodyFrameObject", "BodyFramePoint", "BodyFramePosition", "sr_tracking_detection", "tracking_detection"]


class BodyFramePosition(Protocol):
    """What every radar return shares: a position in the vehicle body frame and a range."""

    @property
    def x_body_m(self) -> float:
        """Forward position in the body frame, m."""

    @property
    def y_body_m(self) -> float:
        """Left position in the body frame, m."""

    @property
    def range_m(self) -> float:
        """Range (slant range for a point) from the radar, m."""


class BodyFrameObject(BodyFramePosition, Protocol):
    """A radar object in the vehicle body frame (e.g. :class:`firmware_bridge.protocols.ars408.Detection`)."""

    @property
    def obj_id(self) -> int:
        """The radar's object id."""

    @property
    def rcs_dbsm(self) -> float:
        """Radar cross-section, dBsm."""


def tracking_detection(det: BodyFrameObject, *, source: str = "lr") -> Detection:
    """Convert an ARS408 body-frame detection to the tracker's :class:`Detection`.

    Parameters
    ----------
    det : BodyFrameObject
        Body-frame detection, e.g. from :meth:`hal.devices.ars408.Ars408Driver.detections`.
    source : str, optional
        Band / source tag for the tracker (``"lr"`` for the long-range radar).

    Returns
    -------
    controller.tracking.models.Detection
        Same position (body frame), range, object ID and RCS; no polar accuracies (the
        ARS408 reports Cartesian sigmas), so the tracker uses its isotropic ``meas_std_m``.
    """
    return Detection(x_m=det.x_body_m, y_m=det.y_body_m, source=source, range_m=det.range_m,
                     object_id=det.obj_id, rcs_dbsm=det.rcs_dbsm)


class BodyFramePoint(BodyFramePosition, Protocol):
    """A short-range radar point in the vehicle body frame (e.g. :class:`hal.devices.iwr6843.SrDetection`)."""

    @property
    def azimuth_body_rad(self) -> float:
        """Bearing of the line of sight, counter-clockwise from body x, rad."""

    @property
    def doppler_mps(self) -> float:
        """Measured radial velocity relative to the radar, m/s, positive receding."""


def sr_tracking_detection(det: BodyFramePoint, *, source: str = "sr") -> Detection:
    """Convert an IWR6843 body-frame point to the tracker's :class:`Detection`.

    Parameters
    ----------
    det : BodyFramePoint
        Body-frame point, e.g. from :meth:`hal.devices.iwr6843.Iwr6843Driver.poll`'s scans.
    source : str, optional
        Band / source tag for the tracker (``"sr"`` for the short-range radar).

    Returns
    -------
    controller.tracking.models.Detection
        Same position (body frame), range, body-frame azimuth and the point's Doppler as
        ``range_rate_mps``; no accuracies, so the tracker uses its isotropic ``meas_std_m``.
    """
    return Detection(det.x_body_m, det.y_body_m, source, range_m=det.range_m, azimuth_rad=det.azimuth_body_rad,
                     range_rate_mps=det.doppler_mps)
