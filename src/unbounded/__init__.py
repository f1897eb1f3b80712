"""unbounded: fault-tolerant structured streaming for Python, with PySpark's API."""

from unbounded.errors import (
    AnalysisException,
    StreamingQueryException,
    UnboundedError,
)

__all__ = ["AnalysisException", "StreamingQueryException", "UnboundedError", "__version__"]

__version__ = "0.1.0"
