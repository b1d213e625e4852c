"""TI IWR6843 mmWave radar: the out-of-box demo's UART output (sans-IO codec).

The radar's data UART carries one *packet* per radar frame: a 40-byte frame header that
starts with a magic word, then ``numTLVs`` type-length-value items, then padding up to a
multiple of 32 bytes. This module turns a byte stream in any chunking into
:class:`RadarFrame` values (:class:`Iwr6843Parser`), decodes one packet strictly
(:func:`decode_packet`), and builds packets (:func:`encode_packet`, used by the emulator
and the tests). It does no I/O, no sleeping and no threads.

Source of every rule: TI, *Understanding the Out of Box Demo Data Output*
(``understanding_oob_uart_data.html`` of the mmWave Industrial Toolbox 4.7.0, kept in
``../shared/data/real/serial/ti_iwr6843/``), sections "Frame Header", "TLV Header",
"TLV Type Identifier" and "TLV Payload"; cross-checked against the real SDK 3.3 capture
in the same folder. Where the two disagree the capture wins, and the docstrings say so:

* the page gives the frame header "Length: 44 Bytes" but its own table adds up to
  40 bytes (8 + 8 x 4); the SDK 3.3 capture puts the first TLV at offset 40;
* the page heads the statistics payload "Type: 7" while its type table says 6; the
  capture carries 24-byte statistics under type 6 and 4-byte-per-point side info under 7;
* the page types side-info snr/noise as ``uint16_t`` in dB; the mmWave SDK 3.x
  (``DPIF_PointCloudSideInfo``) defines them as ``int16_t`` in steps of 0.1 dB, which
  the capture bears out (snr 181 -> 18.1 dB, noise 852 -> 85.2 dB);
* frames with no detections keep a type-1 TLV of length 0 and drop type 7.

Packet layout (all fields little-endian)::

    offset  size  field
    ------  ----  ------------------------------------------------------------------
         0     8  magic word: 02 01 04 03 06 05 08 07 (u16 words 0x0102 0x0304 0x0506 0x0708)
         8     4  version          u32  major<<24 | minor<<16 | bugfix<<8 | build
        12     4  totalPacketLen   u32  whole packet in bytes, header and padding included
        16     4  platform         u32  0xA6843 for IWR6843
        20     4  frameNumber      u32
        24     4  timeCpuCycles    u32  R4F cycle counter when the packet was built
        28     4  numDetectedObj   u32
        32     4  numTLVs          u32
        36     4  subFrameNumber   u32  0 unless advanced sub-frame mode
        40     8  TLV header: type u32, length u32 (payload bytes, header excluded)
        48     L  TLV payload
       ...        further TLVs
       end        padding to the next multiple of 32 bytes (content undefined)

    type 1, detected points, 16 bytes per point:   x_m f32 | y_m f32 | z_m f32 | doppler_mps f32
    type 7, side info, 4 bytes per point:          snr i16 (0.1 dB) | noise i16 (0.1 dB)
    type 6, statistics, 24 bytes:                  6 x u32 (see :class:`FrameStatistics`)
    type 2/3, range / noise profile, 2 bytes/bin:  u16, sum of log2 magnitudes in Q9
    type 9, temperature statistics, 28 bytes:      u32 valid | u32 time_ms | 10 x u16 deg C

Point axes (sensor frame): the page gives none. TI's mmWave SDK and toolbox use
``x = range * cos(elevation) * sin(azimuth)`` (to the right, looking out of the antenna),
``y = range * cos(elevation) * cos(azimuth)`` (along boresight), ``z`` up; every point of
the capture has ``y > 0``, as a forward-looking sensor must. Doppler is the radial
velocity, positive when the range grows.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from firmware_bridge.errors import ProtocolError

__all__ = [
    "MAGIC_WORD",
    "FRAME_HEADER_LEN",
    "TLV_HEADER_LEN",
    "PACKET_ALIGN_BYTES",
    "PLATFORM_IWR6843",
    "SDK_VERSION_3_3",
    "DEFAULT_MAX_FRAME_LEN",
    "TlvType",
    "RejectReason",
    "CHIRP_MAX_RANGE_M",
    "AOA_FOV_HALF_DEG",
    "POINT_OUT_OF_RANGE",
    "POINT_OUT_OF_FOV",
    "PointGate",
    "gate_points",
    "FrameHeader",
    "RadarPoint",
    "FrameStatistics",
    "TemperatureStatistics",
    "RadarFrame",
    "Iwr6843Parser",
    "decode_header",
    "decode_packet",
    "encode_packet",
    "split_stream",
    "sensor_to_radar",
    "radar_to_sensor",
    "format_version",
    "platform_name",
    "header_label",
    "SUPPORTED_SDK_MAJOR",
    "SUPPORTED_PLATFORMS",
    "PLATFORM_NAMES",
]

#: Magic word 0x0102, 0x0304, 0x0506, 0x0708 as little-endian u16 words ("Frame Header").
MAGIC_WORD = bytes((0x02, 0x01, 0x04, 0x03, 0x06, 0x05, 0x08, 0x07))
#: Frame header length in bytes (SDK 3.x; see the module notes on the page's "44").
FRAME_HEADER_LEN = 40
#: TLV header length in bytes ("TLV Header").
TLV_HEADER_LEN = 8
#: Packets are padded to a multiple of this many bytes (page introduction).
PACKET_ALIGN_BYTES = 32
#: ``platform`` field of an IWR6843 ("Frame Header": "0xA6843 for IWR6843 devices").
PLATFORM_IWR6843 = 0xA6843
#: ``version`` of the SDK 3.3.0.2 firmware that made the real capture.
SDK_VERSION_3_3 = 0x03030002
#: SDK major version whose UART output this module decodes: the mmWave SDK 3.x frame header
#: (40 bytes, with ``subFrameNumber``) and point cloud (type 1: 16-byte float x, y, z,
#: doppler; type 7: side info). SDK 1.x/2.x differ: the xWR14xx header has no
#: ``subFrameNumber`` (36 bytes) and type 1 starts with a 4-byte descriptor followed by
#: 12-byte Q-format points; decoding them with SDK 3 rules yields garbage or
#: ``point_count_mismatch``, so they are refused by name instead.
SUPPORTED_SDK_MAJOR = 3
#: ``platform`` values -> family names (mmWave SDK ``MMWAVE_DEMO`` platform words).
PLATFORM_NAMES = {
    0xA1443: "xWR14xx",
    0xA1642: "xWR16xx",
    0xA1843: "xWR18xx",
    0xA6443: "xWR64xx",
    0xA6843: "xWR68xx",
}
#: Platforms whose SDK 3.x out-of-box demo writes the format decoded here (the mmWave SDK
#: 3.x supports xWR16xx, xWR18xx, xWR64xx and xWR68xx; xWR14xx stopped at SDK 2.x).
SUPPORTED_PLATFORMS = frozenset({0xA1642, 0xA1843, 0xA6443, 0xA6843})
#: Default bound on a packet: all TLVs of a 256-bin x 32-Doppler configuration fit.
DEFAULT_MAX_FRAME_LEN = 65536

_HEADER = struct.Struct("<8s8I")
_TLV_HEADER = struct.Struct("<2I")
_POINT = struct.Struct("<4f")
_SIDE_INFO = struct.Struct("<2h")
_STATS = struct.Struct("<6I")
_TEMPERATURE = struct.Struct("<2I10H")
_U32_MAX = 0xFFFFFFFF


class TlvType(IntEnum):
    """TLV type identifiers ("TLV Type Identifier" table)."""

    DETECTED_POINTS = 1
    RANGE_PROFILE = 2
    NOISE_PROFILE = 3
    AZIMUTH_STATIC_HEATMAP = 4
    RANGE_DOPPLER_HEATMAP = 5
    STATISTICS = 6
    SIDE_INFO = 7
    AZIMUTH_ELEVATION_STATIC_HEATMAP = 8
    TEMPERATURE_STATISTICS = 9


class RejectReason:
    """Names under which :class:`Iwr6843Parser` counts packets it throws away.

    Attributes are plain strings so that reports and JSON stay readable.
    """

    #: ``totalPacketLen`` below header + TLV headers, or above ``max_frame_len``.
    BAD_PACKET_LEN = "bad_packet_len"
    #: ``totalPacketLen`` not a multiple of the packet alignment (32 bytes).
    UNALIGNED_PACKET_LEN = "unaligned_packet_len"
    #: A TLV's header or payload runs past ``totalPacketLen``.
    TLV_OVERRUN = "tlv_overrun"
    #: The TLVs end further than one alignment unit before ``totalPacketLen``.
    BAD_PADDING = "bad_padding"
    #: A known TLV type with a payload length its layout forbids.
    BAD_TLV_LENGTH = "bad_tlv_length"
    #: The same TLV type twice in one packet.
    DUPLICATE_TLV = "duplicate_tlv"
    #: ``numDetectedObj`` disagrees with the points (or side-info) TLV length.
    POINT_COUNT_MISMATCH = "point_count_mismatch"
    #: A point coordinate or Doppler is NaN or infinite.
    NON_FINITE_POINT = "non_finite_point"
    #: A readable header from an SDK other than 3.x (:data:`SUPPORTED_SDK_MAJOR`).
    UNSUPPORTED_SDK = "unsupported_sdk"
    #: A readable SDK 3.x header from a platform not in :data:`SUPPORTED_PLATFORMS`.
    UNSUPPORTED_PLATFORM = "unsupported_platform"

    ALL = (
        BAD_PACKET_LEN,
        UNALIGNED_PACKET_LEN,
        TLV_OVERRUN,
        BAD_PADDING,
        BAD_TLV_LENGTH,
        DUPLICATE_TLV,
        POINT_COUNT_MISMATCH,
        NON_FINITE_POINT,
        UNSUPPORTED_SDK,
        UNSUPPORTED_PLATFORM,
    )


def format_version(version: int) -> str:
    """Return the SDK version word as ``"major.minor.bugfix.build"``.

    Parameters
    ----------
    version : int
        The header's ``version`` field (u32, "Frame Header": major x 2^24 + minor x 2^16
        + bugfix x 2^8 + build).

    Returns
    -------
    str
        For example ``"3.3.0.2"`` for 0x03030002.
    """
    v = int(version) & _U32_MAX
    return f"{v >> 24}.{(v >> 16) & 0xFF}.{(v >> 8) & 0xFF}.{v & 0xFF}"


def platform_name(platform: int) -> str:
    """Return the device family of a header ``platform`` word.

    Parameters
    ----------
    platform : int
        The header's ``platform`` field (u32), e.g. 0xA6843.

    Returns
    -------
    str
        ``"xWR68xx"`` etc. (:data:`PLATFORM_NAMES`), else ``"platform 0x..."``.
    """
    name = PLATFORM_NAMES.get(int(platform))
    return name if name is not None else f"platform 0x{int(platform) & _U32_MAX:X}"


def header_label(version: int, platform: int) -> str:
    """Return ``"SDK <major>.<minor> / <platform>"`` for a header, e.g. ``"SDK 2.1 / xWR14xx"``.

    Parameters
    ----------
    version, platform : int
        The header's ``version`` and ``platform`` words.

    Returns
    -------
    str
    """
    v = int(version) & _U32_MAX
    return f"SDK {v >> 24}.{(v >> 16) & 0xFF} / {platform_name(platform)}"


def _check_sdk(version: int, platform: int) -> str | None:
    """Reject reason for a header of an SDK or platform this module does not decode."""
    if (int(version) & _U32_MAX) >> 24 != SUPPORTED_SDK_MAJOR:
        return RejectReason.UNSUPPORTED_SDK
    if int(platform) not in SUPPORTED_PLATFORMS:
        return RejectReason.UNSUPPORTED_PLATFORM
    return None


def sensor_to_radar(x_sensor_m: float, y_sensor_m: float) -> tuple[float, float]:
    """Turn a point from TI's SENSOR axes to the house RADAR axes.

    TI's sensor frame has x to the right looking out of the antenna and y along the
    boresight (module docstring, "Point axes"); the radar frame of
    :mod:`firmware_bridge.protocols.frames` has x along the boresight and y to the left.

    Parameters
    ----------
    x_sensor_m, y_sensor_m : float
        Point in the sensor frame, m (or a velocity, m/s).

    Returns
    -------
    (float, float)
        ``(x_radar, y_radar) = (y_sensor, -x_sensor)``; exact (no rounding).
    """
    return y_sensor_m, -x_sensor_m


def radar_to_sensor(x_radar_m: float, y_radar_m: float) -> tuple[float, float]:
    """Inverse of :func:`sensor_to_radar`: ``(x_sensor, y_sensor) = (-y_radar, x_radar)``.

    Parameters
    ----------
    x_radar_m, y_radar_m : float
        Point in the radar frame (x boresight, y left), m.

    Returns
    -------
    (float, float)
        ``(x_sensor_m, y_sensor_m)``, TI axes (x right, y boresight); exact.
    """
    return -y_radar_m, x_radar_m


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The 40-byte frame header, fields as on the wire ("Frame Header").

    Attributes
    ----------
    version : int
        SDK version word (see :func:`format_version`).
    total_packet_len : int
        Whole packet in bytes, header and padding included.
    platform : int
        Device type, 0xA6843 for the IWR6843.
    frame_number : int
        Frame counter; resets on power cycle, not on sensor stop/start.
    time_cpu_cycles : int
        CPU cycle counter when the packet was built (u32, wraps; 200 MHz on the capture:
        20,000,000 cycles per 100 ms frame).
    num_detected_obj : int
        Number of detected points in this frame.
    num_tlvs : int
        Number of TLV items that follow.
    sub_frame_number : int
        0 unless advanced sub-frame mode is on.
    """

    version: int
    total_packet_len: int
    platform: int
    frame_number: int
    time_cpu_cycles: int
    num_detected_obj: int
    num_tlvs: int
    sub_frame_number: int


