"""Spark's ``hash()``: Murmur3 x86 32-bit with seed 42, vectorised with numpy.

Bit-identical to Spark's ``Murmur3Hash`` expression (``Murmur3_x86_32`` in
spark-unsafe): integers up to 32 bits and dates go through ``hashInt``, longs,
timestamps and doubles through ``hashLong``, strings (UTF-8) and binaries through
``hashUnsafeBytes`` (Spark's legacy variant: each trailing byte is mixed on its own,
sign-extended). A NULL leaves the running seed unchanged; several columns chain the
seed left to right; a struct chains its fields.

Example:
    >>> import pyarrow as pa
    >>> spark_hash([pa.array([1, 0, None], pa.int32())]).tolist()
    [-559580957, 933211791, 42]
    >>> spark_hash([pa.array(["Spark", ""])]).tolist()
    [228093765, 142593372]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["DEFAULT_SEED", "spark_hash"]

DEFAULT_SEED = 42
_C1 = np.uint32(0xCC9E2D51)
_C2 = np.uint32(0x1B873593)
U32 = npt.NDArray[np.uint32]


def _rotl(x: U32, r: int) -> U32:
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


def _mix_k1(k1: U32) -> U32:
    return _rotl(k1 * _C1, 15) * _C2


def _mix_h1(h1: U32, k1: U32) -> U32:
    return _rotl(h1 ^ k1, 13) * np.uint32(5) + np.uint32(0xE6546B64)


def _fmix(h1: U32, length: U32) -> U32:
    h1 = h1 ^ length
    h1 = h1 ^ (h1 >> np.uint32(16))
    h1 = h1 * np.uint32(0x85EBCA6B)
    h1 = h1 ^ (h1 >> np.uint32(13))
    h1 = h1 * np.uint32(0xC2B2AE35)
    return h1 ^ (h1 >> np.uint32(16))


def _hash_int(values: U32, seed: U32) -> U32:
    return _fmix(_mix_h1(seed, _mix_k1(values)), np.full_like(seed, 4))


def _hash_long(values: npt.NDArray[np.uint64], seed: U32) -> U32:
    low = (values & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    high = (values >> np.uint64(32)).astype(np.uint32)
    h1 = _mix_h1(_mix_h1(seed, _mix_k1(low)), _mix_k1(high))
    return _fmix(h1, np.full_like(seed, 8))


def _hash_bytes(array: pa.Array, seed: U32) -> U32:
    """``hashUnsafeBytes`` of each value, rows processed word position by word position."""
    offsets = np.frombuffer(array.buffers()[1], np.int64)[array.offset: array.offset
                                                          + len(array) + 1]
    data_buffer = array.buffers()[2]
    data = np.frombuffer(data_buffer, np.uint8) if data_buffer is not None \
        else np.zeros(0, np.uint8)
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    words = lengths // 4
    h1 = seed.copy()
    for j in range(int(words.max(initial=0))):
        rows = np.nonzero(words > j)[0]
        at = starts[rows] + 4 * j
        word = (data[at].astype(np.uint32) | data[at + 1].astype(np.uint32) << np.uint32(8)
                | data[at + 2].astype(np.uint32) << np.uint32(16)
                | data[at + 3].astype(np.uint32) << np.uint32(24))
        h1[rows] = _mix_h1(h1[rows], _mix_k1(word))
    for t in range(3):
        rows = np.nonzero(lengths - 4 * words > t)[0]
        signed = data[starts[rows] + 4 * words[rows] + t].view(np.int8).astype(np.int32)
        h1[rows] = _mix_h1(h1[rows], _mix_k1(signed.view(np.uint32)))
    return _fmix(h1, lengths.astype(np.uint32))


def _float_bits(array: pa.Array, width: int) -> npt.NDArray[np.uint64] | U32:
    """IEEE bits as Java's floatToIntBits/doubleToLongBits, with -0.0 as 0.0 (Spark)."""
    float_type = np.float32 if width == 32 else np.float64
    values = array.to_numpy(zero_copy_only=False).astype(float_type)
    values = np.where(values == 0, float_type(0), values)
    values = np.where(np.isnan(values), float_type("nan"), values)
    if width == 32:
        return values.view(np.uint32)
    return values.view(np.uint64)


def _hash_array(array: pa.Array, seed: U32) -> U32:
    """Hash one column into ``seed`` (rows where it is NULL keep their seed)."""
    import pyarrow.compute as pc  # lazy: 30-50 ms at import, only hashing needs it

    t = array.type
    filled: pa.Array = array
    if pa.types.is_struct(t):
        hashed = seed
        for field in array.flatten():
            hashed = _hash_array(field, hashed)
    elif pa.types.is_boolean(t):
        hashed = _hash_int(pc.fill_null(array, False).to_numpy(zero_copy_only=False)
                           .astype(np.uint32), seed)
    elif (pa.types.is_integer(t) and t.bit_width <= 32) or pa.types.is_date32(t):
        filled = pc.fill_null(array.cast(pa.int32()), 0)
        hashed = _hash_int(filled.to_numpy().astype(np.int32).view(np.uint32), seed)
    elif pa.types.is_integer(t) or pa.types.is_timestamp(t) or pa.types.is_date64(t):
        filled = pc.fill_null(array.cast(pa.int64()), 0)
        hashed = _hash_long(filled.to_numpy().astype(np.int64).view(np.uint64), seed)
    elif pa.types.is_float32(t) or pa.types.is_float16(t):
        hashed = _hash_int(_float_bits(pc.fill_null(array.cast(pa.float32()), 0.0), 32)
                           .astype(np.uint32), seed)
    elif pa.types.is_floating(t):
        hashed = _hash_long(_float_bits(pc.fill_null(array, 0.0), 64).astype(np.uint64), seed)
    elif pa.types.is_decimal(t) and t.precision <= 18:
        unscaled = [None if v is None else int(v.scaleb(t.scale)) for v in array.to_pylist()]
        longs = np.array([0 if v is None else v for v in unscaled], np.int64)
        hashed = _hash_long(longs.view(np.uint64), seed)
    elif _is_text(t):
        target = pa.large_binary()
        hashed = _hash_bytes(pc.fill_null(array.cast(target), b""), seed)
    else:
        raise TypeError(f"hash() does not support values of Arrow type {t}")
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    return np.where(valid, hashed, seed).astype(np.uint32)


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_string_view(t) or pa.types.is_binary(t)
                or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)
                or pa.types.is_fixed_size_binary(t))


def spark_hash(columns: Sequence[pa.Array | pa.ChunkedArray],
               seed: int = DEFAULT_SEED) -> npt.NDArray[np.int32]:
    """Spark's ``hash(c1, c2, ...)`` of equally long columns, as signed 32-bit ints."""
    length = len(columns[0]) if columns else 0
    hashed = np.full(length, seed, np.uint32)
    for column in columns:
        array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        hashed = _hash_array(array, hashed)
    return hashed.view(np.int32)
