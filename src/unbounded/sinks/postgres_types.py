"""Column types of a table the PostgreSQL sink creates, as Spark's JDBC writer picks them.

Spark 4's ``PostgresDialect.getJDBCType`` first, then ``JdbcUtils.getCommonJDBCType``:
strings are ``TEXT``, timestamps ``TIMESTAMP WITH TIME ZONE`` (``TIMESTAMP`` without a
zone), bytes and shorts ``SMALLINT``, arrays of atomic types ``<element>[]``; structs and
maps have no JDBC type and fail, naming the column.

Example:
    >>> import pyarrow as pa
    >>> column_ddl(pa.field("ts", pa.timestamp("us", tz="UTC")))
    '"ts" TIMESTAMP WITH TIME ZONE'
    >>> column_ddl(pa.field("n", pa.int64(), nullable=False))
    '"n" BIGINT NOT NULL'
"""

from __future__ import annotations

import pyarrow as pa

from unbounded.errors import AnalysisException
from unbounded.plan.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    ByteType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    TimestampNTZType,
    TimestampType,
    from_arrow_type,
)

__all__ = ["column_ddl", "postgres_type", "quote_identifier"]

_SIMPLE: dict[type[DataType], str] = {
    StringType: "TEXT",
    BinaryType: "BYTEA",
    BooleanType: "BOOLEAN",
    FloatType: "FLOAT4",
    DoubleType: "FLOAT8",
    ShortType: "SMALLINT",
    ByteType: "SMALLINT",
    TimestampType: "TIMESTAMP WITH TIME ZONE",
    IntegerType: "INTEGER",
    LongType: "BIGINT",
    TimestampNTZType: "TIMESTAMP",
    DateType: "DATE",
}


def postgres_type(data_type: DataType) -> str | None:
    """The column type Spark's JDBC writer gives ``data_type`` on PostgreSQL (None: none)."""
    simple = _SIMPLE.get(type(data_type))
    if simple is not None:
        return simple
    if isinstance(data_type, DecimalType):
        return f"NUMERIC({data_type.precision},{data_type.scale})"
    if isinstance(data_type, ArrayType):
        element = postgres_type(data_type.elementType)
        return None if element is None else f"{element}[]"
    return None


def quote_identifier(name: str) -> str:
    """A name quoted for SQL, as Spark's dialect quotes column names."""
    return '"' + name.replace('"', '""') + '"'


def column_ddl(field: pa.Field) -> str:
    """One column of ``CREATE TABLE``: quoted name, type and ``NOT NULL`` when required."""
    spark_type = from_arrow_type(field.type)
    sql_type = postgres_type(spark_type)
    if sql_type is None:
        raise AnalysisException(
            f"Can't get JDBC type for {spark_type.simpleString()} (column "
            f"{field.name!r}): PostgreSQL has no column type for it. Convert the column "
            "(e.g. to_json(col) for a struct or map) or create the table yourself.",
            error_class="UNSUPPORTED_DATATYPE")
    return f"{quote_identifier(field.name)} {sql_type}" + ("" if field.nullable else " NOT NULL")