@dataclass(frozen=True, slots=True)
class RadarPoint:
    """One detected point, in the SENSOR frame (TI axes: x right, y boresight, z up).

    Attributes
    ----------
    x_m, y_m, z_m : float
        Position in metres, sensor frame (TLV type 1).
    doppler_mps : float
        Radial velocity in m/s, positive when the range grows (TLV type 1).
    snr_db : float or None
        Signal-to-noise ratio in dB (TLV type 7, 0.1 dB steps); ``None`` when the packet
        carries no side info.
    noise_db : float or None
        Noise level in dB (TLV type 7, 0.1 dB steps); ``None`` without side info.
    """

    x_m: float
    y_m: float
    z_m: float
    doppler_mps: float
    snr_db: float | None = None
    noise_db: float | None = None


@dataclass(frozen=True, slots=True)
class FrameStatistics:
    """Data-path statistics, TLV type 6 (24 bytes; "Statistics" table).

    Attributes
    ----------
    inter_frame_processing_time_us : int
    transmit_output_time_us : int
    inter_frame_processing_margin_us : int
    inter_chirp_processing_margin_us : int
        Times and margins in microseconds.
    active_frame_cpu_load_pct : int
    inter_frame_cpu_load_pct : int
        CPU loads in percent.
    """

    inter_frame_processing_time_us: int
    transmit_output_time_us: int
    inter_frame_processing_margin_us: int
    inter_chirp_processing_margin_us: int
    active_frame_cpu_load_pct: int
    inter_frame_cpu_load_pct: int


