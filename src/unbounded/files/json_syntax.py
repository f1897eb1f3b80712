"""JSON text as Spark's Jackson parser reads it, with the reader's syntax options.

Spark's JSON reader and ``from_json`` accept more than strict JSON, each extension behind
an option: ``allowSingleQuotes`` (on by default: ``{'a': 'x'}``), ``allowNonNumericNumbers``
(on: ``NaN``, ``Infinity``, ``-Infinity``), ``allowUnquotedFieldNames`` (``{a: 1}``),
``allowNumericLeadingZeros`` (``007``), ``allowBackslashEscapingAnyCharacter`` (``\\y``),
``allowUnquotedControlChars`` (a raw tab inside a string) and ``allowComments``
(``/* ... */`` and ``// ...``). Strict text goes through
:func:`json.loads`; only text it rejects is read by the small parser here.

Example:
    >>> loads("{'a': 007, b: NaN}", JsonSyntax(unquoted_field_names=True,
    ...                                        numeric_leading_zeros=True))
    {'a': 7, 'b': nan}
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["JsonSyntax", "loads"]

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_STRICT_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t", "'": "'"}
_CONSTANTS = {"NaN": math.nan, "Infinity": math.inf, "+Infinity": math.inf,
              "-Infinity": -math.inf}


@dataclass(frozen=True)
class JsonSyntax:
    """Which of Jackson's extensions to strict JSON are on (Spark's defaults)."""

    single_quotes: bool = True
    non_numeric_numbers: bool = True
    unquoted_field_names: bool = False
    numeric_leading_zeros: bool = False
    backslash_escaping_any_character: bool = False
    unquoted_control_chars: bool = False
    comments: bool = False


def loads(text: str, syntax: JsonSyntax) -> Any:
    """The value of the first JSON document in ``text``: Spark's parser reads no further,
    so what follows it is ignored (``{"a": 1} x`` is ``{"a": 1}``); ``ValueError`` when
    it does not read."""
    decoder = json.JSONDecoder(parse_constant=_constant(syntax),
                               strict=not syntax.unquoted_control_chars)
    try:
        return decoder.raw_decode(text, len(text) - len(text.lstrip(" \t\n\r")))[0]
    except ValueError:
        if not (syntax.single_quotes or syntax.unquoted_field_names or syntax.comments
                or syntax.numeric_leading_zeros or syntax.backslash_escaping_any_character):
            raise
    return _Reader(text, syntax).value()


def _constant(syntax: JsonSyntax) -> Any:
    def read(name: str) -> float:
        if not syntax.non_numeric_numbers:
            raise ValueError(f"non-numeric number {name}")
        return _CONSTANTS[name]
    return read


class _Reader:
    """A recursive-descent reader of one document with the extensions of ``syntax``."""

    def __init__(self, text: str, syntax: JsonSyntax) -> None:
        self.text, self.pos, self.syntax = text, 0, syntax

    def fail(self, what: str) -> ValueError:
        return ValueError(f"{what} at character {self.pos}")

    def skip(self) -> str:
        """The next significant character, past whitespace (and comments, when on)."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
                self.pos += 1
            if not (self.syntax.comments and self.text.startswith(("/*", "//"), self.pos)):
                return self.text[self.pos] if self.pos < len(self.text) else ""
            self.skip_comment()

    def skip_comment(self) -> None:
        block = self.text.startswith("/*", self.pos)
        end = self.text.find("*/" if block else "\n", self.pos + 2)
        if end < 0 and block:
            raise self.fail("unterminated comment")
        self.pos = len(self.text) if end < 0 else end + (2 if block else 1)

    def value(self) -> Any:
        ch = self.skip()
        if ch == "{":
            return self.members()
        if ch == "[":
            return self.elements()
        if ch == '"' or (ch == "'" and self.syntax.single_quotes):
            return self.string()
        return self.scalar()

    def members(self) -> dict[str, Any]:
        self.pos += 1
        found: dict[str, Any] = {}
        if self.skip() == "}":
            self.pos += 1
            return found
        while True:
            key = self.key()
            if self.skip() != ":":
                raise self.fail("expected ':'")
            self.pos += 1
            found[key] = self.value()
            if self.separator("}"):
                return found

    def elements(self) -> list[Any]:
        self.pos += 1
        found: list[Any] = []
        if self.skip() == "]":
            self.pos += 1
            return found
        while True:
            found.append(self.value())
            if self.separator("]"):
                return found

    def separator(self, closing: str) -> bool:
        ch = self.skip()
        self.pos += 1
        if ch == closing:
            return True
        if ch != ",":
            raise self.fail(f"expected ',' or {closing!r}")
        return False

    def key(self) -> str:
        ch = self.skip()
        if ch == '"' or (ch == "'" and self.syntax.single_quotes):
            return self.string()
        name = _NAME.match(self.text, self.pos)
        if name is None or not self.syntax.unquoted_field_names:
            raise self.fail("expected a field name")
        self.pos = name.end()
        return name.group()

    def string(self) -> str:
        quote, out = self.text[self.pos], list[str]()
        self.pos += 1
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            self.pos += 1
            if ch == quote:
                return "".join(out)
            if ch == "\\":
                out.append(self.escape())
            elif ord(ch) < 32 and not self.syntax.unquoted_control_chars:
                raise self.fail("control character in a string")
            else:
                out.append(ch)
        raise self.fail("unterminated string")

    def escape(self) -> str:
        ch = self.text[self.pos : self.pos + 1]
        self.pos += 1
        if ch == "u":
            code = self.text[self.pos : self.pos + 4]
            self.pos += 4
            if not re.fullmatch(r"[0-9a-fA-F]{4}", code):
                raise self.fail("bad unicode escape")
            return chr(int(code, 16))
        if ch in _ESCAPES and (ch != "'" or self.syntax.single_quotes):
            return _ESCAPES[ch]
        if ch and self.syntax.backslash_escaping_any_character:
            return ch
        raise self.fail("bad escape")

    def scalar(self) -> Any:
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return value
        for word, number in _CONSTANTS.items():
            if self.text.startswith(word, self.pos) and self.syntax.non_numeric_numbers:
                self.pos += len(word)
                return number
        return self.number()

    def number(self) -> int | float:
        pattern = _NUMBER if self.syntax.numeric_leading_zeros else _STRICT_NUMBER
        found = pattern.match(self.text, self.pos)
        if found is None:
            raise self.fail("expected a value")
        self.pos = found.end()
        text = found.group()
        return float(text) if any(c in text for c in ".eE") else int(text)
