"""Radar detections into the tracker's :class:`~controller.tracking.models.Detection`.

The conversion the main job's radar subsystem and the ``qiki radar decode`` tool share.
It takes any body-frame object with the ARS408 driver's field names (structurally: the
tracker does not import device protocols), so it stays a pure helper.
"""

from __future__ import annotations

from typing import Protocol

from controller.tracking.models import Detection

__all__ = ["BodyFrameObject", "tracking_detection"]


class BodyFrameObject(Protocol):
    """A radar object in the vehicle body frame (e.g. :class:`firmware_bridge.protocols.ars408.Detection`)."""

    @property
    def obj_id(self) -> int:
        """The radar's object id."""

    @property
    def x_body_m(self) -> float:
        """Forward position in the body frame, m."""

    @property
    def y_body_m(self) -> float:
        """Left position in the body frame, m."""

    @property
    def range_m(self) -> float:
        """Range from the radar, m."""

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
