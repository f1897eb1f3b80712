"""What a ``transformWithState(InPandas)`` operator declared, recorded for the state readers.

Spark keeps this in its operator metadata (``state/<op>/_metadata/v2``): the time mode, the
output mode and each state variable's name, type and whether it has a TTL; the
``statestore`` reader needs it to know what ``stateVarName`` names and whether timers can
exist, and ``state-metadata`` shows it as ``operatorProperties``. Our operator keeps one
store per variable (``var-<name>``, or ``varx-<hex of name>`` when the name is not
path-safe) plus ``timers``; a checkpoint written before this file existed is read by
inferring the variables from those stores (:func:`infer_operator_info`).

Format of ``<state>/<operator>/_metadata/transform-with-state`` (JSON; version 1, a reader
rejects any other), rewritten when a start declares something else::

    {"version": 1, "operatorName": "transformWithStateInPandasExec",
     "timeMode": "ProcessingTime", "outputMode": "Update",
     "stateVariables": [{"stateName": "count", "stateVariableType": "ValueState",
                         "ttlEnabled": false}]}
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from unbounded.checkpoint.checksum import read_checked_json, remove_checked, write_checked
from unbounded.checkpoint.storage import storage_for
from unbounded.errors import CheckpointCorruptError

__all__ = [
    "TIMERS_STORE",
    "OperatorInfo",
    "StateVariableInfo",
    "TransformWithStateFile",
    "VariableType",
    "store_folder",
    "variable_name",
]

TIMERS_STORE = "timers"
_TIMER_VARIABLES = {"ProcessingTime": "$procTimers_keyToTimestamp",
                    "EventTime": "$eventTimers_keyToTimestamp"}


class VariableType(Enum):
    """Spark's ``stateVariableType`` names."""

    VALUE = "ValueState"
    LIST = "ListState"
    MAP = "MapState"


def store_folder(name: str) -> str:
    """A state variable's store folder, as the operator names it: its name when
    path-safe, else its UTF-8 hex.

    >>> store_folder("count"), store_folder("a b")
    ('var-count', 'varx-612062')
    """
    safe = re.fullmatch(r"[A-Za-z0-9_\-]+", name) is not None
    return f"var-{name}" if safe else f"varx-{name.encode().hex()}"


def variable_name(folder: str) -> str | None:
    """The variable a store folder holds (None: not a variable's store)."""
    if folder.startswith("var-"):
        return folder.removeprefix("var-")
    if folder.startswith("varx-"):
        return bytes.fromhex(folder.removeprefix("varx-")).decode()
    return None


@dataclass(frozen=True)
class StateVariableInfo:
    """One declared state variable."""

    name: str
    type: VariableType
    ttl_enabled: bool

    @property
    def store(self) -> str:
        return store_folder(self.name)

    def to_json(self) -> dict[str, Any]:
        return {"stateName": self.name, "stateVariableType": self.type.value,
                "ttlEnabled": self.ttl_enabled}


@dataclass(frozen=True)
class OperatorInfo:
    """A transformWithState operator's declarations: Spark's ``operatorProperties``.

    ``time_mode`` is ``"None"``, ``"ProcessingTime"`` or ``"EventTime"`` (None here:
    unknown, for a checkpoint written before the operator recorded it).
    """

    operator_name: str
    time_mode: str | None
    output_mode: str | None
    variables: tuple[StateVariableInfo, ...]

    @classmethod
    def of(cls, operator_name: str, time_mode: str, output_mode: str,
           variables: Iterable[tuple[str, str, bool]]) -> OperatorInfo:
        """From the operator's own terms: ``(name, "value"|"list"|"map", has_ttl)``."""
        kinds = {"value": VariableType.VALUE, "list": VariableType.LIST,
                 "map": VariableType.MAP}
        return cls(operator_name, time_mode, output_mode.capitalize(), tuple(
            StateVariableInfo(n, kinds[k], ttl) for n, k, ttl in variables))

    def variable(self, name: str) -> StateVariableInfo | None:
        return next((v for v in self.variables if v.name == name), None)

    def properties(self) -> str | None:
        """Spark's ``operatorProperties`` JSON (None when the modes are unknown)."""
        if self.time_mode is None:
            return None
        variables = [v.to_json() for v in self.variables]
        if self.time_mode in _TIMER_VARIABLES:
            variables.append({"stateName": _TIMER_VARIABLES[self.time_mode],
                              "stateVariableType": "TimerState", "ttlEnabled": False})
        return json.dumps({"timeMode": self.time_mode, "outputMode": self.output_mode,
                           "stateVariables": variables}, separators=(",", ":"))


class TransformWithStateFile:
    """``<state_root>/<operator>/_metadata/transform-with-state`` (module docstring)."""

    VERSION = 1

    def __init__(self, state_root: str, operator_id: int) -> None:
        self.path = os.path.join(state_root, str(operator_id), "_metadata",
                                 "transform-with-state")

    def write(self, info: OperatorInfo) -> None:
        """Record ``info``; a start that declares the same keeps the file untouched."""
        if storage_for(self.path).exists(self.path) and self.read() == info:
            return
        doc = {"version": self.VERSION, "operatorName": info.operator_name,
               "timeMode": info.time_mode, "outputMode": info.output_mode,
               "stateVariables": [v.to_json() for v in info.variables]}
        if storage_for(self.path).exists(self.path):
            # checked files are written once: remove, then write; a crash between the two
            # reads as a checkpoint from before the file existed
            remove_checked(self.path)
        write_checked(self.path, json.dumps(doc, indent=1).encode())

    def read(self) -> OperatorInfo | None:
        """The recorded declarations, or None for a checkpoint written before this file."""
        if not storage_for(self.path).exists(self.path):
            return None
        doc = self._document()
        try:
            return OperatorInfo(str(doc["operatorName"]), str(doc["timeMode"]),
                                str(doc["outputMode"]), tuple(
                StateVariableInfo(str(v["stateName"]), VariableType(v["stateVariableType"]),
                                  bool(v["ttlEnabled"])) for v in doc["stateVariables"]))
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointCorruptError(f"{self.path} is missing a field: {e}") from e

    def _document(self) -> dict[str, Any]:
        doc: dict[str, Any] = read_checked_json(self.path)
        version = doc.get("version") if isinstance(doc, dict) else None
        if version != self.VERSION:
            raise CheckpointCorruptError(
                f"{self.path} has format version {version!r}; this version of unbounded "
                f"reads version {self.VERSION}. Use the unbounded release that wrote the "
                "checkpoint.")
        return doc
