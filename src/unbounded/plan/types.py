"""Spark's SQL types, each mapped to one Arrow type (and so to one Polars type).

The mapping is the contract between the PySpark-shaped API and the columnar engine:
``TimestampType`` is Arrow ``timestamp[us, UTC]``, ``LongType`` is ``int64``, and a
``MapType`` is Arrow's ``map`` (Polars' ``Map``; an ``array<struct<key, value>>`` stays a
list).

Example:
    >>> StructType.fromDDL("id LONG, name STRING").simpleString()
    'struct<id:bigint,name:string>'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from unbounded.errors import ParseException

__all__ = [
    "ArrayType",
    "BinaryType",
    "BooleanType",
    "ByteType",
    "DataType",
    "DateType",
    "DecimalType",
    "DoubleType",
    "FloatType",
    "IntegerType",
    "LongType",
    "MapType",
    "NullType",
    "ShortType",
    "StringType",
    "StructField",
    "StructType",
    "TimestampNTZType",
    "TimestampType",
    "from_arrow_type",
    "parse_data_type",
    "parse_ddl_schema",
]


class DataType:
    """Base of all Spark types; equal when of the same class and parameters."""

    type_name: ClassVar[str] = "data"  # the SQL name: simpleString(), e.g. "bigint"
    json_name: ClassVar[str] = ""  # PySpark's typeName() when it differs, e.g. "long"

    def simpleString(self) -> str:
        return self.type_name

    def typeName(self) -> str:
        """PySpark's name of the type (``long``, ``integer``), used in JSON and printSchema."""
        return self.json_name or self.type_name

    def to_arrow(self) -> pa.DataType:
        raise NotImplementedError(type(self).__name__)

    def jsonValue(self) -> Any:
        return self.typeName()

    def json(self) -> str:
        return json.dumps(self.jsonValue(), separators=(",", ":"))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NullType(DataType):
    type_name = "void"

    def to_arrow(self) -> pa.DataType:
        return pa.null()


class StringType(DataType):
    type_name = "string"

    def to_arrow(self) -> pa.DataType:
        return pa.large_string()


class BinaryType(DataType):
    type_name = "binary"

    def to_arrow(self) -> pa.DataType:
        return pa.large_binary()


class BooleanType(DataType):
    type_name = "boolean"

    def to_arrow(self) -> pa.DataType:
        return pa.bool_()


class ByteType(DataType):
    type_name = "tinyint"
    json_name = "byte"

    def to_arrow(self) -> pa.DataType:
        return pa.int8()


class ShortType(DataType):
    type_name = "smallint"
    json_name = "short"

    def to_arrow(self) -> pa.DataType:
        return pa.int16()


class IntegerType(DataType):
    type_name = "int"
    json_name = "integer"

    def to_arrow(self) -> pa.DataType:
        return pa.int32()


class LongType(DataType):
    type_name = "bigint"
    json_name = "long"

    def to_arrow(self) -> pa.DataType:
        return pa.int64()


class FloatType(DataType):
    type_name = "float"

    def to_arrow(self) -> pa.DataType:
        return pa.float32()


class DoubleType(DataType):
    type_name = "double"

    def to_arrow(self) -> pa.DataType:
        return pa.float64()


class DateType(DataType):
    type_name = "date"

    def to_arrow(self) -> pa.DataType:
        return pa.date32()


class TimestampType(DataType):
    type_name = "timestamp"

    def to_arrow(self) -> pa.DataType:
        return pa.timestamp("us", tz="UTC")


class TimestampNTZType(DataType):
    type_name = "timestamp_ntz"

    def to_arrow(self) -> pa.DataType:
        return pa.timestamp("us")


class DecimalType(DataType):
    type_name = "decimal"

    def __init__(self, precision: int = 10, scale: int = 0) -> None:
        self.precision = precision
        self.scale = scale

    def simpleString(self) -> str:
        return f"decimal({self.precision},{self.scale})"

    def jsonValue(self) -> Any:
        return self.simpleString()

    def to_arrow(self) -> pa.DataType:
        return pa.decimal128(self.precision, self.scale)

    def __repr__(self) -> str:
        return f"DecimalType({self.precision},{self.scale})"


