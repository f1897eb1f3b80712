"""Files as the file source and the file sink share them: paths and URIs (``paths``),
the sink's ``_spark_metadata`` manifest (``manifest``), which files a path names
(``listing``) and reading csv, JSON, parquet and text (``formats``)."""

__all__: list[str] = []
