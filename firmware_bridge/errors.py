"""Error tree of the protocol codecs and emulators."""


class ProtocolError(Exception):
    """Bytes or a frame violate a device protocol (bad CRC, bad length, unknown id).

    Incremental decoders never raise this for bad input on the wire: they count and drop.
    It is raised by strict one-shot decode helpers and by encoders given invalid values.
    """
