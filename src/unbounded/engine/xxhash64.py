"""Spark's ``xxhash64()``: XXH64 with seed 42, bit-identical to Spark's ``XxHash64``
expression (``XXH64`` in spark-unsafe).

As for ``hash()`` (``engine/murmur3.py``): integers up to 32 bits, booleans and dates go
through ``hashInt``, longs, timestamps and doubles (their IEEE bits, -0.0 as 0.0) through
``hashLong``, floats through ``hashInt`` of their bits, strings (UTF-8) and binaries
through ``hashUnsafeBytes``. A NULL leaves the running seed unchanged; several columns
chain the seed left to right.

>>> xxhash64_row(["Hello"]), xxhash64_row([None]), xxhash64_row([3, "Hello"], ["int", ""])
(6777584228807376986, 42, 6047979410417505240)
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["xxhash64_row"]

_MASK = (1 << 64) - 1
_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5
_SEED = 42
_EPOCH = date(1970, 1, 1)


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _MASK


def _fmix(h: int) -> int:
    h ^= h >> 33
    h = (h * _P2) & _MASK
    h ^= h >> 29
    h = (h * _P3) & _MASK
    return h ^ (h >> 32)


def _hash_int(value: int, seed: int) -> int:
    h = (seed + _P5 + 4) & _MASK
    h ^= ((value & 0xFFFFFFFF) * _P1) & _MASK
    return _fmix((_rotl(h, 23) * _P2 + _P3) & _MASK)


def _mix_long(h: int, value: int) -> int:
    h ^= (_rotl((value * _P2) & _MASK, 31) * _P1) & _MASK
    return (_rotl(h, 27) * _P1 + _P4) & _MASK


def _hash_long(value: int, seed: int) -> int:
    return _fmix(_mix_long((seed + _P5 + 8) & _MASK, value & _MASK))


def _round(v: int, lane: int) -> int:
    return (_rotl((v + lane * _P2) & _MASK, 31) * _P1) & _MASK


def _hash_bytes(data: bytes, seed: int) -> int:
    length, offset = len(data), 0
    if length >= 32:
        v = [(seed + _P1 + _P2) & _MASK, (seed + _P2) & _MASK, seed, (seed - _P1) & _MASK]
        while offset <= length - 32:
            lanes = struct.unpack_from("<4Q", data, offset)
            v = [_round(a, b) for a, b in zip(v, lanes, strict=True)]
            offset += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _MASK
        for a in v:
            h = (((h ^ _round(0, a)) * _P1) + _P4) & _MASK
    else:
        h = (seed + _P5) & _MASK
    h = (h + length) & _MASK
    while offset <= length - 8:
        h = _mix_long(h, struct.unpack_from("<Q", data, offset)[0])
        offset += 8
    if offset <= length - 4:
        h ^= (struct.unpack_from("<I", data, offset)[0] * _P1) & _MASK
        h = (_rotl(h, 23) * _P2 + _P3) & _MASK
        offset += 4
    for byte in data[offset:]:
        h ^= (byte * _P5) & _MASK
        h = (_rotl(h, 11) * _P1) & _MASK
    return _fmix(h)


def _hash_value(value: Any, kind: str, seed: int) -> int:
    if value is None:
        return seed
    if kind.startswith(("decimal:", "bigdecimal:")):
        return _hash_decimal(value, kind, seed)
    if kind == "int" or isinstance(value, bool):
        return _hash_int(int(value), seed)
    if kind == "float":
        return _hash_int(struct.unpack("<i", struct.pack("<f", value or 0.0))[0], seed)
    if isinstance(value, float):
        return _hash_long(struct.unpack("<q", struct.pack("<d", value or 0.0))[0], seed)
    if isinstance(value, datetime):
        return _hash_long(_micros(value), seed)
    if isinstance(value, date):
        return _hash_int((value - _EPOCH).days, seed)
    if isinstance(value, str):
        return _hash_bytes(value.encode(), seed)
    if isinstance(value, (bytes, bytearray)):
        return _hash_bytes(bytes(value), seed)
    return _hash_long(int(value), seed)


def _hash_decimal(value: Decimal, kind: str, seed: int) -> int:
    """Spark hashes a decimal of precision up to 18 as the long of its unscaled value,
    a wider one as the bytes of ``BigInteger.toByteArray`` (big-endian, minimal)."""
    unscaled = int(value.scaleb(int(kind.split(":")[1])))
    if kind.startswith("decimal:"):
        return _hash_long(unscaled, seed)
    size = (unscaled.bit_length() if unscaled >= 0 else (~unscaled).bit_length()) // 8 + 1
    return _hash_bytes(unscaled.to_bytes(size, "big", signed=True), seed)


def _micros(value: datetime) -> int:
    epoch = datetime(1970, 1, 1, tzinfo=value.tzinfo)
    delta = value - epoch
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def xxhash64_row(values: Sequence[Any], kinds: Sequence[str] | None = None) -> int:
    """The signed 64-bit hash of one row's values; ``kinds`` says which are ``int``
    (32 bits or fewer), ``float`` (32-bit) or ``decimal:<scale>`` (precision up to 18;
    ``bigdecimal:<scale>`` above) columns, the others being read from the value."""
    seed = _SEED
    for i, value in enumerate(values):
        seed = _hash_value(value, kinds[i] if kinds else "", seed)
    return seed - (1 << 64) if seed >> 63 else seed
