"""Partition discovery: the ``col=value`` folders between a read's root and its files.

Spark's ``PartitioningUtils``: a folder (or an fsspec URL) written with ``partitionBy``
yields its partition columns after the data columns, each typed from its values (int,
long, decimal, double, date, timestamp, else string; ``__HIVE_DEFAULT_PARTITION__`` is NULL), unless
``spark.sql.sources.partitionColumnTypeInference.enabled`` is false (all strings).
A streaming file source fixes its columns and their types once (``PartitionLayout``)
and types each new file's values with them.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import pyarrow as pa

from unbounded.errors import AnalysisException, SparkRuntimeException
from unbounded.files.stores import relative_to
from unbounded.plan.time_zones import offset_text, parse_zone
from unbounded.plan.types import (
    BinaryType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

__all__ = ["DEFAULT_PARTITION_NAME", "PartitionLayout", "PartitionedFiles",
           "discover_partitions", "escape_path_name", "unescape_path_name"]

DEFAULT_PARTITION_NAME = "__HIVE_DEFAULT_PARTITION__"

_INTEGRAL = re.compile(r"[+-]?\d+")
_FRACTIONAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[dDfF]?|NaN|[+-]?Infinity")
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")
_TIMESTAMP = re.compile(r"\d{4}-\d{1,2}-\d{1,2}[ T]\d{1,2}:\d{2}:\d{2}(\.\d{1,9})?")
# Wider-type rules of Spark's findWiderTypeForPartitionColumn, over these inferred types.
_NUMERIC_ORDER = (IntegerType(), LongType(), DoubleType())


@dataclass(frozen=True)
class PartitionedFiles:
    """Files grouped by their partition values (raw strings, None for NULL), with the
    partition columns' schema; ``columns`` is empty for an unpartitioned folder."""

    columns: StructType
    groups: dict[tuple[str | None, ...], list[str]]


def discover_partitions(files_by_root: dict[str, list[str]], *,
                        infer_types: bool) -> PartitionedFiles:
    """The partition columns of the files under each root folder.

    Files must agree on the column names (Spark's "Conflicting directory structures"
    otherwise); roots with no ``col=value`` folders give no columns.
    """
    parsed = {f: _parse(relative_to(f, root))
              for root, files in files_by_root.items() for f in files}
    names = {tuple(n for n, _ in pairs) for pairs in parsed.values()}
    if len(names) > 1:
        listed = "; ".join(sorted(", ".join(n) or "<none>" for n in names))
        raise AnalysisException(
            f"Conflicting directory structures detected under {', '.join(files_by_root)}: "
            f"partition columns {listed}. Read the folders separately.")
    columns = next(iter(names), ())
    groups: dict[tuple[str | None, ...], list[str]] = {}
    for f, pairs in parsed.items():
        groups.setdefault(tuple(v for _, v in pairs), []).append(f)
    types = [_column_type([vals[i] for vals in groups], infer_types)
             for i in range(len(columns))]
    return PartitionedFiles(StructType([StructField(n, t) for n, t in zip(columns, types,
                                                                            strict=True)]),
                            groups)


def _parse(relative: str) -> list[tuple[str, str | None]]:
    """The ``(column, value)`` pairs of a file's folders; stops at the first non-pair."""
    pairs: list[tuple[str, str | None]] = []
    for folder in relative.split("/")[:-1]:
        name, eq, value = folder.partition("=")
        if not eq or not name:
            return []
        raw = unescape_path_name(value)
        pairs.append((unescape_path_name(name), None if raw == DEFAULT_PARTITION_NAME else raw))
    return pairs


# ExternalCatalogUtils.charToEscape (off Windows): the ASCII controls and these.
_ESCAPED = frozenset([*map(chr, range(1, 32)), *'"#%\'*/:=?\\\x7f{[]^'])
_ESCAPE = re.compile("[" + re.escape("".join(sorted(_ESCAPED))) + "]")
_UNESCAPE = re.compile("%([0-9A-Fa-f]{2})")


def escape_path_name(text: str) -> str:
    """A partition column name or value as Spark writes it in a folder name: each
    character of ``_ESCAPED`` as ``%XX`` (upper-case hex), the rest (spaces, non-ASCII)
    kept.

    >>> escape_path_name("2024-03-10 03:00:00/a%b")
    '2024-03-10 03%3A00%3A00%2Fa%25b'
    """
    return _ESCAPE.sub(lambda m: f"%{ord(m.group()):02X}", text)


def unescape_path_name(text: str) -> str:
    """What :func:`escape_path_name` wrote; as Spark's ``unescapePathName``, each ``%XX``
    is the one character of that code (not UTF-8 bytes) and anything else stays.

    >>> unescape_path_name("a%3Ab%2"), unescape_path_name("%C3%A9")
    ('a:b%2', 'Ã©')
    """
    return _UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _column_type(values: list[str | None], infer_types: bool) -> DataType:
    present = [v for v in values if v is not None]
    if not infer_types or not present:
        return StringType()
    types = {_value_type(v) for v in present}
    return types.pop() if len(types) == 1 else _wider(types)