@dataclass(frozen=True, slots=True)
class TemperatureStatistics:
    """Temperature report, TLV type 9 (28 bytes; "Temperature Statistics" table).

    Attributes
    ----------
    report_valid : int
        ``tempReportValid`` (0 when the values are valid, as the radar SS reports it).
    time_ms : int
        Radar sub-system time since power-up, 1 LSB = 1 ms.
    sensor_temps_degc : tuple of int, length 10
        Rx0..Rx3, Tx0..Tx2, PM, Dig0, Dig1 sensors in deg C (1 LSB = 1 deg C).
    """

    report_valid: int
    time_ms: int
    sensor_temps_degc: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class RadarFrame:
    """One decoded packet.

    Attributes
    ----------
    frame_number : int
        Header ``frameNumber``.
    time_cpu_cycles : int
        Header ``timeCpuCycles`` (u32, wraps).
    points : tuple of RadarPoint
        Detected points in the SENSOR frame, ``len == num_detected_obj``.
    stats : FrameStatistics or None
        TLV type 6 when present.
    header : FrameHeader
        All header fields as received.
    tlv_types : tuple of int
        Types of the TLVs in packet order (unknown types included).
    range_profile_q9 : tuple of int or None
        TLV type 2, one u16 per range bin (sum of log2 magnitudes, Q9), when present.
    temperature : TemperatureStatistics or None
        TLV type 9 when present.
    """

    frame_number: int
    time_cpu_cycles: int
    points: tuple[RadarPoint, ...]
    stats: FrameStatistics | None
    header: FrameHeader
    tlv_types: tuple[int, ...] = ()
    range_profile_q9: tuple[int, ...] | None = None
    temperature: TemperatureStatistics | None = field(default=None)

    @property
    def has_side_info(self) -> bool:
        """True when the points carry snr/noise (TLV type 7 was present)."""
        return TlvType.SIDE_INFO in self.tlv_types


