"""The SQL commands ``spark.sql`` runs besides queries: views, tables and databases of
the local catalog (``unbounded.sql.catalog``), run at once as Spark runs commands.

* ``CREATE [OR REPLACE] [GLOBAL] TEMP[ORARY] VIEW v AS <query>``, ``DROP VIEW [IF EXISTS]``;
* ``CREATE [OR REPLACE] TABLE [IF NOT EXISTS] t [(col type, ...)] [USING fmt]
  [PARTITIONED BY (cols)] [AS <query>]``, ``DROP TABLE [IF EXISTS] t``;
* ``INSERT INTO|OVERWRITE [TABLE] t <query or VALUES>`` (columns by position);
* ``CREATE DATABASE|SCHEMA [IF NOT EXISTS] db``, ``USE db``, ``SHOW TABLES [IN db]``;
* ``SET key = value``, ``SET key``, ``SET TIME ZONE 'zone' | LOCAL | INTERVAL 'hh:mm'
  HOUR TO MINUTE`` (the session's conf, as ``spark.conf.set``).

A command's DataFrame is empty (``SHOW TABLES``: namespace, tableName, isTemporary;
``SET``: key, value).

Example:
    >>> from unbounded.sql import SparkSession
    >>> spark = SparkSession.builder.create()
    >>> _ = spark.sql("CREATE TEMP VIEW nums AS SELECT 1 AS n")
    >>> spark.sql("SHOW TABLES").collect()
    [Row(namespace='', tableName='nums', isTemporary=True)]
"""

from __future__ import annotations

import os
import re
import shutil
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from unbounded.errors import AnalysisException
from unbounded.plan.logical import DataRelation, LogicalPlan
from unbounded.plan.types import StructField, StructType, parse_data_type

if TYPE_CHECKING:
    from unbounded.session import SparkSession
    from unbounded.sql.dataframe import DataFrame

__all__ = ["run_command"]

_SET = re.compile(r"^\s*SET\s+(?P<key>[\w.]+)\s*(?:=\s*(?P<value>.*?))?\s*;?\s*$",
                  re.IGNORECASE | re.DOTALL)
_SET_TIME_ZONE = re.compile(
    r"^\s*SET\s+TIME\s+ZONE\s+(?:(?P<local>LOCAL)|'(?P<zone>[^']*)'|\"(?P<dq>[^\"]*)\"|"
    r"INTERVAL\s+'(?P<interval>[+-]?\d{1,2}(?::\d{2})?)'\s+HOUR(?:\s+TO\s+MINUTE)?)\s*;?\s*$",
    re.IGNORECASE)
_SHOW_TABLES = re.compile(r"^\s*TABLES(?:\s+(?:IN|FROM)\s+(`[^`]+`|\w+))?"
                          r"(?:\s+(?:LIKE\s+)?'([^']*)')?\s*$", re.IGNORECASE)


