"""Continental ARS408-21 long-range radar: the object-list protocol, sans IO.

Shared by the driver (:mod:`hal.devices.ars408`) and the emulator
(:mod:`firmware_bridge.emulation.ars408`). Bytes <-> physical signal dicts is the DBC's job
(``dbc/ars408.dbc`` through the codec); this module holds what the DBC cannot say:

* :class:`CycleAssembler` -- one object-list cycle is a ``ObjStatus`` (0x60A) announcing
  ``N`` objects, then ``N`` ``ObjGeneral`` (0x60B), ``N`` ``ObjQuality`` (0x60C, when
  SendQuality is on) and ``N`` ``ObjExtended`` (0x60D, when SendExtInfo is on) frames, in
  that order, every ~72 ms (ARS408-21 technical documentation, "Object list" output).
* :func:`objects_to_detections` -- radar frame -> vehicle body frame through the mount pose.
* :func:`interpret_radar_state` / :meth:`RadarHealth.faults` -- ``RadarState`` (0x201)
  health flags (SAFETY.md D02).
* :func:`ego_motion_signals` -- the ``SpeedInformation`` (0x300) and
  ``YawRateInformation`` (0x301) signals the sensor expects every cycle.
* :func:`object_signals`, :func:`status_signals`, :func:`radar_state_signals` -- the inverse
  direction, for the emulator.

Frames (sensor ID 0; a sensor configured as ID ``n`` uses every ID ``+ 0x10 * n``)::

    0x60A ObjStatus   (4 bytes)  byte 0: nof_objects | bytes 1-2: meas_counter (BE)
                                 | byte 3 bits 7..4: interface_version
    0x60B ObjGeneral  (8 bytes)
         byte 0   obj_id
         byte 1   dist_long[12..5]
         byte 2   dist_long[4..0] | dist_lat[10..8]
         byte 3   dist_lat[7..0]
         byte 4   vrel_long[9..2]
         byte 5   vrel_long[1..0] | vrel_lat[8..3]
         byte 6   vrel_lat[2..0] | - - | dyn_prop[2..0]
         byte 7   rcs
    0x60C ObjQuality  (7 bytes)  obj_id | 5-bit rms codes | meas_state 3b | prob_of_exist 3b
    0x60D ObjExtended (8 bytes)  obj_id | arel_long 11b | arel_lat 9b | class 3b
                                 | orientation 10b | length 8b | width 8b
    0x300 SpeedInformation (2 bytes, from QIKI)
         byte 0   speed_direction[1..0] | - - - | speed[12..8]
         byte 1   speed[7..0]                      (0.02 m/s per count)
    0x301 YawRateInformation (2 bytes, from QIKI)
         bytes 0-1  yaw_rate[15..0] big-endian     (0.01 deg/s per count, offset -327.68)

All multi-byte fields are Motorola (big-endian), MSB first. Radar frame: x forward along the
boresight, y to the left, angles counter-clockwise positive (ARS408 convention).

Pure: no I/O, no sleeping, no threads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from firmware_bridge.errors import ProtocolError
from firmware_bridge.protocols.frames import Mount, apply, rotate

# --------------------------------------------------------------------------- names / IDs

MSG_RADAR_CFG = "ARS408_RadarCfg"
MSG_RADAR_STATE = "ARS408_RadarState"
MSG_SPEED = "ARS408_SpeedInformation"
MSG_YAW_RATE = "ARS408_YawRateInformation"
MSG_OBJ_STATUS = "ARS408_ObjStatus"
MSG_OBJ_GENERAL = "ARS408_ObjGeneral"
MSG_OBJ_QUALITY = "ARS408_ObjQuality"
MSG_OBJ_EXTENDED = "ARS408_ObjExtended"
MSG_OBJ_WARNING = "ARS408_ObjWarning"
MSG_VERSION = "ARS408_VersionId"

#: Messages (and signals) the driver cannot work without (SAFETY.md K02).
REQUIRED_SIGNALS: Mapping[str, tuple[str, ...]] = {
    MSG_RADAR_STATE: (
        "persistent_error", "temporary_error", "temperature_error", "voltage_error",
        "interference", "sensor_id", "motion_rx_state",
    ),
    MSG_SPEED: ("speed_direction", "speed_mps"),
    MSG_YAW_RATE: ("yaw_rate_dps",),
    MSG_OBJ_STATUS: ("nof_objects", "meas_counter"),
    MSG_OBJ_GENERAL: ("obj_id", "dist_long_m", "dist_lat_m", "vrel_long_mps", "vrel_lat_mps",
                      "dyn_prop", "rcs_dbsm"),
    MSG_OBJ_QUALITY: ("obj_id", "dist_long_rms_code", "dist_lat_rms_code", "meas_state",
                      "prob_of_exist"),
    MSG_OBJ_EXTENDED: ("obj_id", "obj_class", "orientation_deg", "length_m", "width_m"),
}

#: Arbitration-ID step per sensor ID (ARS408-21 documentation, "Sensor ID").
SENSOR_ID_STEP = 0x10
#: Highest sensor ID the 3-bit ``sensor_id`` signal can carry.
MAX_SENSOR_ID = 7
#: Nominal object-list cycle of the ARS408-21 (technical documentation; the real recording
#: shows 70-75 ms).
NOMINAL_CYCLE_S = 0.072


def id_offset(sensor_id: int) -> int:
    """Return the arbitration-ID offset of a sensor ID.

    Parameters
    ----------
    sensor_id : int
        Sensor ID 0..7 set in the radar's NVM (RadarCfg ``sensor_id``).

    Returns
    -------
    int
        ``0x10 * sensor_id``, to add to every sensor-ID-0 arbitration ID.

    Raises
    ------
    ProtocolError
        If ``sensor_id`` is outside 0..7.
    """
    if not isinstance(sensor_id, int) or isinstance(sensor_id, bool) or not (
        0 <= sensor_id <= MAX_SENSOR_ID
    ):
        raise ProtocolError(f"ARS408 sensor_id must be an int in 0..{MAX_SENSOR_ID}, got {sensor_id!r}")
    return SENSOR_ID_STEP * sensor_id


# --------------------------------------------------------------------------- wire layout


@dataclass(frozen=True, slots=True)
class SignalLayout:
    """Where one signal sits in its frame (Motorola byte order, unsigned raw value).

    Attributes
    ----------
    name : str
        The driver's signal name (``dbc/ars408.dbc``).
    start_bit : int
        DBC start bit (the MSB, in the DBC's sawtooth numbering for Motorola signals).
    length_bits : int
        Field width, bits.
    scale, offset : float
        ``physical = raw * scale + offset``.
    vendor_name : str
        Continental's name of the same signal (``ARS408_id0.dbc``), for error messages.
    """

    name: str
    start_bit: int
    length_bits: int
    scale: float
    offset: float
    vendor_name: str


@dataclass(frozen=True, slots=True)
class MessageLayout:
    """One ARS408 message the driver knows: base ID, DLC, cycle and its signals.

    Attributes
    ----------
    name : str
        The driver's message name (``MSG_*``).
    base_id : int
        Arbitration ID for sensor ID 0 (sensor ``n``: ``base_id + 0x10 * n``).
    dlc : int
        Data length, bytes.
    cycle_time_ms : int or None
        Nominal transmit period, ms (ARS408-21 technical documentation; the real
        recording: object list ~72 ms, RadarState and VersionId 1 s); None for RadarCfg,
        sent on request only.
    vendor_name : str
        Continental's message name (``ARS408_id0.dbc``).
    signals : tuple of SignalLayout
    """

    name: str
    base_id: int
    dlc: int
    cycle_time_ms: int | None
    vendor_name: str
    signals: tuple[SignalLayout, ...]


def _sl(*rows: tuple[str, int, int, float, float, str]) -> tuple[SignalLayout, ...]:
    return tuple(SignalLayout(*r) for r in rows)


#: The ARS408 wire layout the driver decodes, one entry per message (ARS408-21
#: technical documentation, message tables; identical to ``dbc/ars408.dbc``, which a
#: unit test checks). Every signal is Motorola, unsigned. Used to recognise a vendor
#: database by layout whatever its names (:func:`hal.can.codec.DbcCodec` maps such a
#: database onto these names).
WIRE_LAYOUT: tuple[MessageLayout, ...] = (
    MessageLayout("ARS408_RadarCfg", 0x200, 8, None, "RadarConfiguration", _sl(
        ("max_distance_valid", 0, 1, 1, 0, "RadarCfg_MaxDistance_valid"),
        ("sensor_id_valid", 1, 1, 1, 0, "RadarCfg_SensorID_valid"),
        ("radar_power_valid", 2, 1, 1, 0, "RadarCfg_RadarPower_valid"),
        ("output_type_valid", 3, 1, 1, 0, "RadarCfg_OutputType_valid"),
        ("send_quality_valid", 4, 1, 1, 0, "RadarCfg_SendQuality_valid"),
        ("send_ext_info_valid", 5, 1, 1, 0, "RadarCfg_SendExtInfo_valid"),
        ("sort_index_valid", 6, 1, 1, 0, "RadarCfg_SortIndex_valid"),
        ("store_in_nvm_valid", 7, 1, 1, 0, "RadarCfg_StoreInNVM_valid"),
        ("max_distance_m", 15, 10, 2, 0, "RadarCfg_MaxDistance"),
        ("sensor_id", 34, 3, 1, 0, "RadarCfg_SensorID"),
        ("output_type", 36, 2, 1, 0, "RadarCfg_OutputType"),
        ("radar_power", 39, 3, 1, 0, "RadarCfg_RadarPower"),
        ("ctrl_relay_valid", 40, 1, 1, 0, "RadarCfg_CtrlRelay_valid"),
        ("ctrl_relay", 41, 1, 1, 0, "RadarCfg_CtrlRelay"),
        ("send_quality", 42, 1, 1, 0, "RadarCfg_SendQuality"),
        ("send_ext_info", 43, 1, 1, 0, "RadarCfg_SendExtInfo"),
        ("sort_index", 46, 3, 1, 0, "RadarCfg_SortIndex"),
        ("store_in_nvm", 47, 1, 1, 0, "RadarCfg_StoreInNVM"),
        ("rcs_threshold_valid", 48, 1, 1, 0, "RadarCfg_RCS_Threshold_Valid"),
        ("rcs_threshold", 51, 3, 1, 0, "RadarCfg_RCS_Threshold"),
    )),
    MessageLayout("ARS408_RadarState", 0x201, 8, 1000, "RadarState", _sl(
        ("nvm_write_status", 7, 1, 1, 0, "RadarState_NVMwriteStatus"),
        ("nvm_read_status", 6, 1, 1, 0, "RadarState_NVMReadStatus"),
        ("max_distance_cfg_m", 15, 10, 2, 0, "RadarState_MaxDistanceCfg"),
        ("persistent_error", 21, 1, 1, 0, "RadarState_Persistent_Error"),
        ("interference", 20, 1, 1, 0, "RadarState_Interference"),
        ("temperature_error", 19, 1, 1, 0, "RadarState_Temperature_Error"),
        ("temporary_error", 18, 1, 1, 0, "RadarState_Temporary_Error"),
        ("voltage_error", 17, 1, 1, 0, "RadarState_Voltage_Error"),
        ("radar_power_cfg", 25, 3, 1, 0, "RadarState_RadarPowerCfg"),
        ("sort_index", 38, 3, 1, 0, "RadarState_SortIndex"),
        ("sensor_id", 34, 3, 1, 0, "RadarState_SensorID"),
        ("motion_rx_state", 47, 2, 1, 0, "RadarState_MotionRxState"),
        ("send_ext_info_cfg", 45, 1, 1, 0, "RadarState_SendExtInfoCfg"),
        ("send_quality_cfg", 44, 1, 1, 0, "RadarState_SendQualityCfg"),
        ("output_type_cfg", 43, 2, 1, 0, "RadarState_OutputTypeCfg"),
        ("ctrl_relay_cfg", 41, 1, 1, 0, "RadarState_CtrlRelayCfg"),
        ("rcs_threshold", 60, 3, 1, 0, "RadarState_RCS_Threshold"),
    )),
    MessageLayout("ARS408_SpeedInformation", 0x300, 2, 72, "SpeedInformation", _sl(
        ("speed_direction", 7, 2, 1, 0, "RadarDevice_SpeedDirection"),
        ("speed_mps", 4, 13, 0.02, 0, "RadarDevice_Speed"),
    )),
    MessageLayout("ARS408_YawRateInformation", 0x301, 2, 72, "YawRateInformation", _sl(
        ("yaw_rate_dps", 7, 16, 0.01, -327.68, "RadarDevice_YawRate"),
    )),
    MessageLayout("ARS408_ObjStatus", 0x60A, 4, 72, "Obj_0_Status", _sl(
        ("nof_objects", 7, 8, 1, 0, "Obj_NofObjects"),
        ("meas_counter", 15, 16, 1, 0, "Obj_MeasCounter"),
        ("interface_version", 31, 4, 1, 0, "Obj_InterfaceVersion"),
    )),
    MessageLayout("ARS408_ObjGeneral", 0x60B, 8, 72, "Obj_1_General", _sl(
        ("obj_id", 7, 8, 1, 0, "Obj_ID"),
        ("dist_long_m", 15, 13, 0.2, -500, "Obj_DistLong"),
        ("dist_lat_m", 18, 11, 0.2, -204.6, "Obj_DistLat"),
        ("vrel_long_mps", 39, 10, 0.25, -128, "Obj_VrelLong"),
        ("vrel_lat_mps", 45, 9, 0.25, -64, "Obj_VrelLat"),
        ("dyn_prop", 50, 3, 1, 0, "Obj_DynProp"),
        ("rcs_dbsm", 63, 8, 0.5, -64, "Obj_RCS"),
    )),
    MessageLayout("ARS408_ObjQuality", 0x60C, 7, 72, "Obj_2_Quality", _sl(
        ("obj_id", 7, 8, 1, 0, "Obj_ID"),
        ("dist_long_rms_code", 15, 5, 1, 0, "Obj_DistLong_rms"),
        ("dist_lat_rms_code", 10, 5, 1, 0, "Obj_DistLat_rms"),
        ("vrel_long_rms_code", 21, 5, 1, 0, "Obj_VrelLong_rms"),
        ("vrel_lat_rms_code", 16, 5, 1, 0, "Obj_VrelLat_rms"),
        ("arel_long_rms_code", 27, 5, 1, 0, "Obj_ArelLong_rms"),
        ("arel_lat_rms_code", 38, 5, 1, 0, "Obj_ArelLat_rms"),
        ("orientation_rms_code", 33, 5, 1, 0, "Obj_Orientation_rms"),
        ("meas_state", 52, 3, 1, 0, "Obj_MeasState"),
        ("prob_of_exist", 55, 3, 1, 0, "Obj_ProbOfExist"),
    )),
    MessageLayout("ARS408_ObjExtended", 0x60D, 8, 72, "Obj_3_Extended", _sl(
        ("obj_id", 7, 8, 1, 0, "Obj_ID"),
        ("arel_long_mps2", 15, 11, 0.01, -10, "Obj_ArelLong"),
        ("arel_lat_mps2", 20, 9, 0.01, -2.5, "Obj_ArelLat"),
        ("obj_class", 26, 3, 1, 0, "Obj_Class"),
        ("orientation_deg", 39, 10, 0.4, -180, "Obj_OrientationAngle"),
        ("length_m", 55, 8, 0.2, 0, "Obj_Length"),
        ("width_m", 63, 8, 0.2, 0, "Obj_Width"),
    )),
    MessageLayout("ARS408_ObjWarning", 0x60E, 4, 72, "Obj_4_Warning", _sl(
        ("obj_id", 7, 8, 1, 0, "Obj_ID"),
        ("coll_det_region_bitfield", 15, 8, 1, 0, "Obj_CollDetRegionBitfield"),
    )),
    MessageLayout("ARS408_VersionId", 0x700, 4, 1000, "VersionID", _sl(
        ("major_release", 7, 8, 1, 0, "Version_MajorRelease"),
        ("minor_release", 15, 8, 1, 0, "Version_MinorRelease"),
        ("patch_level", 23, 8, 1, 0, "Version_PatchLevel"),
        ("extended_range", 25, 1, 1, 0, "Version_ExtendedRange"),
        ("country_code", 24, 1, 1, 0, "Version_CountryCode"),
    )),
)

#: Layout by the driver's message name.
WIRE_LAYOUT_BY_NAME: Mapping[str, MessageLayout] = {m.name: m for m in WIRE_LAYOUT}

#: Sensor-ID-0 arbitration IDs of every ARS408-21 message, used or not by the driver
#: (data README of the real recording: 0x200 config, 0x201 state, 0x202-0x204 filters,
#: 0x300/0x301 ego motion, 0x400-0x408 collision detection, 0x600/0x701/0x702 clusters,
#: 0x60A-0x60E object list, 0x700 version).
FAMILY_BASE_IDS: frozenset[int] = frozenset(
    [0x200, 0x201, 0x202, 0x203, 0x204, 0x300, 0x301, 0x600, 0x700, 0x701, 0x702]
    + list(range(0x400, 0x409)) + list(range(0x60A, 0x60F)))


def dbc_sensor_id(frame_ids: Mapping[str, int]) -> int:
    """Return the sensor ID a database's ARS408 arbitration IDs belong to.

    Vendor databases come per sensor ID (``ARS408_id0.dbc`` .. ``ARS408_id7.dbc``, every
    ID ``+ 0x10 * n``) or with the base IDs (= sensor ID 0).

    Parameters
    ----------
    frame_ids : mapping of str to int
        Driver message name (:data:`WIRE_LAYOUT` names) -> arbitration ID in the DBC,
        for the messages the DBC defines.

    Returns
    -------
    int
        ``n`` in 0..7 such that every given ID is its base ID ``+ 0x10 * n``.

    Raises
    ------
    ProtocolError
        When an ID is not a base ID plus a multiple of 0x10 up to 0x70, or two messages
        imply different sensor IDs (one line naming both).
    """
    seen: dict[int, str] = {}
    for name, frame_id in frame_ids.items():
        layout = WIRE_LAYOUT_BY_NAME.get(name)
        if layout is None:
            continue
        delta = int(frame_id) - layout.base_id
        if delta < 0 or delta % SENSOR_ID_STEP or delta // SENSOR_ID_STEP > MAX_SENSOR_ID:
            raise ProtocolError(
                f"{name} at 0x{frame_id:03X} is not an ARS408 ID (0x{layout.base_id:03X} "
                f"+ 0x10 x sensor ID 0..{MAX_SENSOR_ID})")
        seen.setdefault(delta // SENSOR_ID_STEP, name)
    if len(seen) > 1:
        (a, na), (b, nb) = sorted(seen.items())[:2]
        raise ProtocolError(f"the DBC mixes sensor IDs: {na} is at sensor ID {a}'s ID, {nb} at sensor ID {b}'s")
    return next(iter(seen), 0)


# --------------------------------------------------------------------------- enums

DYN_PROP = ("moving", "stationary", "oncoming", "stationary_candidate", "unknown",
            "crossing_stationary", "crossing_moving", "stopped")
OBJ_CLASS = ("point", "car", "truck", "pedestrian", "motorcycle", "bicycle", "wide")
MEAS_STATE = ("deleted", "new", "measured", "predicted", "deleted_for_merge", "new_from_merge")
MOTION_RX_STATE = ("ok", "speed_missing", "yaw_rate_missing", "speed_and_yaw_rate_missing")
#: Lower bound of each ``prob_of_exist`` class (0 is "invalid"): <25 %, <50 %, ... <=100 %.
PROB_OF_EXIST_MIN = (0.0, 0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999)

# Valid ranges of enumerated signals live in dbc/ars408.dbc (signal min/max, VAL_ tables);
# the driver rejects raw values outside them (SAFETY.md D03).

SPEED_STANDSTILL = 0
SPEED_FORWARD = 1
SPEED_BACKWARD = 2


def rms_sigma(code: int, full_scale: float) -> float | None:
    """Return the upper bound of a 5-bit standard-deviation code.

    The ARS408 quality message codes each standard deviation on a geometric ladder of 31
    steps from 0.005 to ``full_scale`` (10 m, 10 m/s, 10 m/s^2, 180 deg); code 31 is
    "invalid" (ARS408-21 technical documentation, Obj_Quality signal tables).

    Parameters
    ----------
    code : int
        Raw code 0..31.
    full_scale : float
        Upper bound of code 30, in the signal's unit (m, m/s, m/s^2 or deg).

    Returns
    -------
    float or None
        ``0.005 * (full_scale / 0.005) ** (code / 30)`` in the signal's unit, ``None`` for
        code 31 or a code outside 0..31.
    """
    if not 0 <= code <= 30:
        return None
    bound: float = 0.005 * (full_scale / 0.005) ** (code / 30.0)
    return bound


def rms_code(sigma: float, full_scale: float) -> int:
    """Return the smallest 5-bit code whose bound is at least ``sigma``.

    The inverse of :func:`rms_sigma`; 30 above the ladder, 31 for NaN.

    Parameters
    ----------
    sigma : float
        Standard deviation in the signal's unit (m, m/s, m/s^2 or deg), >= 0.
    full_scale : float
        Upper bound of code 30 in the same unit.

    Returns
    -------
    int
        Raw code 0..31.
    """
    if math.isnan(sigma):
        return 31
    if sigma <= 0.005:
        return 0
    code = math.ceil(30.0 * math.log(sigma / 0.005) / math.log(full_scale / 0.005) - 1e-9)
    return min(max(code, 0), 30)


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True, slots=True)
class RadarObject:
    """One object of a complete cycle, in the radar frame (x forward, y left).

    Attributes
    ----------
    obj_id : int
        Radar's object ID 0..255, stable while the radar keeps the object.
    dist_long_m, dist_lat_m : float
        Position in the radar frame, m.
    vrel_long_mps, vrel_lat_mps : float
        Velocity relative to the radar, radar frame, m/s.
    rcs_dbsm : float
        Radar cross section, dBsm.
    dyn_prop : int
        Dynamic property code (:data:`DYN_PROP`).
    dist_long_rms_m, dist_lat_rms_m : float or None
        Position standard deviations (upper bound of the code), m; None without quality.
    prob_of_exist : float or None
        Lower bound of the probability of existence, 0..1; None without quality.
    meas_state : int or None
        Measurement state code (:data:`MEAS_STATE`); None without quality.
    obj_class : int or None
        Class code (:data:`OBJ_CLASS`); None without extended info.
    orientation_deg, length_m, width_m : float or None
        Orientation (radar frame, CCW) and size; None without extended info.
    """

    obj_id: int
    dist_long_m: float
    dist_lat_m: float
    vrel_long_mps: float
    vrel_lat_mps: float
    rcs_dbsm: float
    dyn_prop: int
    dist_long_rms_m: float | None = None
    dist_lat_rms_m: float | None = None
    prob_of_exist: float | None = None
    meas_state: int | None = None
    obj_class: int | None = None
    orientation_deg: float | None = None
    length_m: float | None = None
    width_m: float | None = None


@dataclass(frozen=True, slots=True)
class ObjectCycle:
    """A complete, consistent object-list cycle.

    Attributes
    ----------
    meas_counter : int
        The radar's measurement counter from ``ObjStatus``.
    t_status_s : float
        Receipt time of the ``ObjStatus`` frame on the caller's monotonic clock, s.
    t_complete_s : float
        Receipt time of the frame that completed the cycle, s.
    objects : tuple of RadarObject
        The ``N`` announced objects, in the order of their ``ObjGeneral`` frames.
    implausible_ids : tuple of int
        ``obj_id`` of the objects the plausibility gate dropped (:func:`gate_cycle`);
        empty until gated. :meth:`plausible_objects` leaves them out.
    """

    meas_counter: int
    t_status_s: float
    t_complete_s: float
    objects: tuple[RadarObject, ...]
    implausible_ids: tuple[int, ...] = ()

    def plausible_objects(self) -> tuple[RadarObject, ...]:
        """Return the objects the plausibility gate kept (every object before gating)."""
        if not self.implausible_ids:
            return self.objects
        drop = frozenset(self.implausible_ids)
        return tuple(o for o in self.objects if o.obj_id not in drop)


# Frame-level reject reasons of the assembler (keys of CycleAssembler.rejects).
REJECT_ORPHAN = "orphan_frame"            # object frame with no open cycle
REJECT_EXCESS = "excess_frame"            # more frames of a kind than announced
REJECT_UNMATCHED = "unmatched_obj_id"     # quality/extended for an ID not in the cycle
REJECT_DUPLICATE = "duplicate_obj_id"     # the same obj_id twice in one cycle
REJECT_ORDER = "out_of_order"             # a general frame after quality/extended frames


class CycleAssembler:
    """Assemble object-list cycles and check each for completeness. Per-frame.

    Feed every decoded object-list frame in arrival order; a call returns the finished
    :class:`ObjectCycle` when its last expected frame arrives, else ``None``. A cycle is
    complete when ``N`` general frames with distinct IDs and, when expected, ``N`` quality
    and ``N`` extended frames for exactly those IDs have arrived. A cycle is dropped
    (``cycles_dropped``) when a new ``ObjStatus`` arrives first or when one of its frames
    is inconsistent; the offending frame is counted in ``rejects`` by reason and the rest
    of the broken cycle as ``orphan_frame``.

    Parameters
    ----------
    expect_quality : bool
        SendQuality is configured on the radar: ``N`` ``ObjQuality`` frames are part of a
        complete cycle. When False the cycle completes with its general frames, and
        quality frames that still follow count as ``orphan_frame``.
    expect_extended : bool
        SendExtInfo is configured: ``N`` ``ObjExtended`` frames are part of a cycle.

    Notes
    -----
    Source of the cycle rule: ARS408-21 technical documentation, object list output
    (Obj_0_Status first, then the object messages by kind). Pure, no I/O.
    """

    __slots__ = (
        "expect_quality", "expect_extended", "cycles_complete", "cycles_dropped", "rejects",
        "_open", "_n", "_counter", "_t0", "_general", "_quality", "_extended",
    )

    def __init__(self, *, expect_quality: bool = True, expect_extended: bool = True) -> None:
        self.expect_quality = bool(expect_quality)
        self.expect_extended = bool(expect_extended)
        self.cycles_complete = 0
        self.cycles_dropped = 0
        self.rejects: dict[str, int] = {}
        self._open = False
        self._n = 0
        self._counter = 0
        self._t0 = 0.0
        self._general: dict[int, Mapping[str, float]] = {}
        self._quality: dict[int, Mapping[str, float]] = {}
        self._extended: dict[int, Mapping[str, float]] = {}

    # -- internals
    def _reject(self, reason: str) -> None:
        self.rejects[reason] = self.rejects.get(reason, 0) + 1

    def _break(self, reason: str) -> None:
        self._reject(reason)
        self.cycles_dropped += 1
        self._open = False

    def _maybe_finish(self, now_s: float) -> ObjectCycle | None:
        n = self._n
        if len(self._general) != n:
            return None
        if self.expect_quality and len(self._quality) != n:
            return None
        if self.expect_extended and len(self._extended) != n:
            return None
        self._open = False
        self.cycles_complete += 1
        return ObjectCycle(self._counter, self._t0, now_s, self._build())

    def _build(self) -> tuple[RadarObject, ...]:
        out = []
        q_all, e_all = self._quality, self._extended
        for oid, g in self._general.items():
            q = q_all.get(oid)
            e = e_all.get(oid)
            dl: float | None
            dt: float | None
            pe: float | None
            ms: int | None
            oc: int | None
            od: float | None
            ln: float | None
            wd: float | None
            if q is not None:
                dl = rms_sigma(int(q["dist_long_rms_code"]), 10.0)
                dt = rms_sigma(int(q["dist_lat_rms_code"]), 10.0)
                pe = PROB_OF_EXIST_MIN[int(q["prob_of_exist"]) & 7]
                ms = int(q["meas_state"])
            else:
                dl = dt = pe = ms = None
            if e is not None:
                oc, od, ln, wd = int(e["obj_class"]), e["orientation_deg"], e["length_m"], e["width_m"]
            else:
                oc = od = ln = wd = None
            out.append(RadarObject(
                oid, g["dist_long_m"], g["dist_lat_m"], g["vrel_long_mps"], g["vrel_lat_mps"],
                g["rcs_dbsm"], int(g["dyn_prop"]), dl, dt, pe, ms, oc, od, ln, wd,
            ))
        return tuple(out)

    # -- per-frame entry points
    def on_status(self, signals: Mapping[str, float], now_s: float) -> ObjectCycle | None:
        """Open a cycle from a decoded ``ObjStatus``; returns the (empty) cycle if N is 0.

        Parameters
        ----------
        signals : mapping
            Physical signals of ``ARS408_ObjStatus`` (``nof_objects``, ``meas_counter``).
        now_s : float
            Receipt time on the caller's monotonic clock, s.
        """
        if self._open:
            self.cycles_dropped += 1
        self._open = True
        self._n = int(signals["nof_objects"])
        self._counter = int(signals["meas_counter"])
        self._t0 = now_s
        self._general = {}
        self._quality = {}
        self._extended = {}
        return self._maybe_finish(now_s)

    def on_general(self, signals: Mapping[str, float], now_s: float) -> ObjectCycle | None:
        """Add a decoded ``ObjGeneral``; returns the cycle if this frame completed it."""
        if not self._open:
            self._reject(REJECT_ORPHAN)
            return None
        oid = int(signals["obj_id"])
        general = self._general
        if oid in general:
            self._break(REJECT_DUPLICATE)
            return None
        if self._quality or self._extended:
            self._break(REJECT_ORDER)
            return None
        if len(general) >= self._n:
            self._break(REJECT_EXCESS)
            return None
        general[oid] = signals
        return self._maybe_finish(now_s)

    def _on_detail(self, store: dict[int, Mapping[str, float]], signals: Mapping[str, float],
                   now_s: float) -> ObjectCycle | None:
        if not self._open:
            self._reject(REJECT_ORPHAN)
            return None
        oid = int(signals["obj_id"])
        if oid in store:
            self._break(REJECT_DUPLICATE)
            return None
        if oid not in self._general:
            self._break(REJECT_UNMATCHED if len(store) < self._n else REJECT_EXCESS)
            return None
        store[oid] = signals
        return self._maybe_finish(now_s)

    def on_quality(self, signals: Mapping[str, float], now_s: float) -> ObjectCycle | None:
        """Add a decoded ``ObjQuality``; returns the cycle if this frame completed it."""
        return self._on_detail(self._quality, signals, now_s)

    def on_extended(self, signals: Mapping[str, float], now_s: float) -> ObjectCycle | None:
        """Add a decoded ``ObjExtended``; returns the cycle if this frame completed it."""
        return self._on_detail(self._extended, signals, now_s)

    @property
    def open(self) -> bool:
        """True while a cycle has been announced and is not yet complete or dropped."""
        return self._open


# --------------------------------------------------------------------------- plausibility

#: Measuring envelope of the ARS408-21 (Continental datasheet "ARS408-21 Premium Long Range
#: Radar Sensor 77 GHz", technical data, measuring performance): distance range
#: 0.20..250 m (far range; near range 0.20..70 m, 100 m up to +-45 deg), azimuth field of
#: view -9..+9 deg far range and -60..+60 deg near range, velocity range -400..+200 km/h.
#: The gate uses the envelope's bounding values: 0.20..250 m, +-60 deg, 400 km/h.
DATASHEET_MIN_RANGE_M = 0.20
DATASHEET_MAX_RANGE_M = 250.0
DATASHEET_FOV_HALF_DEG = 60.0
DATASHEET_MAX_SPEED_MPS = 400.0 / 3.6

# Object-level drop reasons of the plausibility gate (counted per object, not per frame).
IMPLAUSIBLE_NONFINITE = "implausible_nonfinite"    # a NaN/inf field
IMPLAUSIBLE_RANGE = "implausible_range"            # outside 0.20..250 m
IMPLAUSIBLE_FOV = "implausible_fov"                # azimuth outside +-60 deg
IMPLAUSIBLE_SPEED = "implausible_speed"            # |relative velocity| above 400 km/h
IMPLAUSIBLE_STEP = "implausible_step"              # moved farther since the last cycle than possible
IMPLAUSIBLE_RCS = "implausible_rcs"                # RCS outside the configured bounds
IMPLAUSIBLE_PROB = "implausible_prob"              # probability of existence below the minimum
IMPLAUSIBLE_STATE = "implausible_state"            # measurement state "deleted"/"deleted for merge"/unknown
IMPLAUSIBLE_REASONS = (IMPLAUSIBLE_NONFINITE, IMPLAUSIBLE_RANGE, IMPLAUSIBLE_FOV, IMPLAUSIBLE_SPEED,
                       IMPLAUSIBLE_STEP, IMPLAUSIBLE_RCS, IMPLAUSIBLE_PROB, IMPLAUSIBLE_STATE)
#: Measurement states an object may be tracked in: new, measured, predicted, new from merge.
_LIVE_MEAS_STATES = frozenset({1, 2, 3, 5})


@dataclass(frozen=True, slots=True)
class PlausibilityLimits:
    """Bounds of the ARS408 plausibility gate (radar frame, before tracking).

    Attributes
    ----------
    min_range_m, max_range_m : float
        Distance bounds, m (datasheet: 0.20..250 m).
    fov_half_deg : float
        Largest ``|azimuth|``, deg (datasheet: +-60 deg near range).
    max_speed_mps : float
        Largest relative speed, m/s (datasheet: 400 km/h); also bounds the step between
        cycles.
    step_margin_m : float
        Position noise allowed on top of ``max_speed_mps * dt`` between two cycles, m (the
        worst position standard deviation the quality frame codes is 10 m; 2 m covers the
        real recording's largest step, 7.3 m in 144 ms).
    min_rcs_dbsm, max_rcs_dbsm : float
        Radar cross section bounds, dBsm. Not datasheet figures: the project's bounds, wide
        around the real recording's -20..30.5 dBsm (the signal itself spans -64..63.5).
    min_prob_of_exist : float
        Smallest probability-of-existence lower bound kept, 0..1 (0 keeps every class).
    """

    min_range_m: float = DATASHEET_MIN_RANGE_M
    max_range_m: float = DATASHEET_MAX_RANGE_M
    fov_half_deg: float = DATASHEET_FOV_HALF_DEG
    max_speed_mps: float = DATASHEET_MAX_SPEED_MPS
    step_margin_m: float = 2.0
    min_rcs_dbsm: float = -50.0
    max_rcs_dbsm: float = 60.0
    min_prob_of_exist: float = 0.0


def implausible_reason(obj: RadarObject, previous: RadarObject | None, dt_s: float,
                       limits: PlausibilityLimits) -> str | None:
    """Return why one object is not physically plausible, or None when it passes.

    Parameters
    ----------
    obj : RadarObject
        The object, radar frame.
    previous : RadarObject or None
        The object of the same ``obj_id`` in the previous accepted cycle (None: new).
    dt_s : float
        Time between the two cycles' ``ObjStatus`` frames, s (> 0).
    limits : PlausibilityLimits

    Returns
    -------
    str or None
        One of :data:`IMPLAUSIBLE_REASONS` (the first failed check, in that order).
    """
    fields = (obj.dist_long_m, obj.dist_lat_m, obj.vrel_long_mps, obj.vrel_lat_mps, obj.rcs_dbsm)
    if not all(math.isfinite(v) for v in fields):
        return IMPLAUSIBLE_NONFINITE
    rng = math.hypot(obj.dist_long_m, obj.dist_lat_m)
    if not limits.min_range_m <= rng <= limits.max_range_m:
        return IMPLAUSIBLE_RANGE
    if abs(math.degrees(math.atan2(obj.dist_lat_m, obj.dist_long_m))) > limits.fov_half_deg:
        return IMPLAUSIBLE_FOV
    if math.hypot(obj.vrel_long_mps, obj.vrel_lat_mps) > limits.max_speed_mps:
        return IMPLAUSIBLE_SPEED
    if previous is not None:
        step = math.hypot(obj.dist_long_m - previous.dist_long_m, obj.dist_lat_m - previous.dist_lat_m)
        if step > limits.max_speed_mps * dt_s + limits.step_margin_m:
            return IMPLAUSIBLE_STEP
    if not limits.min_rcs_dbsm <= obj.rcs_dbsm <= limits.max_rcs_dbsm:
        return IMPLAUSIBLE_RCS
    if obj.prob_of_exist is not None and not (
            limits.min_prob_of_exist <= obj.prob_of_exist <= 1.0):
        return IMPLAUSIBLE_PROB
    if obj.meas_state is not None and obj.meas_state not in _LIVE_MEAS_STATES:
        return IMPLAUSIBLE_STATE
    return None


def gate_cycle(cycle: ObjectCycle, previous: ObjectCycle | None,
               limits: PlausibilityLimits) -> tuple[ObjectCycle, list[str]]:
    """Drop the objects of a cycle that fail :func:`implausible_reason`. Per cycle.

    Parameters
    ----------
    cycle : ObjectCycle
        A complete cycle from :class:`CycleAssembler`.
    previous : ObjectCycle or None
        The previous gated cycle (the step check compares positions of equal ``obj_id``).
    limits : PlausibilityLimits

    Returns
    -------
    (ObjectCycle, list of str)
        The cycle with the dropped objects' IDs in ``implausible_ids`` (the same object
        when none was dropped; ``objects`` keeps every object as received) and one reason
        per dropped object.
    """
    prev_by_id = {o.obj_id: o for o in previous.plausible_objects()} if previous is not None else {}
    dt_s = cycle.t_status_s - previous.t_status_s if previous is not None else NOMINAL_CYCLE_S
    if not dt_s > 0.0:
        dt_s = NOMINAL_CYCLE_S
    dropped: list[int] = []
    reasons: list[str] = []
    for o in cycle.objects:
        why = implausible_reason(o, prev_by_id.get(o.obj_id), dt_s, limits)
        if why is not None:
            dropped.append(o.obj_id)
            reasons.append(why)
    if not reasons:
        return cycle, reasons
    return ObjectCycle(cycle.meas_counter, cycle.t_status_s, cycle.t_complete_s, cycle.objects,
                       tuple(dropped)), reasons


# --------------------------------------------------------------------------- detections


@dataclass(frozen=True, slots=True)
class Detection:
    """One radar object as a detection in the vehicle body frame.

    Attributes
    ----------
    obj_id : int
        Radar object ID (not a track ID: the radar may reuse it).
    x_body_m, y_body_m : float
        Position in the body frame, m.
    vx_body_mps, vy_body_mps : float
        Velocity relative to the vehicle, body frame axes, m/s.
    range_m : float
        Distance from the radar, m.
    azimuth_radar_rad : float
        Bearing in the radar frame, CCW from boresight, rad.
    rcs_dbsm : float
        Radar cross section, dBsm.
    sigma_long_m, sigma_lat_m : float or None
        Position standard deviations along the radar's own x and y axes, m.
    prob_of_exist : float or None
        Lower bound of the probability of existence, 0..1.
    obj_class : str or None
        Class name (:data:`OBJ_CLASS`).
    dyn_prop : str
        Dynamic property name (:data:`DYN_PROP`).
    source : str
        Sensor name, e.g. ``"ars408"``; also the range band for fusion ("lr").
    """

    obj_id: int
    x_body_m: float
    y_body_m: float
    vx_body_mps: float
    vy_body_mps: float
    range_m: float
    azimuth_radar_rad: float
    rcs_dbsm: float
    sigma_long_m: float | None
    sigma_lat_m: float | None
    prob_of_exist: float | None
    obj_class: str | None
    dyn_prop: str
    source: str = "ars408"


def objects_to_detections(
    objects: Iterable[RadarObject],
    mount: Mount,
    *,
    min_prob_of_exist: float = 0.0,
    min_rcs_dbsm: float = -math.inf,
    source: str = "ars408",
) -> list[Detection]:
    """Convert radar-frame objects to body-frame detections through the mount pose.

    ``p_body = t_mount + R(yaw_mount) @ p_radar`` (:func:`frames.apply`); velocities are
    rotated only (:func:`frames.rotate`).

    Parameters
    ----------
    objects : iterable of RadarObject
        Objects of one complete cycle, radar frame (x along the boresight, y left).
    mount : Mount
        Radar pose in the body frame (rig ``devices.<radar>.mount``).
    min_prob_of_exist : float, optional
        Drop objects whose probability-of-existence lower bound is below this (0..1);
        objects without quality info are kept. Default 0 keeps all.
    min_rcs_dbsm : float, optional
        Drop objects whose radar cross section is below this, dBsm (weak reflections such
        as ground clutter and multipath ghosts). Default keeps all.
    source : str, optional
        Label carried by every detection.

    Returns
    -------
    list of Detection
        Body-frame detections, in object order.
    """
    out: list[Detection] = []
    for o in objects:
        if o.prob_of_exist is not None and o.prob_of_exist < min_prob_of_exist:
            continue
        if o.rcs_dbsm < min_rcs_dbsm:
            continue
        xr, yr = o.dist_long_m, o.dist_lat_m
        x_body_m, y_body_m = apply(mount, (xr, yr))
        vx_body_mps, vy_body_mps = rotate(mount, (o.vrel_long_mps, o.vrel_lat_mps))
        out.append(Detection(
            o.obj_id,
            x_body_m,
            y_body_m,
            vx_body_mps,
            vy_body_mps,
            math.hypot(xr, yr),
            math.atan2(yr, xr),
            o.rcs_dbsm,
            o.dist_long_rms_m,
            o.dist_lat_rms_m,
            o.prob_of_exist,
            OBJ_CLASS[o.obj_class] if o.obj_class is not None and 0 <= o.obj_class < len(OBJ_CLASS) else None,
            DYN_PROP[o.dyn_prop & 7],
            source,
        ))
    return out


# --------------------------------------------------------------------------- radar state


@dataclass(frozen=True, slots=True)
class RadarHealth:
    """Interpretation of one ``RadarState`` (0x201) frame.

    Attributes
    ----------
    persistent_error, temporary_error, temperature_error, voltage_error, interference : bool
        The radar's own error flags.
    sensor_id : int
        Sensor ID the radar reports.
    motion_rx_state : int
        0 ok, 1 speed missing, 2 yaw rate missing, 3 both missing.
    output_type_cfg : int
        0 none, 1 objects, 2 clusters.
    send_quality_cfg, send_ext_info_cfg : bool
        Whether quality / extended object frames are being sent.
    max_distance_cfg_m : float
        Configured far-scan maximum distance, m.
    """

    persistent_error: bool
    temporary_error: bool
    temperature_error: bool
    voltage_error: bool
    interference: bool
    sensor_id: int
    motion_rx_state: int
    output_type_cfg: int
    send_quality_cfg: bool
    send_ext_info_cfg: bool
    max_distance_cfg_m: float

    def faults(self, expected_sensor_id: int) -> tuple[str, ...]:
        """Return the radar-reported faults (SAFETY.md D02), empty when healthy.

        Parameters
        ----------
        expected_sensor_id : int
            The sensor ID the rig configured; a different reported ID is a fault
            (``sensor_id_mismatch``: another radar, or the wrong radar on these IDs).

        Returns
        -------
        tuple of str
            Subset of ``persistent_error``, ``temporary_error``, ``temperature_error``,
            ``voltage_error``, ``interference``, ``sensor_id_mismatch``,
            ``output_type_not_objects``.
        """
        out = []
        if self.persistent_error:
            out.append("persistent_error")
        if self.temporary_error:
            out.append("temporary_error")
        if self.temperature_error:
            out.append("temperature_error")
        if self.voltage_error:
            out.append("voltage_error")
        if self.interference:
            out.append("interference")
        if self.sensor_id != expected_sensor_id:
            out.append("sensor_id_mismatch")
        if self.output_type_cfg != 1:
            out.append("output_type_not_objects")
        return tuple(out)


def interpret_radar_state(signals: Mapping[str, float]) -> RadarHealth:
    """Build a :class:`RadarHealth` from decoded ``ARS408_RadarState`` signals.

    Parameters
    ----------
    signals : mapping
        Physical signals (raw integers for the flags and enums).

    Returns
    -------
    RadarHealth

    Raises
    ------
    KeyError
        If a signal of :data:`REQUIRED_SIGNALS` for ``RadarState`` is missing (the
        configuration signals default to objects, quality and extended info on).
    """
    return RadarHealth(
        bool(signals["persistent_error"]),
        bool(signals["temporary_error"]),
        bool(signals["temperature_error"]),
        bool(signals["voltage_error"]),
        bool(signals["interference"]),
        int(signals["sensor_id"]),
        int(signals["motion_rx_state"]),
        int(signals.get("output_type_cfg", 1)),
        bool(signals.get("send_quality_cfg", 1)),
        bool(signals.get("send_ext_info_cfg", 1)),
        float(signals.get("max_distance_cfg_m", 0.0)),
    )


def radar_state_signals(health: RadarHealth) -> dict[str, float]:
    """Return the ``ARS408_RadarState`` signals encoding ``health`` (emulator side).

    Parameters
    ----------
    health : RadarHealth
        What the emulated radar reports.

    Returns
    -------
    dict
        Physical signals for the codec; inverse of :func:`interpret_radar_state`.
    """
    return {
        "nvm_write_status": 0, "nvm_read_status": 1,
        "max_distance_cfg_m": health.max_distance_cfg_m,
        "persistent_error": int(health.persistent_error),
        "interference": int(health.interference),
        "temperature_error": int(health.temperature_error),
        "temporary_error": int(health.temporary_error),
        "voltage_error": int(health.voltage_error),
        "radar_power_cfg": 0, "sort_index": 1, "sensor_id": health.sensor_id,
        "motion_rx_state": health.motion_rx_state,
        "send_ext_info_cfg": int(health.send_ext_info_cfg),
        "send_quality_cfg": int(health.send_quality_cfg),
        "output_type_cfg": health.output_type_cfg, "ctrl_relay_cfg": 0, "rcs_threshold": 0,
    }


# --------------------------------------------------------------------------- ego motion

#: Largest speed magnitude ``SpeedInformation`` can carry (13 bits x 0.02 m/s).
SPEED_MAX_MPS = 163.8
#: Yaw-rate range of ``YawRateInformation`` (16 bits x 0.01 deg/s, offset -327.68).
YAW_RATE_MIN_DPS = -327.68
YAW_RATE_MAX_DPS = 327.66


def ego_motion_signals(
    speed_long_mps: float, yaw_rate_radps: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Signals of ``SpeedInformation`` (0x300) and ``YawRateInformation`` (0x301).

    The ARS408 wants the longitudinal speed of the radar's vehicle as a magnitude plus a
    direction and the yaw rate in deg/s (CCW positive); without them it reports
    ``motion_rx_state`` != 0 and classifies stationary objects worse (ARS408-21 technical
    documentation, "Motion input signals"). Values beyond the signal range are clipped.

    Parameters
    ----------
    speed_long_mps : float
        Vehicle velocity along body x, m/s (negative when reversing).
    yaw_rate_radps : float
        Vehicle yaw rate about body z, CCW positive, rad/s.

    Returns
    -------
    (dict, dict)
        ``(speed_signals, yaw_rate_signals)`` in physical units for the codec.

    Raises
    ------
    ProtocolError
        If either input is NaN or infinite.
    """
    if not (math.isfinite(speed_long_mps) and math.isfinite(yaw_rate_radps)):
        raise ProtocolError(
            f"ARS408 ego motion must be finite (speed_long_mps={speed_long_mps}, "
            f"yaw_rate_radps={yaw_rate_radps})"
        )
    mag = abs(speed_long_mps)
    if mag < 0.01:  # half the 0.02 m/s resolution
        direction, mag = SPEED_STANDSTILL, 0.0
    else:
        direction = SPEED_FORWARD if speed_long_mps > 0 else SPEED_BACKWARD
    mag = min(round(mag / 0.02) * 0.02, SPEED_MAX_MPS)
    yaw_dps = min(max(math.degrees(yaw_rate_radps), YAW_RATE_MIN_DPS), YAW_RATE_MAX_DPS)
    yaw_dps = round(yaw_dps / 0.01) * 0.01
    yaw_dps = min(max(yaw_dps, YAW_RATE_MIN_DPS), YAW_RATE_MAX_DPS)
    return {"speed_direction": direction, "speed_mps": mag}, {"yaw_rate_dps": yaw_dps}


def ego_motion_from_signals(
    speed: Mapping[str, float], yaw_rate: Mapping[str, float]
) -> tuple[float, float]:
    """Inverse of :func:`ego_motion_signals` (emulator side).

    Parameters
    ----------
    speed : mapping
        Decoded ``SpeedInformation`` signals (``speed_direction``, ``speed_mps``).
    yaw_rate : mapping
        Decoded ``YawRateInformation`` signals (``yaw_rate_dps``).

    Returns
    -------
    (float, float)
        ``(speed_long_mps, yaw_rate_radps)``; speed signed by its direction.
    """
    d = int(speed["speed_direction"])
    v = float(speed["speed_mps"])
    v = -v if d == SPEED_BACKWARD else (0.0 if d == SPEED_STANDSTILL else v)
    return v, math.radians(float(yaw_rate["yaw_rate_dps"]))


# --------------------------------------------------------------------------- emulator side


def status_signals(nof_objects: int, meas_counter: int, interface_version: int = 1) -> dict[str, int]:
    """Signals of ``ObjStatus`` for a cycle of ``nof_objects`` objects.

    Parameters
    ----------
    nof_objects : int
        Objects in the cycle, 0..255.
    meas_counter : int
        Measurement counter, wrapped to 16 bits here.
    interface_version : int, optional
        Object list interface version, 0..15 (firmware 4.30 sends 1).

    Returns
    -------
    dict
        Physical signals for the codec.
    """
    return {"nof_objects": int(nof_objects), "meas_counter": int(meas_counter) & 0xFFFF,
            "interface_version": int(interface_version)}


def _clip(v: float, lo: float, hi: float) -> float:
    return lo if v < lo else hi if v > hi else v


def object_signals(obj: RadarObject) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Signals of ``ObjGeneral``, ``ObjQuality`` and ``ObjExtended`` for one object.

    Physical values are clipped into each signal's range so that the strict codec always
    encodes; missing quality/extended fields get neutral values (measured, <=100 %, point).

    Parameters
    ----------
    obj : RadarObject
        Object in the radar frame.

    Returns
    -------
    (dict, dict, dict)
        ``(general, quality, extended)`` physical signals.
    """
    general: dict[str, float] = {
        "obj_id": obj.obj_id,
        "dist_long_m": _clip(obj.dist_long_m, -500.0, 1138.2),
        "dist_lat_m": _clip(obj.dist_lat_m, -204.6, 204.8),
        "vrel_long_mps": _clip(obj.vrel_long_mps, -128.0, 127.75),
        "vrel_lat_mps": _clip(obj.vrel_lat_mps, -64.0, 63.75),
        "dyn_prop": obj.dyn_prop,
        "rcs_dbsm": _clip(obj.rcs_dbsm, -64.0, 63.5),
    }
    sig_l = obj.dist_long_rms_m if obj.dist_long_rms_m is not None else 0.2
    sig_t = obj.dist_lat_rms_m if obj.dist_lat_rms_m is not None else 0.2
    pe = obj.prob_of_exist if obj.prob_of_exist is not None else 1.0
    pe_code = max(i for i, lo in enumerate(PROB_OF_EXIST_MIN) if pe >= lo) if pe > 0 else 1
    quality: dict[str, float] = {
        "obj_id": obj.obj_id,
        "dist_long_rms_code": rms_code(sig_l, 10.0),
        "dist_lat_rms_code": rms_code(sig_t, 10.0),
        "vrel_long_rms_code": rms_code(0.1, 10.0),
        "vrel_lat_rms_code": rms_code(0.1, 10.0),
        "arel_long_rms_code": rms_code(0.1, 10.0),
        "arel_lat_rms_code": rms_code(0.1, 10.0),
        "orientation_rms_code": rms_code(5.0, 180.0),
        "meas_state": obj.meas_state if obj.meas_state is not None else 2,
        "prob_of_exist": pe_code,
    }
    extended: dict[str, float] = {
        "obj_id": obj.obj_id,
        "arel_long_mps2": 0.0,
        "arel_lat_mps2": 0.0,
        "obj_class": obj.obj_class if obj.obj_class is not None else 0,
        "orientation_deg": _clip(obj.orientation_deg or 0.0, -180.0, 229.2),
        "length_m": _clip(obj.length_m if obj.length_m is not None else 0.4, 0.0, 51.0),
        "width_m": _clip(obj.width_m if obj.width_m is not None else 0.4, 0.0, 51.0),
    }
    return general, quality, extended


__all__ = [
    "MSG_RADAR_CFG", "MSG_RADAR_STATE", "MSG_SPEED", "MSG_YAW_RATE", "MSG_OBJ_STATUS",
    "MSG_OBJ_GENERAL", "MSG_OBJ_QUALITY", "MSG_OBJ_EXTENDED", "MSG_OBJ_WARNING", "MSG_VERSION",
    "REQUIRED_SIGNALS", "SignalLayout", "MessageLayout", "WIRE_LAYOUT", "WIRE_LAYOUT_BY_NAME",
    "FAMILY_BASE_IDS", "dbc_sensor_id", "SENSOR_ID_STEP", "MAX_SENSOR_ID", "NOMINAL_CYCLE_S", "id_offset",
    "DYN_PROP", "OBJ_CLASS", "MEAS_STATE", "MOTION_RX_STATE", "PROB_OF_EXIST_MIN",
    "SPEED_STANDSTILL", "SPEED_FORWARD", "SPEED_BACKWARD", "rms_sigma", "rms_code",
    "RadarObject", "ObjectCycle", "CycleAssembler", "REJECT_ORPHAN", "REJECT_EXCESS",
    "REJECT_UNMATCHED", "REJECT_DUPLICATE", "REJECT_ORDER", "Detection", "objects_to_detections",
    "RadarHealth", "interpret_radar_state", "radar_state_signals",
    "SPEED_MAX_MPS", "YAW_RATE_MIN_DPS", "YAW_RATE_MAX_DPS", "ego_motion_signals",
    "ego_motion_from_signals", "status_signals", "object_signals",
    "DATASHEET_MIN_RANGE_M", "DATASHEET_MAX_RANGE_M", "DATASHEET_FOV_HALF_DEG", "DATASHEET_MAX_SPEED_MPS",
    "IMPLAUSIBLE_NONFINITE", "IMPLAUSIBLE_RANGE", "IMPLAUSIBLE_FOV", "IMPLAUSIBLE_SPEED", "IMPLAUSIBLE_STEP",
    "IMPLAUSIBLE_RCS", "IMPLAUSIBLE_PROB", "IMPLAUSIBLE_STATE", "IMPLAUSIBLE_REASONS",
    "PlausibilityLimits", "implausible_reason", "gate_cycle",
]
