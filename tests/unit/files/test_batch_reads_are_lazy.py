"""A batch DataFrame over files reads them when an action runs, not while it is built:
eager analysis resolves every new DataFrame's schema, and reading the files for that made
each transformation cost a full read of the input."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from unbounded.files import formats
from unbounded.sql import functions as F


def test_building_a_dataframe_reads_no_file_and_an_action_reads_once(spark, tmp_path,
                                                                     monkeypatch):
    for i in range(3):
        pq.write_table(pa.table({"k": [i, i + 10], "v": [1.0, 2.0]}),
                       str(tmp_path / f"part-{i}.parquet"))
    reads: list[list[str]] = []
    original = formats.read_files

    def counted(fmt, paths, schema, options):
        reads.append(list(paths))
        return original(fmt, paths, schema, options)

    monkeypatch.setattr(formats, "read_files", counted)
    df = (spark.read.parquet(str(tmp_path)).withColumn("w", F.col("v") * 2)
          .filter(F.col("k") > 0).groupBy("k").agg(F.sum("w").alias("s")))
    assert df.columns == ["k", "s"]
    assert reads == []
    assert sorted(tuple(r) for r in df.collect()) == [
        (1, 2.0), (2, 2.0), (10, 4.0), (11, 4.0), (12, 4.0)]
    assert len(reads) == 1
