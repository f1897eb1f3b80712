"""Spark's number format strings (``to_number``, ``to_char``): ``[MI|S] [$] [0|9|G|,]...
[.|D] [0|9]... [$] [PR|MI|S]``, as Spark's ``ToNumberParser`` reads and writes them.

A run of ``0``/``9`` digits before the point is kept as one digit group; a group that
starts with ``0`` needs exactly that many digits when parsing and is zero-padded when
formatting, a ``9`` group takes at most that many and is space-padded. A number too wide
for the format formats as ``#`` signs.

>>> fmt = NumberFormat("S$999,099.99")
>>> fmt.parse("-$12,345.67"), fmt.parse("$45"), fmt.precision, fmt.scale
(Decimal('-12345.67'), None, 8, 2)
>>> NumberFormat("99G999D9PR").format(Decimal("-12454.8")), NumberFormat("999").format(Decimal(5))
('<12,454.8>', '  5')
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from unbounded.errors import AnalysisException

__all__ = ["NumberFormat"]

# Tokens: ("digits", [(exact, count) | ","] in format order), ".", "$", "S", "MI", "<", ">".
Token = str | tuple[str, list[tuple[bool, int] | str]]
_ORDER = [{"<"}, {"MI", "S"}, {"$"}, {"digits"}, {"."}, {"digits"}, {"$"}, {"MI", "S", ">"}]


def _kind(token: Token) -> str:
    return token[0] if isinstance(token, tuple) else token


@dataclass
class NumberFormat:
    """One format string, checked once; ``parse`` and ``format`` convert values."""

    text: str

    def __post_init__(self) -> None:
        self.tokens = _tokenize(self.text)
        self._check()
        digits = [self._width(t) for t in self.tokens]
        point = self.tokens.index(".") if "." in self.tokens else len(self.tokens)
        self.precision = sum(digits)
        self.scale = sum(digits[point:])

    @staticmethod
    def _width(token: Token) -> int:
        if not isinstance(token, tuple):
            return 0
        return sum(g[1] for g in token[1] if isinstance(g, tuple))

    def _check(self) -> None:
        position = 0
        for allowed in _ORDER:
            if position < len(self.tokens) and _kind(self.tokens[position]) in allowed:
                position += 1
        if not self.text or not any(_kind(t) == "digits" for t in self.tokens):
            raise self._invalid("WRONG_NUM_DIGIT", "The format string requires at least one "
                                "number digit.")
        if position < len(self.tokens):
            found = self.tokens[position]
            shown = f"character '{str(found)[1:].upper()}''" if _kind(found).startswith("?") else \
                ("digit sequence" if _kind(found) == "digits" else _kind(found))
            raise self._invalid("UNEXPECTED_TOKEN", f"Found the unexpected {shown} in the "
                                "format string; the structure of the format string must match: "
                                "`[MI|S]` `[$]` `[0|9|G|,]*` `[.|D]` `[0|9]*` `[$]` `[PR|MI|S]`.")

    def _invalid(self, sub: str, why: str) -> AnalysisException:
        return AnalysisException(
            f"[INVALID_FORMAT.{sub}] The format is invalid: '{self.text.upper()}'. {why} "
            "SQLSTATE: 42601", error_class="INVALID_FORMAT")

    # ---- parsing: to_number -------------------------------------------------------------
    def parse(self, text: str) -> Decimal | None:
        """The decimal ``text`` spells in this format, or None when it does not match."""
        state = _ParseState(text)
        for token in self.tokens:
            if not state.take(token):
                return None
        if state.index < len(text) or state.opened != state.closed:
            return None
        if not state.before and not state.after:
            return None
        after = state.after.ljust(self.scale, "0")
        number = ("-" if state.negative else "") + (state.before or "0") + \
            ("." + after if after else "")
        return Decimal(number)

    # ---- formatting: to_char --------------------------------------------------------------
    def format(self, value: Decimal) -> str:
        """``value`` written in this format (Spark's ``ToNumberParser.format``)."""
        before, after = self._split(value)
        out: list[str] = []
        state = {"before": 0, "after": 0, "point": False}
        negative = value < 0
        for token in self.tokens:
            if isinstance(token, tuple):
                _format_groups(token[1], before, after, state, out)
            elif token == ".":
                if out and out[-1] == " ":
                    out[-1] = "0"
                out.append(".")
                state["point"] = True
            elif token == "$":
                out.append("$")
            else:
                _format_sign(token, negative, out)
        _strip_lone_point(out)
        text = "".join(out)
        return "0" if text in ("", "+", "-") else text

    def _split(self, value: Decimal) -> tuple[str, str]:
        plain = f"{value:f}"
        head, _, tail = plain.partition(".")
        head = head.lstrip("-0")
        tail = tail.rstrip("0")
        point = self.tokens.index(".") if "." in self.tokens else len(self.tokens)
        width_before = sum(self._width(t) for t in self.tokens[:point])
        width_after = self.precision - width_before
        if width_before < len(head) or width_after < len(tail):
            head, tail = "#" * width_before, "#" * width_after
        return head.rjust(width_before), tail.ljust(width_after, "0")


def _tokenize(text: str) -> list[Token]:
    raw: list[Token | tuple[bool, int]] = []
    upper, i, point = text.upper(), 0, False
    while i < len(upper):
        ch = upper[i]
        if ch in "09":
            j = i
            while j < len(upper) and upper[j] in "09":
                j += 1
            raw.append((ch == "0" and not point, j - i))
            i = j
            continue
        two = upper[i:i + 2]
        if two in ("MI", "PR"):
            if two == "PR":
                raw.insert(0, "<")
                raw.append(">")
            else:
                raw.append("MI")
            i += 2
            continue
        mapped = {".": ".", "D": ".", ",": ",", "G": ",", "$": "$", "S": "S"}.get(ch)
        point = point or mapped == "."
        raw.append(mapped if mapped is not None else "?" + text[i])
        i += 1
    return _group(raw)


def _group(raw: list[Token | tuple[bool, int]]) -> list[Token]:
    """Consecutive digit runs and separators become one ``digits`` token."""
    tokens: list[Token] = []
    for item in raw:
        part = item if isinstance(item, tuple) and isinstance(item[0], bool) else \
            ("," if item == "," else None)
        if part is None:
            tokens.append(item)  # type: ignore[arg-type]
        elif tokens and isinstance(tokens[-1], tuple) and tokens[-1][0] == "digits":
            tokens[-1][1].append(part)  # type: ignore[arg-type]
        else:
            tokens.append(("digits", [part]))  # type: ignore[list-item]
    return tokens


class _ParseState:
    """Where parsing stands in one input string."""

    def __init__(self, text: str) -> None:
        self.text, self.index = text, 0
        self.before, self.after = "", ""
        self.point = self.negative = self.opened = self.closed = False

    def peek(self) -> str | None:
        return self.text[self.index] if self.index < len(self.text) else None

    def take(self, token: Token) -> bool:
        ch = self.peek()
        if isinstance(token, tuple):
            return self._digits(token[1])
        if token == ".":
            if ch == ".":
                self.point, self.index = True, self.index + 1
        elif token == "$":
            if ch is not None and ch != "$":
                return False
            self.index += ch is not None
        elif token in ("S", "MI"):
            if ch == "-" or (ch == "+" and token == "S"):
                self.negative ^= ch == "-"
                self.index += 1
        elif token == "<" and ch == "<":
            self.opened, self.index = True, self.index + 1
        elif token == ">" and ch == ">":
            if not self.opened:
                return False
            self.closed, self.negative, self.index = True, not self.negative, self.index + 1
        return True

    def _digits(self, parts: list[tuple[bool, int] | str]) -> bool:
        sizes, count = [], 0
        while self.index < len(self.text):
            ch = self.text[self.index]
            if ch.isspace():
                pass
            elif ch.isdigit():
                count += 1
                if self.point:
                    self.after += ch
                else:
                    self.before += ch
            elif ch == ",":
                sizes.append(count)
                count = 0
            else:
                break
            self.index += 1
        sizes.append(count)
        expected = [p for p in parts if isinstance(p, tuple)]
        if len(sizes) > len(expected):
            return False
        sizes = [0] * (len(expected) - len(sizes)) + sizes  # leading groups may be absent
        return all(n == got if exact else got <= n
                   for (exact, n), got in zip(expected, sizes, strict=True))


def _format_groups(parts: list[tuple[bool, int] | str], before: str, after: str,
                   state: dict[str, int | bool], out: list[str]) -> None:
    for part in parts:
        if part == ",":
            if out and out[-1].isdigit():
                out.append(",")
            else:
                _append_space(out)
            continue
        assert isinstance(part, tuple)
        exact, count = part
        for _ in range(count):
            if state["point"]:
                out.append(after[int(state["after"])])
                state["after"] = int(state["after"]) + 1
                continue
            ch = before[int(state["before"])]
            state["before"] = int(state["before"]) + 1
            if ch == " " and exact:
                out.append("0")
            elif ch == " ":
                _append_space(out)
            else:
                out.append(ch)


def _format_sign(token: str, negative: bool, out: list[str]) -> None:
    if token == "S":
        _strip_lone_point(out)
        _append_moving_left(out, "-" if negative else "+")
    elif token == "MI":
        if negative:
            _strip_lone_point(out)
            _append_moving_left(out, "-")
        else:
            out.append(" ")
    elif token == "<":
        if negative:
            out.append("<")
    elif token == ">":
        _strip_lone_point(out)
        if negative:
            _append_moving_left(out, ">")
        else:
            out.extend("  ")


def _append_moving_left(out: list[str], ch: str) -> None:
    """Append ``ch``, moving it left past trailing spaces."""
    out.append(ch)
    i = len(out) - 1
    while i >= 1 and out[i - 1] == " " and out[i] == ch:
        out[i], out[i - 1] = " ", ch
        i -= 1


def _append_space(out: list[str]) -> None:
    """Append a space, moving it left past a sign or an opening bracket."""
    out.append(" ")
    i = len(out) - 1
    while i >= 1 and out[i - 1] in "+-<" and out[i] == " ":
        out[i], out[i - 1] = out[i - 1], " "
        i -= 1


def _strip_lone_point(out: list[str]) -> None:
    if "." in out:
        i = out.index(".")
        if i == len(out) - 1 or out[i + 1] == " ":
            out[i] = " "