class ArrayType(DataType):
    type_name = "array"

    def __init__(self, elementType: DataType, containsNull: bool = True) -> None:
        self.elementType = elementType
        self.containsNull = containsNull

    def simpleString(self) -> str:
        return f"array<{self.elementType.simpleString()}>"

    def jsonValue(self) -> Any:
        return {
            "type": "array",
            "elementType": self.elementType.jsonValue(),
            "containsNull": self.containsNull,
        }

    def to_arrow(self) -> pa.DataType:
        return pa.large_list(self.elementType.to_arrow())

    def __repr__(self) -> str:
        return f"ArrayType({self.elementType!r}, {self.containsNull})"


class MapType(DataType):
    type_name = "map"

    def __init__(
        self,
        keyType: DataType,
        valueType: DataType,
        valueContainsNull: bool = True,
    ) -> None:
        self.keyType = keyType
        self.valueType = valueType
        self.valueContainsNull = valueContainsNull

    def simpleString(self) -> str:
        return f"map<{self.keyType.simpleString()},{self.valueType.simpleString()}>"

    def jsonValue(self) -> Any:
        return {
            "type": "map",
            "keyType": self.keyType.jsonValue(),
            "valueType": self.valueType.jsonValue(),
            "valueContainsNull": self.valueContainsNull,
        }

    def to_arrow(self) -> pa.DataType:
        return pa.map_(self.keyType.to_arrow(), self.valueType.to_arrow())

    def __repr__(self) -> str:
        return f"MapType({self.keyType!r}, {self.valueType!r}, {self.valueContainsNull})"


@dataclass(eq=True)
class StructField:
    """One named, typed column of a :class:`StructType`."""

    name: str
    dataType: DataType
    nullable: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)

    def simpleString(self) -> str:
        return f"{self.name}:{self.dataType.simpleString()}"

    def jsonValue(self) -> Any:
        return {
            "name": self.name,
            "type": self.dataType.jsonValue(),
            "nullable": self.nullable,
            "metadata": self.metadata,
        }

    def to_arrow(self) -> pa.Field:
        return pa.field(self.name, self.dataType.to_arrow(), nullable=self.nullable)


class StructType(DataType):
    type_name = "struct"

    def __init__(self, fields: list[StructField] | None = None) -> None:
        self.fields: list[StructField] = list(fields or [])

    def add(
        self, field: str | StructField, data_type: DataType | str | None = None,
        nullable: bool = True,
    ) -> StructType:
        if isinstance(field, StructField):
            self.fields.append(field)
            return self
        if isinstance(data_type, str):
            data_type = parse_data_type(data_type)
        if data_type is None:
            raise ValueError("StructType.add needs a data type for a field given by name")
        self.fields.append(StructField(field, data_type, nullable))
        return self

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def fieldNames(self) -> list[str]:
        return self.names

    def __iter__(self) -> Any:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    def __getitem__(self, key: str | int) -> StructField:
        if isinstance(key, int):
            return self.fields[key]
        for f in self.fields:
            if f.name == key:
                return f
        raise KeyError(f"No StructField named {key}")

    def simpleString(self) -> str:
        return "struct<" + ",".join(f.simpleString() for f in self.fields) + ">"

    def jsonValue(self) -> Any:
        return {"type": "struct", "fields": [f.jsonValue() for f in self.fields]}

    def to_arrow(self) -> pa.DataType:
        return pa.struct([f.to_arrow() for f in self.fields])

    def to_arrow_schema(self) -> pa.Schema:
        return pa.schema([f.to_arrow() for f in self.fields])

    def treeString(self) -> str:
        lines = ["root"]
        _tree_lines(self, " |", lines)
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        inner = ", ".join(
            f"StructField({f.name!r}, {f.dataType!r}, {f.nullable})" for f in self.fields
        )
        return f"StructType([{inner}])"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StructType) and [
            (f.name, f.dataType, f.nullable) for f in self.fields
        ] == [(f.name, f.dataType, f.nullable) for f in other.fields]

    def __hash__(self) -> int:
        return hash(self.simpleString())

    @classmethod
    def fromDDL(cls, ddl: str) -> StructType:
        """Parse a DDL column list such as ``"id LONG, tags ARRAY<STRING>"``."""
        return parse_ddl_schema(ddl)

    @classmethod
    def from_arrow(cls, schema: pa.Schema) -> StructType:
        return cls([StructField(f.name, from_arrow_type(f.type), f.nullable) for f in schema])


