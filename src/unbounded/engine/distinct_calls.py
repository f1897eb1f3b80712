"""One call per distinct argument tuple, for deterministic row UDFs whose arguments repeat.

Spark allows it: a UDF is deterministic unless marked with ``asNondeterministic()``, and
for a deterministic one "duplicate invocations may be eliminated" (PySpark's
``asNondeterministic`` docstring). A batch is then dictionary-encoded (Arrow's hash, about
a tenth of a Python call per row), the function runs over the distinct tuples in order of
first appearance, and ``take`` spreads the results back over the rows. Calling in order of
first appearance keeps the failing row the one a row-by-row run reports first.

Whether it pays is decided by counts, never by time: the distinct tuples of a strided
sample of ``SAMPLE_ROWS`` rows (the whole batch when smaller). A sample sees no more
repeats than the batch has, so a sample with few repeats may skip a batch that would
have paid a little; one with many never picks a batch that does not pay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

__all__ = ["MAX_DISTINCT_RATIO", "SAMPLE_ROWS", "DistinctArguments", "distinct_arguments"]

SAMPLE_ROWS = 16_384
# Encoding costs ~15 ns a row, a Python call with its conversions ~130 ns: at most this
# many distinct tuples per sampled row, the calls saved outweigh the encoding.
MAX_DISTINCT_RATIO = 0.75
# Codes of several columns are combined into one int64 per row (mixed radix).
_MAX_COMBINED = 2**62


@dataclass(frozen=True)
class DistinctArguments:
    """The distinct argument tuples (``columns``, in order of first appearance) and, for
    each row of the batch, the position of its tuple among them (``codes``)."""

    columns: list[pa.Array]
    codes: pa.Array

    @property
    def count(self) -> int:
        return len(self.columns[0])

    def expand(self, results: pa.Array) -> pa.Array:
        """Per-tuple ``results`` as one value per row of the batch."""
        return results.take(self.codes)

    def first_row(self, position: int) -> int:
        """The batch row where distinct tuple ``position`` first appears."""
        import pyarrow.compute as pc  # lazy: 30-50 ms at import

        return int(pc.index(self.codes, pa.scalar(position, self.codes.type)).as_py())


def distinct_arguments(columns: list[pa.Array], n: int) -> DistinctArguments | None:
    """The batch's distinct argument tuples, or None when there are too few repeats to
    pay (by a sample's count) or a column's type cannot be hashed by Arrow."""
    if not columns or not all(_hashable(c.type) for c in columns):
        return None
    if n > SAMPLE_ROWS:
        step = n // SAMPLE_ROWS
        sample = [c.take(pa.array(np.arange(0, step * SAMPLE_ROWS, step))) for c in columns]
        if not _repeats_enough(_encode(sample), SAMPLE_ROWS):
            return None
    encoded = _encode(columns)
    if encoded is None or (n <= SAMPLE_ROWS and not _repeats_enough(encoded, n)):
        return None
    return encoded


def _repeats_enough(encoded: DistinctArguments | None, rows: int) -> bool:
    return encoded is not None and encoded.count <= MAX_DISTINCT_RATIO * rows


_HASHED = (pa.types.is_integer, pa.types.is_float32, pa.types.is_float64,
           pa.types.is_boolean, pa.types.is_string, pa.types.is_large_string,
           pa.types.is_binary, pa.types.is_large_binary, pa.types.is_date,
           pa.types.is_time, pa.types.is_timestamp, pa.types.is_duration,
           pa.types.is_decimal)


def _hashable(dtype: pa.DataType) -> bool:
    """Types Arrow's ``dictionary_encode`` hashes by value, equal values giving equal
    Python arguments (0.0 and -0.0 stay apart; every NaN is one value)."""
    return any(test(dtype) for test in _HASHED)


def _encode(columns: list[pa.Array]) -> DistinctArguments | None:
    """Each column dictionary-encoded (a null is a value too); several columns' codes
    combined into one key per row, encoded again. None when the key would overflow."""
    import pyarrow.compute as pc  # lazy: 30-50 ms at import

    encoded = [pc.dictionary_encode(c, null_encoding="encode") for c in columns]
    if len(encoded) == 1:
        return DistinctArguments([encoded[0].dictionary], encoded[0].indices)
    sizes = [len(e.dictionary) for e in encoded]
    if math.prod(sizes) >= _MAX_COMBINED:
        return None
    key = np.zeros(len(columns[0]), dtype=np.int64)
    for e, size in zip(encoded, sizes, strict=True):
        key = key * size + e.indices.to_numpy(zero_copy_only=False)
    tuples = pc.dictionary_encode(pa.array(key))
    return DistinctArguments(_decode(tuples.dictionary.to_numpy(), encoded, sizes),
                             tuples.indices)


def _decode(keys: np.ndarray, encoded: list[pa.DictionaryArray], sizes: list[int]
            ) -> list[pa.Array]:
    """The argument columns of each distinct combined key (mixed radix, last digit last)."""
    columns: list[pa.Array] = []
    for e, size in zip(reversed(encoded), reversed(sizes), strict=True):
        keys, digit = np.divmod(keys, size)
        columns.append(e.dictionary.take(pa.array(digit)))
    return columns[::-1]