def decode_header(data: bytes | bytearray | memoryview, offset: int = 0) -> FrameHeader:
    """Decode the 40-byte frame header at ``offset`` (no plausibility checks).

    Parameters
    ----------
    data : bytes-like
        Buffer holding at least ``offset + 40`` bytes, the magic word first.
    offset : int
        Where the magic word starts.

    Returns
    -------
    FrameHeader

    Raises
    ------
    ProtocolError
        If fewer than 40 bytes are available or the magic word is absent.
    """
    if len(data) - offset < FRAME_HEADER_LEN:
        raise ProtocolError(f"frame header needs {FRAME_HEADER_LEN} bytes")
    magic, *fields = _HEADER.unpack_from(data, offset)
    if magic != MAGIC_WORD:
        raise ProtocolError("no magic word at the start of the frame header")
    return FrameHeader(*fields)


def _check_header(header: FrameHeader, max_frame_len: int, align: int) -> str | None:
    """Return a reject reason if the header alone is implausible, else None."""
    total = header.total_packet_len
    if total < FRAME_HEADER_LEN + TLV_HEADER_LEN * header.num_tlvs or total > max_frame_len:
        return RejectReason.BAD_PACKET_LEN
    if total % align:
        return RejectReason.UNALIGNED_PACKET_LEN
    if header.num_detected_obj * _POINT.size > total - FRAME_HEADER_LEN - TLV_HEADER_LEN:
        return RejectReason.POINT_COUNT_MISMATCH
    return None


def _walk_tlvs(
    buf: bytes | bytearray | memoryview,
    start: int,
    available: int,
    header: FrameHeader,
    align: int,
) -> tuple[str | None, list[tuple[int, int, int]], int]:
    """Walk the TLV headers of the packet at ``start`` as far as ``available`` bytes go.

    Returns ``(reason, tlvs, need)``: a reject reason or None; the TLVs seen as
    ``(type, payload_offset, payload_len)`` with absolute offsets; how many bytes from
    ``start`` must be present before walking again can tell more (the end of the next
    unseen TLV header, or the whole packet once every header was seen and checked).
    """
    total = header.total_packet_len
    end_of_packet = start + total
    limit = start + min(available, total)
    pos = start + FRAME_HEADER_LEN
    tlvs: list[tuple[int, int, int]] = []
    nobj = header.num_detected_obj
    seen: set[int] = set()
    for _ in range(header.num_tlvs):
        if pos + TLV_HEADER_LEN > end_of_packet:
            return RejectReason.TLV_OVERRUN, tlvs, total
        if pos + TLV_HEADER_LEN > limit:
            return None, tlvs, pos + TLV_HEADER_LEN - start
        tlv_type, length = _TLV_HEADER.unpack_from(buf, pos)
        payload = pos + TLV_HEADER_LEN
        if length > end_of_packet - payload:
            return RejectReason.TLV_OVERRUN, tlvs, total
        if tlv_type in seen:
            return RejectReason.DUPLICATE_TLV, tlvs, total
        seen.add(tlv_type)
        reason = _check_tlv_length(tlv_type, length, nobj)
        if reason is not None:
            return reason, tlvs, total
        tlvs.append((tlv_type, payload, length))
        pos = payload + length
    # Padding: the page pads "so that the total packet length is always multiple of 32
    # Bytes", i.e. to the next multiple -- never a whole extra unit.
    if end_of_packet - pos >= align:
        return RejectReason.BAD_PADDING, tlvs, total
    if nobj and TlvType.DETECTED_POINTS not in seen:
        return RejectReason.POINT_COUNT_MISMATCH, tlvs, total
    return None, tlvs, total


def _check_tlv_length(tlv_type: int, length: int, nobj: int) -> str | None:
    if tlv_type == TlvType.DETECTED_POINTS:
        if length % _POINT.size:
            return RejectReason.BAD_TLV_LENGTH
        if length != nobj * _POINT.size:
            return RejectReason.POINT_COUNT_MISMATCH
    elif tlv_type == TlvType.SIDE_INFO:
        if length % _SIDE_INFO.size:
            return RejectReason.BAD_TLV_LENGTH
        if length != nobj * _SIDE_INFO.size:
            return RejectReason.POINT_COUNT_MISMATCH
    elif tlv_type == TlvType.STATISTICS:
        if length != _STATS.size:
            return RejectReason.BAD_TLV_LENGTH
    elif tlv_type == TlvType.TEMPERATURE_STATISTICS:
        if length != _TEMPERATURE.size:
            return RejectReason.BAD_TLV_LENGTH
    elif tlv_type in (TlvType.RANGE_PROFILE, TlvType.NOISE_PROFILE, TlvType.RANGE_DOPPLER_HEATMAP):
        if length % 2:
            return RejectReason.BAD_TLV_LENGTH
    elif tlv_type in (TlvType.AZIMUTH_STATIC_HEATMAP, TlvType.AZIMUTH_ELEVATION_STATIC_HEATMAP):
        if length % 4:
            return RejectReason.BAD_TLV_LENGTH
    return None