def _tree_lines(data_type: DataType, prefix: str, lines: list[str]) -> None:
    """Spark's ``buildFormattedString``: one line per field, element, key and value."""
    if isinstance(data_type, StructType):
        for f in data_type.fields:
            lines.append(f"{prefix}-- {f.name}: {_tree_name(f.dataType)} "
                         f"(nullable = {str(f.nullable).lower()})")
            _tree_lines(f.dataType, prefix + "    |", lines)
    elif isinstance(data_type, ArrayType):
        lines.append(f"{prefix}-- element: {_tree_name(data_type.elementType)} "
                     f"(containsNull = {str(data_type.containsNull).lower()})")
        _tree_lines(data_type.elementType, prefix + "    |", lines)
    elif isinstance(data_type, MapType):
        lines.append(f"{prefix}-- key: {_tree_name(data_type.keyType)}")
        _tree_lines(data_type.keyType, prefix + "    |", lines)
        lines.append(f"{prefix}-- value: {_tree_name(data_type.valueType)} "
                     f"(valueContainsNull = {str(data_type.valueContainsNull).lower()})")
        _tree_lines(data_type.valueType, prefix + "    |", lines)


def _tree_name(data_type: DataType) -> str:
    return data_type.simpleString() if isinstance(data_type, DecimalType) \
        else data_type.typeName()


def from_arrow_type(t: pa.DataType) -> DataType:
    """The Spark type that an Arrow type stands for."""
    simple: list[tuple[Any, DataType]] = [
        (pa.types.is_null, NullType()),
        (pa.types.is_boolean, BooleanType()),
        (pa.types.is_int8, ByteType()),
        (pa.types.is_int16, ShortType()),
        (pa.types.is_int32, IntegerType()),
        (pa.types.is_int64, LongType()),
        (pa.types.is_uint8, ShortType()),
        (pa.types.is_uint16, IntegerType()),
        (pa.types.is_uint32, LongType()),
        (pa.types.is_uint64, LongType()),
        (pa.types.is_float16, FloatType()),
        (pa.types.is_float32, FloatType()),
        (pa.types.is_float64, DoubleType()),
        (pa.types.is_date, DateType()),
        (lambda x: pa.types.is_string(x) or pa.types.is_large_string(x)
         or pa.types.is_string_view(x), StringType()),
        (lambda x: pa.types.is_binary(x) or pa.types.is_large_binary(x)
         or pa.types.is_binary_view(x) or pa.types.is_fixed_size_binary(x), BinaryType()),
    ]
    for test, spark_type in simple:
        if test(t):
            return spark_type
    if pa.types.is_timestamp(t):
        return TimestampType() if t.tz is not None else TimestampNTZType()
    if pa.types.is_decimal(t):
        return DecimalType(t.precision, t.scale)
    if pa.types.is_map(t):
        return MapType(from_arrow_type(t.key_type), from_arrow_type(t.item_type))
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t) \
            or pa.types.is_fixed_size_list(t):
        return ArrayType(from_arrow_type(t.value_type))
    if pa.types.is_struct(t):
        return StructType(
            [StructField(f.name, from_arrow_type(f.type), f.nullable) for f in t]
        )
    if pa.types.is_dictionary(t):
        return from_arrow_type(t.value_type)
    if pa.types.is_time(t) or pa.types.is_duration(t):
        return LongType()
    raise TypeError(f"Arrow type {t} has no Spark equivalent")