def _value_type(raw: str) -> DataType:
    """Spark's inferPartitionColumnValue: the first type in its order that parses."""
    if _INTEGRAL.fullmatch(raw):
        number = int(raw)
        if -2**31 <= number < 2**31:
            return IntegerType()
        if -2**63 <= number < 2**63:
            return LongType()
        return _integral_decimal(raw)
    if _FRACTIONAL.fullmatch(raw):
        return DoubleType()
    if _DATE.fullmatch(raw) and _parses(dt.date.fromisoformat, _padded_date(raw)):
        return DateType()
    if _TIMESTAMP.fullmatch(raw):
        return TimestampType()
    return StringType()


def _integral_decimal(raw: str) -> DataType:
    try:
        digits = len(Decimal(raw).as_tuple().digits)
    except InvalidOperation:  # pragma: no cover - the regex admits only digits
        return StringType()
    return DecimalType(digits, 0) if digits <= 38 else DoubleType()


def _padded_date(raw: str) -> str:
    year, month, day = raw.split("-")
    return f"{year}-{int(month):02d}-{int(day):02d}"


def _parses(parse: object, text: str) -> bool:
    try:
        parse(text)  # type: ignore[operator]
    except ValueError:
        return False
    return True


def _wider(types: set[DataType]) -> DataType:
    """Spark's findWiderTypeForPartitionColumn: numbers widen, date+timestamp is a
    timestamp, any other mix (and anything with a string or a decimal) is a string."""
    if types <= set(_NUMERIC_ORDER):
        return max(types, key=_NUMERIC_ORDER.index)
    if types == {DateType(), TimestampType()}:
        return TimestampType()
    return StringType()


@dataclass(frozen=True)
class PartitionLayout:
    """The partition columns of the files under ``root``, named and typed once.

    Spark's streaming file source fixes them when the stream is defined (from the
    folders present then, a user schema's type winning over inference); later files must
    have the same ``col=value`` folders, and their values must cast to those types.
    """

    root: str
    columns: StructType
    time_zone: str = "UTC"  # where a timestamp value is a wall-clock time (the session's)

    @classmethod
    def discover(cls, root: str, files: list[str], given: StructType | None, *,
                 infer_types: bool, check_values: bool = True,
                 time_zone: str = "UTC") -> PartitionLayout | None:
        """The layout of ``files`` under ``root``; None when they have no partitions.

        ``check_values``: a value the given type cannot hold fails now (when a stream is
        defined), else only when a batch reads its file."""
        found = discover_partitions({root: files}, infer_types=infer_types)
        if not found.columns.fields:
            return None
        by_name = {f.name.lower(): f for f in (given.fields if given else [])}
        typed = StructType([StructField(c.name, by_name[c.name.lower()].dataType)
                            if c.name.lower() in by_name else c for c in found.columns.fields])
        layout = cls(root, typed, time_zone)
        for values in found.groups if check_values else []:
            layout.typed_values(values)
        return layout

    def raw_values(self, path: str) -> tuple[str | None, ...]:
        """The raw partition values of the file ``path`` (None for NULL)."""
        pairs = _parse(relative_to(path, self.root))
        names = [n.lower() for n, _ in pairs]
        if names != [c.lower() for c in self.columns.names]:
            raise SparkRuntimeException(
                "[CONFLICTING_PARTITION_COLUMN_NAMES] Conflicting partition column names "
                f"detected: {path} has partition folders ({', '.join(names) or 'none'}), "
                f"the stream has ({', '.join(self.columns.names)}). Partition columns are "
                "fixed when the stream is defined: keep the same folder layout, or read the "
                "new layout as another stream.",
                error_class="CONFLICTING_PARTITION_COLUMN_NAMES")
        return tuple(v for _, v in pairs)

    def typed_values(self, raw: tuple[str | None, ...]) -> list[pa.Scalar]:
        """The values as Arrow scalars of the columns' types (Spark's
        INVALID_PARTITION_VALUE when one does not cast)."""
        return [_typed_value(v, f.name, f.dataType, self.time_zone) for v, f in
                zip(raw, self.columns.fields, strict=True)]


def _typed_value(raw: str | None, name: str, t: DataType, zone: str) -> pa.Scalar:
    target = t.to_arrow()
    if raw is None:
        return pa.scalar(None, target)
    try:
        text = _cast_text(raw, t)
        if isinstance(t, TimestampType):  # a wall-clock time in the session zone
            import pyarrow.compute as pc  # lazy: 30-50 ms at import (issue 15)

            rule = parse_zone(zone)
            text = pc.assume_timezone(text, rule.region or offset_text(rule.offset_us),
                                      ambiguous="earliest", nonexistent="earliest")
        return text.cast(target)[0]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        raise SparkRuntimeException(
            f"[INVALID_PARTITION_VALUE] Failed to cast value '{raw}' to data type "
            f'"{t.simpleString().upper()}" for partition column `{name}`. Ensure the value '
            "matches the expected data type for this partition column.",
            error_class="INVALID_PARTITION_VALUE") from None


def _cast_text(raw: str, t: DataType) -> pa.Array:
    """``raw`` as a one-value Arrow array ready to cast to ``t`` as Spark parses it."""
    if isinstance(t, DateType) and _DATE.fullmatch(raw):
        raw = _padded_date(raw)
    if isinstance(t, (DoubleType, FloatType)) and raw[-1:] in ("d", "D", "f", "F"):
        raw = raw[:-1]
    if isinstance(t, BinaryType):
        return pa.array([raw.encode()])
    text = pa.array([raw.strip() if not isinstance(t, StringType) else raw])
    if isinstance(t, TimestampType):  # naive: the caller says in which zone
        return text.cast(pa.timestamp("us"))
    return text
