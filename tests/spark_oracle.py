"""What the opt-in PySpark oracle tests share: the opt-in guard (they start a JVM) and the
warnings PySpark's own code raises under pytest's ``filterwarnings = error``."""

from __future__ import annotations

import os

import pytest

__all__ = ["ORACLE_MARKS", "require_oracle"]

ORACLE_MARKS = [pytest.mark.filterwarnings("ignore::FutureWarning"),
                pytest.mark.filterwarnings("ignore::ResourceWarning"),
                pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def require_oracle() -> None:
    """Skip the calling module unless UNBOUNDED_SPARK_ORACLE=1 and pyspark is installed."""
    if os.environ.get("UNBOUNDED_SPARK_ORACLE") != "1":
        pytest.skip("Spark oracle tests are opt-in: set UNBOUNDED_SPARK_ORACLE=1 (needs "
                    "pyspark and Java 17+)", allow_module_level=True)
    pytest.importorskip("pyspark", reason="UNBOUNDED_SPARK_ORACLE=1 but pyspark is not "
                                          "installed: pip install -e '.[oracle]'")