def _build_frame(
    buf: bytes | bytearray | memoryview,
    header: FrameHeader,
    tlvs: Sequence[tuple[int, int, int]],
) -> RadarFrame | str:
    """Decode the payloads of a walked packet; return the frame or a reject reason."""
    raw_points: list[tuple[float, float, float, float]] = []
    side: list[tuple[int, int]] | None = None
    stats = None
    profile = None
    temperature = None
    for tlv_type, payload, length in tlvs:
        if tlv_type == TlvType.DETECTED_POINTS:
            raw_points = list(_POINT.iter_unpack(buf[payload : payload + length]))
        elif tlv_type == TlvType.SIDE_INFO:
            side = list(_SIDE_INFO.iter_unpack(buf[payload : payload + length]))
        elif tlv_type == TlvType.STATISTICS:
            stats = FrameStatistics(*_STATS.unpack_from(buf, payload))
        elif tlv_type == TlvType.RANGE_PROFILE:
            profile = tuple(struct.unpack_from(f"<{length // 2}H", buf, payload))
        elif tlv_type == TlvType.TEMPERATURE_STATISTICS:
            valid, time_ms, *temps = _TEMPERATURE.unpack_from(buf, payload)
            temperature = TemperatureStatistics(valid, time_ms, tuple(temps))
    isfinite = math.isfinite
    points = []
    for i, (x, y, z, v) in enumerate(raw_points):
        if not (isfinite(x) and isfinite(y) and isfinite(z) and isfinite(v)):
            return RejectReason.NON_FINITE_POINT
        if side is not None:
            snr, noise = side[i]
            points.append(RadarPoint(x, y, z, v, snr * 0.1, noise * 0.1))
        else:
            points.append(RadarPoint(x, y, z, v))
    return RadarFrame(
        frame_number=header.frame_number,
        time_cpu_cycles=header.time_cpu_cycles,
        points=tuple(points),
        stats=stats,
        header=header,
        tlv_types=tuple(t for t, _, _ in tlvs),
        range_profile_q9=profile,
        temperature=temperature,
    )


def decode_packet(
    packet: bytes | bytearray | memoryview,
    *,
    max_frame_len: int = DEFAULT_MAX_FRAME_LEN,
    packet_align_bytes: int = PACKET_ALIGN_BYTES,
) -> RadarFrame:
    """Decode exactly one packet, strictly (one-shot helper for tests and tools).

    Parameters
    ----------
    packet : bytes-like
        One whole packet, magic word first, ``totalPacketLen`` bytes long.
    max_frame_len : int
        Largest acceptable ``totalPacketLen`` in bytes.
    packet_align_bytes : int
        Packet length alignment in bytes (32 per the page; 1 disables the check).

    Returns
    -------
    RadarFrame

    Raises
    ------
    ProtocolError
        With one of the :class:`RejectReason` names, or a length/magic complaint.
    """
    header = decode_header(packet)
    reason = _check_sdk(header.version, header.platform)
    if reason is not None:
        raise ProtocolError(f"{reason}: {header_label(header.version, header.platform)}")
    reason = _check_header(header, max_frame_len, packet_align_bytes)
    if reason is None and len(packet) != header.total_packet_len:
        raise ProtocolError(
            f"packet is {len(packet)} bytes, header says {header.total_packet_len}"
        )
    if reason is None:
        reason, tlvs, _ = _walk_tlvs(packet, 0, len(packet), header, packet_align_bytes)
    if reason is not None:
        raise ProtocolError(reason)
    result = _build_frame(packet, header, tlvs)
    if isinstance(result, str):
        raise ProtocolError(result)
    return result