class _Command:
    """One command: ``translate`` turns a query inside it into a plan."""

    def __init__(self, session: SparkSession, sql: str) -> None:
        self.session = session
        self.sql = sql

    def translate(self, node: exp.Expr) -> LogicalPlan:
        from unbounded.sql.sql_parser import translate_node

        return translate_node(self.session, node, self.sql)

    def frame(self, plan: LogicalPlan) -> DataFrame:
        from unbounded.sql.dataframe import DataFrame

        return DataFrame(plan, self.session)

    def done(self) -> DataFrame:
        return self.frame(DataRelation(pa.table({})))

    def unsupported(self, what: str) -> AnalysisException:
        from unbounded.sql.sql_parser import unsupported_sql

        return unsupported_sql(what, self.sql)

    # ---- CREATE ----------------------------------------------------------------------------
    def create(self, node: exp.Create) -> DataFrame:
        kind = str(node.args.get("kind") or "").upper()
        if kind == "VIEW":
            return self.create_view(node)
        if kind == "TABLE":
            return self.create_table(node)
        if kind in ("DATABASE", "SCHEMA"):
            return self.create_database(node)
        raise self.unsupported(f"CREATE {kind}")

    def create_view(self, node: exp.Create) -> DataFrame:
        properties = _property_kinds(node)
        if exp.TemporaryProperty not in properties:
            raise self.unsupported("CREATE VIEW without TEMPORARY (persistent views)")
        name = _name(node.this)
        df = self.frame(self.translate(node.args["expression"]))
        catalog = self.session.catalog
        replace = bool(node.args.get("replace"))
        if exp.GlobalProperty in properties:
            catalog._create_global_temp_view(name, df, replace=replace)
        else:
            catalog._create_temp_view(name, df, replace=replace)
        return self.done()

    def create_table(self, node: exp.Create) -> DataFrame:
        target = node.this
        schema = target if isinstance(target, exp.Schema) else None
        name = _name(schema.this if schema is not None else target)
        catalog = self.session.catalog
        if catalog._table(name) is not None and not node.args.get("replace"):
            if node.args.get("exists"):
                return self.done()
            raise AnalysisException(
                f"[TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create table or view `{name}` because "
                "it already exists. Choose a different name, or drop it first.",
                error_class="TABLE_OR_VIEW_ALREADY_EXISTS")
        fmt, partitions = self.table_properties(node)
        query = node.args.get("expression")
        if query is not None:
            writer = self.frame(self.translate(query)).write.format(fmt).mode("overwrite")
            writer.partitionBy(*partitions).saveAsTable(name)
        elif schema is not None:
            self.create_empty_table(name, schema, fmt, partitions)
        else:
            raise self.unsupported("CREATE TABLE without columns or AS <query>")
        return self.done()

    def table_properties(self, node: exp.Create) -> tuple[str, list[str]]:
        fmt = str(self.session.conf.get("spark.sql.sources.default", "parquet"))
        partitions: list[str] = []
        props = node.args.get("properties")
        for prop in props.expressions if props is not None else []:
            if isinstance(prop, exp.FileFormatProperty):
                fmt = prop.name.lower()
            elif isinstance(prop, exp.PartitionedByProperty):
                partitions = [e.name for e in prop.this.expressions]
            else:
                raise self.unsupported(f"The table property {prop.sql(dialect='spark')}")
        return fmt, partitions

    def create_empty_table(self, name: str, schema: exp.Schema, fmt: str,
                           partitions: list[str]) -> None:
        from unbounded.files.writing import WRITE_FORMATS
        from unbounded.sql.catalog import TableMetadata

        if fmt not in WRITE_FORMATS:
            raise self.unsupported(f"USING {fmt}")
        fields = [StructField(c.name, parse_data_type(c.args["kind"].sql(dialect="spark")))
                  for c in schema.expressions]
        ordered = [f for f in fields if f.name not in partitions] + \
                  [f for f in fields if f.name in partitions]
        metadata = TableMetadata(fmt, StructType(ordered), tuple(partitions))
        self.session.catalog._create_table(name, metadata, replace=True)

    def create_database(self, node: exp.Create) -> DataFrame:
        catalog = self.session.catalog
        name = _name(node.this).lower()
        if catalog.databaseExists(name):
            if node.args.get("exists"):
                return self.done()
            raise AnalysisException(
                f"[SCHEMA_ALREADY_EXISTS] Cannot create schema `{name}` because it already "
                "exists.", error_class="SCHEMA_ALREADY_EXISTS")
        os.makedirs(catalog._database_location(name))
        return self.done()

    # ---- DROP, USE, INSERT, SHOW -------------------------------------------------------------
    def drop(self, node: exp.Drop) -> DataFrame:
        kind = str(node.args.get("kind") or "").upper()
        if kind not in ("TABLE", "VIEW"):
            raise self.unsupported(f"DROP {kind}")
        for table in node.args.get("tables") or []:
            name = _name(table)
            if not self.drop_one(name, kind) and not node.args.get("exists"):
                from unbounded.sql.catalog import table_not_found

                raise table_not_found(name)
        return self.done()

    def drop_one(self, name: str, kind: str) -> bool:
        """Drop a temporary view (DROP TABLE too, as Spark), or a table's folder."""
        catalog = self.session.catalog
        parts = name.split(".")
        if len(parts) == 2 and parts[0].lower() == catalog._global_db:
            return catalog.dropGlobalTempView(parts[1])
        if len(parts) == 1 and catalog.dropTempView(name):
            return True
        found = catalog._table(name) if kind == "TABLE" else None
        if found is None:
            return False
        shutil.rmtree(found[0])
        return True

    def use(self, node: exp.Use) -> DataFrame:
        self.session.catalog.setCurrentDatabase(_name(node.this))
        return self.done()

    def insert(self, node: exp.Insert) -> DataFrame:
        target = node.this
        if not isinstance(target, exp.Table) or node.args.get("partition"):
            raise self.unsupported("INSERT with a column list or PARTITION clause")
        df = self.frame(self.translate(node.args["expression"]))
        df.write.insertInto(_name(target), overwrite=bool(node.args.get("overwrite")))
        return self.done()

    def set(self) -> DataFrame:
        """``SET``: write (or read) one conf of the session; its key and value."""
        zone = _SET_TIME_ZONE.match(self.sql)
        setting = _SET.match(self.sql) if zone is None else None
        if zone is not None:
            key, value = "spark.sql.session.timeZone", _zone_of(zone)
        elif setting is not None and setting.group("key").upper() != "TIME":
            key, value = setting.group("key"), setting.group("value")
        else:
            raise self.unsupported(f"The statement {self.sql.strip()[:60]}")
        if value is not None:
            self.session.conf.set(key, value)
        shown = str(self.session.conf.get(key, "<undefined>"))
        return self.frame(DataRelation(pa.table(
            {"key": [key], "value": [shown]},
            schema=pa.schema([("key", pa.large_string()), ("value", pa.large_string())]))))

    def show(self, node: exp.Command) -> DataFrame:
        text = str(node.expression.this) if node.expression is not None else ""
        match = _SHOW_TABLES.match(text)
        if match is None:
            raise self.unsupported(f"SHOW {text.split()[0] if text.split() else ''}".strip())
        db, pattern = match.group(1), match.group(2)
        tables = self.session.catalog.listTables(db.strip("`") if db else None, pattern)
        rows = {"namespace": [".".join(t.namespace or []) for t in tables],
                "tableName": [t.name for t in tables],
                "isTemporary": [t.isTemporary for t in tables]}
        return self.frame(DataRelation(pa.table(rows, schema=pa.schema([
            ("namespace", pa.large_string()), ("tableName", pa.large_string()),
            ("isTemporary", pa.bool_())]))))


