"""``spark.read``: batch reads of the file formats, honouring file-sink manifests."""

from __future__ import annotations

import glob
import os
from typing import TYPE_CHECKING, Any

from unbounded.errors import AnalysisException
from unbounded.plan.logical import FileRelation
from unbounded.sql.types import StructType, parse_ddl_schema

if TYPE_CHECKING:
    from unbounded.session import SparkSession
    from unbounded.sql.dataframe import DataFrame

__all__ = ["DataFrameReader", "list_data_files"]

_FORMATS = ("csv", "json", "parquet", "text")


def list_data_files(path: str, *, ignore_missing: bool = False) -> list[str]:
    """The data files under ``path``: the manifest's files when a file sink wrote it
    (a listed file that is gone fails unless ``ignore_missing``, as in Spark),
    otherwise every visible file (names starting with ``_`` or ``.`` are skipped)."""
    from unbounded.files.manifest import FileSinkManifest

    local = path.removeprefix("file://")
    if os.path.isdir(os.path.join(local, "_spark_metadata")):
        return FileSinkManifest(local).existing_files(ignore_missing=ignore_missing)
    if os.path.isfile(local):
        return [local]
    matches = glob.glob(local) if glob.has_magic(local) else [local]
    files: list[str] = []
    for match in matches:
        if os.path.isfile(match):
            files.append(match)
            continue
        for root, dirs, names in os.walk(match):
            dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
            files.extend(os.path.join(root, n) for n in sorted(names)
                         if not n.startswith(("_", ".")))
    return files


class DataFrameReader:
    def __init__(self, session: SparkSession) -> None:
        self._session = session
        self._format = "parquet"
        self._options: dict[str, str] = {}
        self._schema: StructType | None = None

    def format(self, source: str) -> DataFrameReader:
        self._format = source.lower()
        return self

    def option(self, key: str, value: Any) -> DataFrameReader:
        self._options[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return self

    def options(self, **options: Any) -> DataFrameReader:
        for k, v in options.items():
            self.option(k, v)
        return self

    def schema(self, schema: StructType | str) -> DataFrameReader:
        self._schema = parse_ddl_schema(schema) if isinstance(schema, str) else schema
        return self

    def load(self, path: str | list[str] | None = None, format: str | None = None,
             schema: StructType | str | None = None, **options: Any) -> DataFrame:
        from unbounded.files.formats import infer_schema
        from unbounded.sql.dataframe import DataFrame

        if format is not None:
            self.format(format)
        if schema is not None:
            self.schema(schema)
        self.options(**options)
        if self._format not in _FORMATS:
            raise AnalysisException(
                f"[DATA_SOURCE_NOT_FOUND] Failed to find the data source {self._format!r}; "
                f"batch reads support {', '.join(_FORMATS)}.")
        raw = path if path is not None else self._options.get("path")
        if raw is None:
            raise AnalysisException("A path is required: spark.read.format(...).load(path).")
        paths = [raw] if isinstance(raw, str) else list(raw)
        files = self._files(paths, ignore_missing=self._ignore_missing_files())
        resolved = self._schema or infer_schema(self._format, files, dict(self._options),
                                                streaming=False)
        relation = FileRelation(self._format, tuple(files), resolved,
                                tuple(self._options.items()), tuple(paths))
        return DataFrame(relation, self._session)

    def _ignore_missing_files(self) -> bool:
        """The option ``ignoreMissingFiles``, else spark.sql.files.ignoreMissingFiles."""
        conf = self._session.conf.get("spark.sql.files.ignoreMissingFiles", "false")
        option = [v for k, v in self._options.items() if k.lower() == "ignoremissingfiles"]
        return str(option[-1] if option else conf).lower() == "true"

    @staticmethod
    def _files(paths: list[str], *, ignore_missing: bool) -> list[str]:
        files: list[str] = []
        for p in paths:
            local = p.removeprefix("file://")
            if not glob.has_magic(local) and not os.path.exists(local):
                raise AnalysisException(f"[PATH_NOT_FOUND] Path does not exist: file:{local}.",
                                        error_class="PATH_NOT_FOUND")
            files.extend(list_data_files(local, ignore_missing=ignore_missing))
        return files

    def csv(self, path: str | list[str], schema: StructType | str | None = None,
            **options: Any) -> DataFrame:
        return self.load(path, "csv", schema, **options)

    def json(self, path: str | list[str], schema: StructType | str | None = None,
             **options: Any) -> DataFrame:
        return self.load(path, "json", schema, **options)

    def parquet(self, *paths: str, **options: Any) -> DataFrame:
        return self.load(list(paths), "parquet", None, **options)

    def text(self, path: str | list[str], **options: Any) -> DataFrame:
        return self.load(path, "text", None, **options)