_NAMED_TYPES: dict[str, DataType] = {
    "string": StringType(), "varchar": StringType(), "char": StringType(),
    "text": StringType(), "binary": BinaryType(), "boolean": BooleanType(),
    "bool": BooleanType(), "tinyint": ByteType(), "byte": ByteType(),
    "smallint": ShortType(), "short": ShortType(), "int": IntegerType(),
    "integer": IntegerType(), "bigint": LongType(), "long": LongType(),
    "float": FloatType(), "real": FloatType(), "double": DoubleType(),
    "date": DateType(), "timestamp": TimestampType(), "timestamp_ltz": TimestampType(),
    "timestamp_ntz": TimestampNTZType(), "void": NullType(), "null": NullType(),
}


class _TypeParser:
    """A small recursive-descent parser for Spark's type and DDL grammar."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> ParseException:
        return ParseException(
            f"Cannot parse data type {self.text!r} at position {self.pos}: {what}. "
            "Use Spark's DDL, e.g. 'id LONG, name STRING, tags ARRAY<STRING>'."
        )

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            raise self.fail(f"expected {ch!r}")
        self.pos += 1

    def ident(self) -> str:
        self.skip_ws()
        if self.peek() == "`":
            end = self.text.find("`", self.pos + 1)
            if end < 0:
                raise self.fail("unclosed backquote")
            name = self.text[self.pos + 1 : end]
            self.pos = end + 1
            return name
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isalnum() or self.text[self.pos] in "_$"
        ):
            self.pos += 1
        if start == self.pos:
            raise self.fail("expected a name")
        return self.text[start : self.pos]

    def data_type(self) -> DataType:
        name = self.ident().lower()
        if name == "array":
            self.expect("<")
            element = self.data_type()
            self.expect(">")
            return ArrayType(element)
        if name == "map":
            self.expect("<")
            key = self.data_type()
            self.expect(",")
            value = self.data_type()
            self.expect(">")
            return MapType(key, value)
        if name == "struct":
            self.expect("<")
            fields = [] if self.peek() == ">" else self.fields(struct_style=True)
            self.expect(">")
            return StructType(fields)
        if name in ("decimal", "dec", "numeric"):
            return self.decimal()
        if name in ("varchar", "char") and self.peek() == "(":
            self.expect("(")
            self.ident()
            self.expect(")")
        if name not in _NAMED_TYPES:
            raise self.fail(f"unknown type {name!r}")
        return _NAMED_TYPES[name]

    def decimal(self) -> DataType:
        if self.peek() != "(":
            return DecimalType()
        self.expect("(")
        precision = int(self.ident())
        scale = 0
        if self.peek() == ",":
            self.expect(",")
            scale = int(self.ident())
        self.expect(")")
        return DecimalType(precision, scale)

    def fields(self, *, struct_style: bool) -> list[StructField]:
        out = [self.one_field(struct_style)]
        while self.peek() == ",":
            self.expect(",")
            out.append(self.one_field(struct_style))
        return out

    def one_field(self, struct_style: bool) -> StructField:
        name = self.ident()
        if self.peek() == ":":
            self.expect(":")
        data_type = self.data_type()
        nullable = True
        rest = self.text[self.pos :].lstrip().upper()
        if rest.startswith("NOT NULL"):
            self.skip_ws()
            self.pos += len("NOT NULL")
            nullable = False
        return StructField(name, data_type, nullable)

    def done(self) -> None:
        if self.peek() != "":
            raise self.fail("unexpected trailing text")


def parse_data_type(text: str) -> DataType:
    """Parse one type name, e.g. ``"array<string>"``."""
    parser = _TypeParser(text)
    result = parser.data_type()
    parser.done()
    return result


def parse_ddl_schema(text: str) -> StructType:
    """Parse a DDL column list, or a ``struct<...>`` string, into a StructType."""
    stripped = text.strip()
    if stripped.lower().startswith("struct<"):
        parsed = parse_data_type(stripped)
        assert isinstance(parsed, StructType)
        return parsed
    parser = _TypeParser(text)
    fields = parser.fields(struct_style=False)
    parser.done()
    return StructType(fields)