class Iwr6843Parser:
    """Incremental parser of the IWR6843 UART stream: bytes in any chunking -> frames.

    Per-tick: call :meth:`feed` with whatever the port returned. The parser finds the
    magic word, checks the header, walks the TLVs, and returns every complete packet
    that passes all checks. It never raises on wire input: a bad candidate packet is
    counted in :attr:`rejects` under a :class:`RejectReason` name and the search for the
    next magic word restarts one byte after the rejected one, so frames that followed a
    truncated packet are not lost. Bytes skipped while looking for a magic word are
    counted in :attr:`garbage_bytes`; each run of them is one :attr:`resyncs`.

    Memory is bounded: at most ``max_frame_len - 1`` bytes are kept between calls, and
    :meth:`feed` works through large inputs in slices of ``max_frame_len`` bytes.

    Parameters
    ----------
    max_frame_len : int
        Largest acceptable ``totalPacketLen`` in bytes (default 65536). A header claiming
        more is rejected as ``bad_packet_len`` without waiting for the bytes.
    packet_align_bytes : int
        Packet length alignment (32 bytes per "Understanding the Out of Box Demo Data
        Output", introduction). 1 disables the alignment and padding checks' unit.

    Raises
    ------
    ValueError
        If ``max_frame_len`` is smaller than one header plus one TLV header, or
        ``packet_align_bytes`` is not positive.

    Notes
    -----
    Source: TI "Understanding the Out of Box Demo Data Output" ("Frame Header": "Use the
    Magic Word to find the start of each packet"; "TLV Header"; "TLV Payload").
    """

    def __init__(
        self,
        max_frame_len: int = DEFAULT_MAX_FRAME_LEN,
        *,
        packet_align_bytes: int = PACKET_ALIGN_BYTES,
    ) -> None:
        if max_frame_len < FRAME_HEADER_LEN + TLV_HEADER_LEN:
            raise ValueError(f"max_frame_len must be >= {FRAME_HEADER_LEN + TLV_HEADER_LEN}")
        if packet_align_bytes < 1:
            raise ValueError("packet_align_bytes must be >= 1")
        self.max_frame_len = int(max_frame_len)
        self.packet_align_bytes = int(packet_align_bytes)
        self._buf = bytearray()
        self._buf_offset = 0  # absolute stream offset of self._buf[0]
        self._in_garbage = False
        self._spans: list[tuple[int, int]] | None = None
        self._need = 0  # bytes the candidate at _buf[0] needs before it is worth a look
        #: Bytes given to :meth:`feed` so far.
        self.bytes_in = 0
        #: Packets accepted.
        self.frames = 0
        #: Rejected candidate packets, by :class:`RejectReason` name.
        self.rejects: Counter[str] = Counter()
        #: Bytes skipped while looking for a magic word.
        self.garbage_bytes = 0
        #: Runs of skipped bytes (each ends at a magic word).
        self.resyncs = 0
        #: TLVs of accepted packets, by type.
        self.tlv_counts: Counter[int] = Counter()
        #: Points in accepted packets.
        self.points = 0
        #: Readable headers (magic word + 40 bytes) by :func:`header_label`, accepted or
        #: not (at most 16 labels).
        self.headers: Counter[str] = Counter()
        #: Packets refused for their SDK or platform, by :func:`header_label`.
        self.unsupported: Counter[str] = Counter()

    @property
    def buffered_bytes(self) -> int:
        """Bytes held, waiting for the rest of a packet (or a possible magic prefix)."""
        return len(self._buf)

    def stats(self) -> dict[str, object]:
        """Return the counters as a plain dict (JSON-ready).

        Returns
        -------
        dict
            ``bytes_in``, ``frames``, ``points``, ``rejects`` (reason -> count),
            ``resyncs``, ``garbage_bytes``, ``buffered_bytes``, ``tlvs`` (type -> count).
        """
        return {
            "bytes_in": self.bytes_in,
            "frames": self.frames,
            "points": self.points,
            "rejects": dict(sorted(self.rejects.items())),
            "resyncs": self.resyncs,
            "garbage_bytes": self.garbage_bytes,
            "buffered_bytes": len(self._buf),
            "tlvs": {int(k): v for k, v in sorted(self.tlv_counts.items())},
            "headers": dict(self.headers),
            "unsupported": dict(self.unsupported),
        }

    def rejection_text(self) -> str | None:
        """One phrase for why packets were rejected, or None when none was.

        Returns
        -------
        str or None
            ``"unsupported SDK 2.1 / xWR14xx"`` when every rejected packet came from an
            unsupported SDK or platform (the most frequent label first), else the reasons
            with counts, e.g. ``"point_count_mismatch x12, tlv_overrun x1"``.
        """
        total = sum(self.rejects.values())
        if not total:
            return None
        n_unsupported = sum(self.unsupported.values())
        if n_unsupported == total:
            return "unsupported " + ", ".join(k for k, _ in self.unsupported.most_common())
        parts = [f"{k} x{v}" for k, v in self.rejects.most_common()]
        if self.unsupported:
            parts.append("from " + ", ".join(k for k, _ in self.unsupported.most_common()))
        return ", ".join(parts)

    def feed(self, data: bytes | bytearray | memoryview) -> list[RadarFrame]:
        """Take the next bytes of the stream; return the frames they complete.

        Per-tick. Never raises on wire content.

        Parameters
        ----------
        data : bytes-like
            Any number of bytes (possibly none), continuing the stream.

        Returns
        -------
        list of RadarFrame
            Accepted frames in stream order (often empty).
        """
        out: list[RadarFrame] = []
        view = memoryview(data).cast("B")
        self.bytes_in += len(view)
        step = self.max_frame_len
        for i in range(0, len(view), step):
            self._buf += view[i : i + step]
            self._drain(out)
        return out

    # -- internals -------------------------------------------------------------------

    def _count_header(self, header: FrameHeader, *, unsupported: bool = False) -> None:
        """Count a decided candidate's header label (bounded to 16 labels)."""
        label = header_label(header.version, header.platform)
        if unsupported:
            self.unsupported[label] += 1
        if label in self.headers or len(self.headers) < 16:
            self.headers[label] += 1

    def _skip(self, n: int) -> None:
        """Count ``n`` bytes as garbage (part of one run until a magic word is found)."""
        if n <= 0:
            return
        self.garbage_bytes += n
        if not self._in_garbage:
            self._in_garbage = True
            self.resyncs += 1

    def _drain(self, out: list[RadarFrame]) -> None:
        buf = self._buf
        n = len(buf)
        if n < self._need:
            return  # still waiting for the same candidate packet: nothing new to check
        self._need = 0
        pos = 0
        align = self.packet_align_bytes
        while True:
            start = buf.find(MAGIC_WORD, pos)
            if start < 0:
                # Keep a tail that could be the start of a magic word split by the chunking.
                keep = min(n - pos, len(MAGIC_WORD) - 1)
                while keep and not MAGIC_WORD.startswith(bytes(buf[n - keep : n])):
                    keep -= 1
                self._skip(n - keep - pos)
                pos = n - keep
                break
            self._skip(start - pos)
            pos = start
            if n - start < FRAME_HEADER_LEN:
                self._need = FRAME_HEADER_LEN
                break
            header = FrameHeader(*_HEADER.unpack_from(buf, start)[1:])
            reason = sdk_reason = _check_sdk(header.version, header.platform)
            if reason is None:
                reason = _check_header(header, self.max_frame_len, align)
            tlvs: list[tuple[int, int, int]] = []
            if reason is None:
                reason, tlvs, need = _walk_tlvs(buf, start, n - start, header, align)
                if reason is None and n - start < header.total_packet_len:
                    self._need = need  # relative to the candidate, which becomes _buf[0]
                    break  # plausible so far: wait for the rest of the packet
            frame: RadarFrame | None = None
            if reason is None:
                result = _build_frame(buf, header, tlvs)
                if isinstance(result, str):
                    reason = result
                else:
                    frame = result
            if reason is not None:
                self.rejects[reason] += 1
                self._count_header(header, unsupported=sdk_reason is not None)
                # Resume the search inside the rejected candidate: a truncated packet
                # may hide whole good packets behind its (bogus) length.
                self._in_garbage = False
                self._skip(1)
                pos = start + 1
                continue
            self._in_garbage = False
            total = header.total_packet_len
            if self._spans is not None:
                self._spans.append((self._buf_offset + start, self._buf_offset + start + total))
            self.frames += 1
            self._count_header(header)
            assert frame is not None  # no reject reason: the packet decoded
            self.points += len(frame.points)
            for t, _, _ in tlvs:
                self.tlv_counts[t] += 1
            out.append(frame)
            pos = start + total
        if pos:
            del buf[:pos]
            self._buf_offset += pos


