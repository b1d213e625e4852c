"""CRC-12 with Koopman's polynomial 0xBAE (CRC-12F/5), table driven, for 60-bit words.

The valve board's ``VB_Command`` carries a 12-bit CRC in its bits 52..63 (issue 15,
``dbc/qiki.dbc``); this module is the arithmetic, the frame rule is in
``firmware_bridge/protocols/valve_board.py`` (:func:`~firmware_bridge.protocols.valve_board.command_checksum`).

Parameters
----------
Polynomial x^12 + x^10 + x^9 + x^8 + x^6 + x^4 + x^3 + x^2 + 1: ``0x75D`` in the usual
notation (the x^12 term implicit), ``0x175D`` explicit, ``0xBAE`` in Koopman's notation
(implicit +1). Initial value 0xFFF, final XOR 0xFFF, MSB first, no reflection. Check value
over ASCII ``"123456789"``: :data:`CHECK_VALUE` (0x364). This is not a catalogued
"CRC-12/..." standard; the parameters are the project's.

Why this polynomial
-------------------
P. Koopman, "CRC Polynomial Selection", table "Good HD=5 Polynomials"
(https://users.ece.cmu.edu/~koopman/crc/hd5.html): for 12 bits the optimal HD=5 length is
53 data bits, reached by ``(0xbae; 0x175d) CRC-12F/5 {53,53,53,10,2,2,2}`` (HD=3, 4 and 5
up to 53 bits, HD=6 up to 10). The command frame's transmitted data is 52 bits (8 duties x
6 bits + a 4-bit counter), so every corruption of 1 to 4 of the frame's 64 bits is
detected (Hamming distance 5), where CRC-8 SAE J1850 over the same frame has HD 3. Both
figures are computed by brute force in ``tests/unit/test_crc12.py`` (the pair/triple
syndrome search over the 64 frame bits, through the real frame functions).

Limit: the polynomial's period is 65 (x^65 = 1 mod P), so words longer than 53 data bits
have HD 2. The data ID byte prefixed to the CRC (60 data bits in all) is never
transmitted: a frame of another ID alone is always refused (a difference confined to the
8 data-ID bits is a burst shorter than 12), but a frame of another ID *and* one flipped
CRC bit can pass.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["POLY", "POLY_KOOPMAN", "INIT", "XOROUT", "WIDTH", "CHECK_VALUE", "BYTE_TABLE",
           "NIBBLE_TABLE", "crc12"]

WIDTH = 12
POLY = 0x75D           # x^12 implicit
POLY_KOOPMAN = 0xBAE   # +1 implicit (Koopman's tables)
INIT = 0xFFF
XOROUT = 0xFFF
CHECK_VALUE = 0x364    # crc12(b"123456789"); tests/unit/test_crc12.py checks it bit by bit
_MASK = 0xFFF
_TOP = 0x800


def _shift(reg: int, n_bits: int) -> int:
    for _ in range(n_bits):
        reg = ((reg << 1) ^ POLY) & _MASK if reg & _TOP else (reg << 1) & _MASK
    return reg


#: Register after feeding one byte b into a zero register: the byte table.
BYTE_TABLE: tuple[int, ...] = tuple(_shift(b << 4, 8) for b in range(256))
#: The same for one 4-bit nibble (the counter at the end of the command's 52 bits).
NIBBLE_TABLE: tuple[int, ...] = tuple(_shift(n << 8, 4) for n in range(16))


def crc12(data: bytes | bytearray | Sequence[int], nibble: int | None = None, *,
          init: int = INIT, xorout: int = XOROUT) -> int:
    """CRC-12 (polynomial 0x75D) of ``data`` followed by an optional 4-bit ``nibble``.

    Parameters
    ----------
    data : bytes-like or sequence of int (0..255)
        Whole bytes, each fed MSB first.
    nibble : int, optional
        4 more bits (0..15), fed MSB first after ``data``; None: none.
    init : int, optional
        Initial register value (default 0xFFF).
    xorout : int, optional
        Final XOR (default 0xFFF).

    Returns
    -------
    int
        The CRC, 0..4095. ``crc12(b"123456789") == CHECK_VALUE``.

    Notes
    -----
    One :data:`BYTE_TABLE` lookup per byte, one :data:`NIBBLE_TABLE` lookup for the
    nibble; ``tests/unit/test_crc12.py`` compares it with a bit-at-a-time oracle.
    """
    crc = init & _MASK
    table = BYTE_TABLE
    for b in data:
        crc = ((crc << 8) & _MASK) ^ table[((crc >> 4) ^ b) & 0xFF]
    if nibble is not None:
        crc = ((crc << 4) & _MASK) ^ NIBBLE_TABLE[((crc >> 8) ^ nibble) & 0xF]
    return crc ^ xorout