def _zone_of(match: re.Match[str]) -> str:
    """The zone ``SET TIME ZONE`` names: LOCAL is the machine's, an interval an offset."""
    from unbounded.config import local_zone_id

    if match.group("local"):
        return local_zone_id()
    interval = match.group("interval")
    if interval is None:
        return str(match.group("zone") if match.group("zone") is not None
                   else match.group("dq"))
    sign = "-" if interval.startswith("-") else "+"
    hours, _, minutes = interval.lstrip("+-").partition(":")
    return f"{sign}{int(hours):02d}:{minutes or '00'}"


def _property_kinds(node: exp.Create) -> set[type]:
    props = node.args.get("properties")
    return {type(p) for p in (props.expressions if props is not None else [])}


def _name(node: exp.Expr) -> str:
    """A table name with its database, quoted where a part needs it."""
    parts = [p.name for p in node.parts] if isinstance(node, exp.Table) else [node.name]
    return ".".join(p if re.fullmatch(r"\w+", p) else "`" + p.replace("`", "``") + "`"
                    for p in parts)


def run_command(session: SparkSession, node: exp.Expr, sql: str) -> DataFrame:
    """Run one non-query statement; its (usually empty) result."""
    command = _Command(session, sql)
    if isinstance(node, exp.Create):
        return command.create(node)
    if isinstance(node, exp.Drop):
        return command.drop(node)
    if isinstance(node, exp.Use):
        return command.use(node)
    if isinstance(node, exp.Insert):
        return command.insert(node)
    if isinstance(node, exp.Command) and str(node.this).upper() == "SHOW":
        return command.show(node)
    if isinstance(node, exp.Set) or (isinstance(node, exp.Command)
                                     and str(node.this).upper() == "SET"):
        return command.set()
    raise command.unsupported(f"The statement {node.sql(dialect='spark')[:60]}")