# --------------------------------------------------------------------------- point gate

#: Largest range the reference chirp can measure: ``fs * c / (2 * slope)`` with
#: ``profileCfg`` 6000 ksps complex sampling and 50 MHz/us slope of the capture's own
#: configuration (``profile_3d_automated_doors_ISK.cfg``) = 18.0 m; its CFAR window
#: (``cfarFovCfg -1 0 0 11.11``) reports points to 11.11 m only.
CHIRP_MAX_RANGE_M = 6.0e6 * 299_792_458.0 / (2.0 * 50.0e12)
#: Angle-of-arrival window of the reference configuration (``aoaFovCfg -1 -90 90 -90 90``):
#: azimuth and elevation +-90 deg, i.e. the half-space in front of the antenna. The real
#: capture's points reach +-75.6 deg azimuth.
AOA_FOV_HALF_DEG = 90.0

#: Point-level drop reasons of the gate (counted per point).
POINT_OUT_OF_RANGE = "point_out_of_range"
POINT_OUT_OF_FOV = "point_out_of_fov"


@dataclass(frozen=True, slots=True)
class PointGate:
    """Where a detected point may lie (sensor frame: x right, y boresight, z up).

    Attributes
    ----------
    min_range_m, max_range_m : float
        Range bounds, m: a point at the antenna itself (range 0) is no measurement; the
        largest is the chirp's maximum range (:data:`CHIRP_MAX_RANGE_M`, 18.0 m).
    fov_azimuth_deg, fov_elevation_deg : float
        Largest ``|azimuth|`` (from boresight in the x-y plane) and ``|elevation|``, deg
        (:data:`AOA_FOV_HALF_DEG`: the configured angle-of-arrival window).
    """

    min_range_m: float = 0.0
    max_range_m: float = CHIRP_MAX_RANGE_M
    fov_azimuth_deg: float = AOA_FOV_HALF_DEG
    fov_elevation_deg: float = AOA_FOV_HALF_DEG

    def reason(self, point: RadarPoint) -> str | None:
        """Return why ``point`` lies outside the gate, or None when inside.

        Parameters
        ----------
        point : RadarPoint
            A decoded point (finite: the parser refuses non-finite ones).

        Returns
        -------
        str or None
            :data:`POINT_OUT_OF_RANGE` (range not in ``(min_range_m, max_range_m]``) or
            :data:`POINT_OUT_OF_FOV` (azimuth or elevation beyond its half-angle).
        """
        x, y, z = point.x_m, point.y_m, point.z_m
        rng = math.sqrt(x * x + y * y + z * z)
        if not (rng > self.min_range_m and rng <= self.max_range_m):
            return POINT_OUT_OF_RANGE
        if abs(math.degrees(math.atan2(x, y))) > self.fov_azimuth_deg:
            return POINT_OUT_OF_FOV
        if abs(math.degrees(math.asin(max(-1.0, min(1.0, z / rng))))) > self.fov_elevation_deg:
            return POINT_OUT_OF_FOV
        return None


def gate_points(points: Sequence[RadarPoint], gate: PointGate) -> tuple[tuple[RadarPoint, ...], list[str]]:
    """Split a frame's points into those inside ``gate`` and the reasons of those outside.

    Parameters
    ----------
    points : sequence of RadarPoint
    gate : PointGate

    Returns
    -------
    (tuple of RadarPoint, list of str)
        The kept points in order, one reason per dropped point.
    """
    kept: list[RadarPoint] = []
    reasons: list[str] = []
    for pt in points:
        why = gate.reason(pt)
        if why is None:
            kept.append(pt)
        else:
            reasons.append(why)
    return tuple(kept), reasons


def split_stream(
    data: bytes | bytearray | memoryview,
    *,
    max_frame_len: int = DEFAULT_MAX_FRAME_LEN,
    packet_align_bytes: int = PACKET_ALIGN_BYTES,
) -> list[bytes]:
    """Cut a captured byte stream into per-frame chunks, losing no byte.

    Each chunk ends where a valid packet ends; bytes that belong to no valid packet
    (garbage, truncated packets) stay in front of the packet that follows them, and any
    trailing remainder is the last chunk. ``b"".join(chunks) == data``. Used by the
    emulator to replay a ``.dat`` capture frame by frame, byte for byte.

    Parameters
    ----------
    data : bytes-like
        The whole capture.
    max_frame_len, packet_align_bytes : int
        As for :class:`Iwr6843Parser`.

    Returns
    -------
    list of bytes
    """
    raw = bytes(data)
    parser = Iwr6843Parser(max_frame_len, packet_align_bytes=packet_align_bytes)
    parser._spans = []
    parser.feed(raw)
    chunks = []
    cut = 0
    for _start, end in parser._spans:
        chunks.append(raw[cut:end])
        cut = end
    if cut < len(raw):
        chunks.append(raw[cut:])
    return chunks


def encode_packet(
    frame_number: int,
    points: Iterable[RadarPoint],
    *,
    time_cpu_cycles: int = 0,
    stats: FrameStatistics | None = None,
    range_profile_q9: Sequence[int] | None = None,
    temperature: TemperatureStatistics | None = None,
    side_info: bool | None = None,
    extra_tlvs: Sequence[tuple[int, bytes]] = (),
    version: int = SDK_VERSION_3_3,
    platform: int = PLATFORM_IWR6843,
    sub_frame_number: int = 0,
    packet_align_bytes: int = PACKET_ALIGN_BYTES,
    padding: bytes = b"\x00",
) -> bytes:
    """Build one packet as the SDK 3.3 out-of-box demo sends it.

    TLV order follows the capture: detected points (1), side info (7), range profile
    (2), statistics (6), temperature (9), then ``extra_tlvs``. As on the real radar, a
    frame with no points keeps a zero-length type-1 TLV and no side info.

    Parameters
    ----------
    frame_number : int
        Header ``frameNumber`` (u32).
    points : iterable of RadarPoint
        Points in the SENSOR frame (x right, y boresight, z up), metres and m/s.
    time_cpu_cycles : int
        Header ``timeCpuCycles``; taken modulo 2^32 (the counter wraps).
    stats : FrameStatistics, optional
        Type-6 payload.
    range_profile_q9 : sequence of int, optional
        Type-2 payload, u16 per range bin.
    temperature : TemperatureStatistics, optional
        Type-9 payload.
    side_info : bool, optional
        Whether to send type 7; default: when there are points and every point has
        ``snr_db`` and ``noise_db``.
    extra_tlvs : sequence of (int, bytes)
        Further raw TLVs (type, payload), e.g. heatmaps or unknown types.
    version, platform, sub_frame_number : int
        Header fields (defaults: SDK 3.3.0.2, 0xA6843, 0).
    packet_align_bytes : int
        Pad the packet to a multiple of this (32 per the page).
    padding : bytes
        One byte used for padding (its content is undefined on the real radar).

    Returns
    -------
    bytes
        The packet, ``totalPacketLen`` bytes long.

    Raises
    ------
    ProtocolError
        If a point value is not finite, an snr/noise does not fit int16 in 0.1 dB, a
        side-info value is missing, or a header field does not fit u32.
    """
    pts = list(points)
    for p in pts:
        if not all(math.isfinite(v) for v in (p.x_m, p.y_m, p.z_m, p.doppler_mps)):
            raise ProtocolError(f"non-finite point {p}")
    if side_info is None:
        side_info = bool(pts) and all(p.snr_db is not None and p.noise_db is not None for p in pts)
    tlvs: list[tuple[int, bytes]] = [
        (TlvType.DETECTED_POINTS, b"".join(_POINT.pack(p.x_m, p.y_m, p.z_m, p.doppler_mps) for p in pts))
    ]
    if side_info and pts:
        side = bytearray()
        for p in pts:
            if p.snr_db is None or p.noise_db is None:
                raise ProtocolError(f"side info requested but point {p} has none")
            snr, noise = round(p.snr_db * 10), round(p.noise_db * 10)
            if not (-32768 <= snr <= 32767 and -32768 <= noise <= 32767):
                raise ProtocolError(f"snr/noise out of int16 0.1 dB range: {p}")
            side += _SIDE_INFO.pack(snr, noise)
        tlvs.append((TlvType.SIDE_INFO, bytes(side)))
    if range_profile_q9 is not None:
        try:
            tlvs.append((TlvType.RANGE_PROFILE, struct.pack(f"<{len(range_profile_q9)}H", *range_profile_q9)))
        except struct.error as exc:
            raise ProtocolError(f"range profile value out of u16: {exc}") from exc
    if stats is not None:
        try:
            tlvs.append((TlvType.STATISTICS, _STATS.pack(*_astuple_stats(stats))))
        except struct.error as exc:
            raise ProtocolError(f"statistics value out of u32: {exc}") from exc
    if temperature is not None:
        try:
            tlvs.append(
                (
                    TlvType.TEMPERATURE_STATISTICS,
                    _TEMPERATURE.pack(temperature.report_valid, temperature.time_ms, *temperature.sensor_temps_degc),
                )
            )
        except struct.error as exc:
            raise ProtocolError(f"temperature statistics do not fit: {exc}") from exc
    tlvs.extend((int(t), bytes(p)) for t, p in extra_tlvs)
    body = b"".join(_TLV_HEADER.pack(t, len(p)) + p for t, p in tlvs)
    unpadded = FRAME_HEADER_LEN + len(body)
    total = -(-unpadded // packet_align_bytes) * packet_align_bytes
    try:
        header = _HEADER.pack(
            MAGIC_WORD,
            version,
            total,
            platform,
            frame_number,
            time_cpu_cycles & _U32_MAX,
            len(pts),
            len(tlvs),
            sub_frame_number,
        )
    except struct.error as exc:
        raise ProtocolError(f"header field out of u32: {exc}") from exc
    return header + body + padding[:1] * (total - unpadded)


def _astuple_stats(stats: FrameStatistics) -> tuple[int, ...]:
    return (
        stats.inter_frame_processing_time_us,
        stats.transmit_output_time_us,
        stats.inter_frame_processing_margin_us,
        stats.inter_chirp_processing_margin_us,
        stats.active_frame_cpu_load_pct,
        stats.inter_frame_cpu_load_pct,
    )
