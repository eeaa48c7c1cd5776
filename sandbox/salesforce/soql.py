"""A SOQL subset: tokenizer and recursive-descent parser producing an AST (no knowledge of the org).

Grammar (keywords case-insensitive)::

    query      := SELECT select FROM ident [WHERE or_expr] [ORDER BY order (, order)*] [LIMIT int] [OFFSET int]
    select     := COUNT ( ) | path (, path)*
    or_expr    := and_expr (OR and_expr)*
    and_expr   := not_expr (AND not_expr)*
    not_expr   := NOT not_expr | ( or_expr ) | comparison
    comparison := path op value | path [NOT] IN ( value (, value)* ) | path LIKE string
    value      := string | number | TRUE | FALSE | NULL | date | datetime | DATE_LITERAL[:n]
    order      := path [ASC|DESC] [NULLS FIRST|LAST]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

LiteralKind = Literal["string", "number", "boolean", "null", "date", "datetime", "date_range"]


class SoqlError(Exception):
    """A query Salesforce would refuse; ``code`` is its errorCode (MALFORMED_QUERY, INVALID_FIELD, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Path:
    """A field reference, e.g. ``("Owner", "Email")`` for ``Owner.Email``."""

    parts: tuple[str, ...]

    def __str__(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Value:
    """A literal. Strings carry ``like``: the LIKE pattern with ``\\`` escaping literal ``%``, ``_`` and ``\\``."""

    kind: LiteralKind
    value: str | float | bool | date | datetime | None
    like: str = ""
    range_days: int = 0  # date_range: LAST_N_DAYS:n -> n; TODAY -> 0; YESTERDAY -> 1 (ending yesterday)
    range_name: str = ""


@dataclass(frozen=True)
class Comparison:
    path: Path
    op: str  # = != < <= > >= LIKE IN NOT IN
    values: tuple[Value, ...]


@dataclass(frozen=True)
class And:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Comparison | And | Or | Not


@dataclass(frozen=True)
class OrderItem:
    path: Path
    descending: bool = False
    nulls_last: bool | None = None  # None: Salesforce's default (first when ascending, last when descending)


@dataclass(frozen=True)
class Query:
    sobject: str
    fields: tuple[Path, ...]  # empty for COUNT()
    count: bool = False
    where: Condition | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None


@dataclass(frozen=True)
class Token:
    kind: str  # ident, string, number, date, datetime, op, punct, eof
    text: str
    pos: int
    value: str = ""  # strings: the unescaped value
    like: str = ""  # strings: the LIKE pattern


_KEYWORDS = frozenset(
    {
        "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC", "DESC", "NULLS",
        "FIRST", "LAST", "LIMIT", "OFFSET", "TRUE", "FALSE", "NULL",
    }
)  # fmt: skip
_UNSUPPORTED = frozenset(["GROUP", "HAVING", "WITH", "FOR", "USING", "TYPEOF", "INCLUDES", "EXCLUDES"])
_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2})")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}(?![\dT])")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?![\w.])")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_OPS = ("!=", "<>", "<=", ">=", "=", "<", ">")
_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
_DATE_RANGES = {"TODAY": 0, "YESTERDAY": 1, "LAST_N_DAYS": -1, "N_DAYS_AGO": -1}


def _read_string(text: str, start: int) -> tuple[Token, int]:
    """A quoted string from ``start`` (the opening quote); returns the token and the index after it."""
    value: list[str] = []
    like: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "'":
            return Token("string", text[start : i + 1], start, "".join(value), "".join(like)), i + 1
        if ch == "\\":
            if i + 1 >= len(text):
                break
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                plain = _ESCAPES[nxt]
                value.append(plain)
                like.append("\\\\" if plain == "\\" else plain)
                i += 2
            elif nxt in "%_":
                value.append(nxt)
                like.append("\\" + nxt)
                i += 2
            elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2 : i + 6]):
                plain = chr(int(text[i + 2 : i + 6], 16))
                value.append(plain)
                like.append(plain)
                i += 6
            else:
                literal = text[start : i + 2]
                raise SoqlError("MALFORMED_QUERY", f"Invalid string literal '{literal}'. Illegal escape sequence")
            continue
        value.append(ch)
        like.append(ch)
        i += 1
    raise SoqlError("MALFORMED_QUERY", f"unterminated string literal starting at position {start}")


def tokenize(text: str) -> list[Token]:
    """The tokens of a SOQL statement, ending with an ``eof`` token."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "'":
            token, i = _read_string(text, i)
            tokens.append(token)
            continue
        for kind, pattern in (("datetime", _DATETIME_RE), ("date", _DATE_RE), ("number", _NUMBER_RE)):
            m = pattern.match(text, i)
            if m:
                tokens.append(Token(kind, m.group(), i))
                i = m.end()
                break
        else:
            m = _IDENT_RE.match(text, i)
            if m:
                tokens.append(Token("ident", m.group(), i))
                i = m.end()
                continue
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is not None:
                tokens.append(Token("op", op, i))
                i += len(op)
            elif ch in "(),:":
                tokens.append(Token("punct", ch, i))
                i += 1
            else:
                raise SoqlError("MALFORMED_QUERY", f"unexpected character '{ch}' at position {i}")
    tokens.append(Token("eof", "", len(text)))
    return tokens


def parse_datetime(text: str) -> datetime:
    """A SOQL datetime literal (``2026-01-05T12:00:00Z``, ``...00.000+02:00``) as an aware UTC datetime."""
    normalized = text.replace("Z", "+00:00")
    if re.search(r"[+-]\d{4}$", normalized):
        normalized = normalized[:-2] + ":" + normalized[-2:]
    return datetime.fromisoformat(normalized).astimezone(UTC)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _unexpected(self) -> SoqlError:
        tok = self.tok
        if tok.kind == "eof":
            return SoqlError("MALFORMED_QUERY", "unexpected end of query")
        return SoqlError("MALFORMED_QUERY", f"unexpected token: '{tok.text}'")

    def _is_kw(self, *words: str) -> bool:
        return self.tok.kind == "ident" and self.tok.text.upper() in words

    def _accept_kw(self, word: str) -> bool:
        if self._is_kw(word):
            self.i += 1
            return True
        return False

    def _expect_kw(self, word: str) -> None:
        if not self._accept_kw(word):
            raise self._unexpected()

    def _accept_punct(self, ch: str) -> bool:
        if self.tok.kind == "punct" and self.tok.text == ch:
            self.i += 1
            return True
        return False

    def _expect_punct(self, ch: str) -> None:
        if not self._accept_punct(ch):
            raise self._unexpected()

    def _path(self) -> Path:
        tok = self.tok
        if tok.kind != "ident" or tok.text.upper() in _KEYWORDS or tok.text.upper() in _UNSUPPORTED:
            raise self._unexpected()
        self.i += 1
        return Path(tuple(tok.text.split(".")))

    def _int(self) -> int:
        tok = self.tok
        if tok.kind != "number" or not tok.text.isdigit():
            raise self._unexpected()
        self.i += 1
        return int(tok.text)

    def query(self) -> Query:
        self._expect_kw("SELECT")
        fields: list[Path] = []
        count = False
        if self._is_kw("COUNT") and self.tokens[self.i + 1].text == "(":
            self.i += 2
            self._expect_punct(")")
            count = True
        else:
            fields.append(self._path())
            while self._accept_punct(","):
                fields.append(self._path())
        self._expect_kw("FROM")
        sobject = self._path()
        if len(sobject.parts) != 1:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{sobject}'")
        where = None
        if self._accept_kw("WHERE"):
            where = self._or()
        order: list[OrderItem] = []
        if self._accept_kw("ORDER"):
            self._expect_kw("BY")
            order.append(self._order_item())
            while self._accept_punct(","):
                order.append(self._order_item())
        limit = self._int() if self._accept_kw("LIMIT") else None
        offset = self._int() if self._accept_kw("OFFSET") else None
        if self.tok.kind != "eof":
            raise self._unexpected()
        return Query(sobject.parts[0], tuple(fields), count, where, tuple(order), limit, offset)

    def _order_item(self) -> OrderItem:
        path = self._path()
        descending = False
        if self._accept_kw("DESC"):
            descending = True
        else:
            self._accept_kw("ASC")
        nulls_last: bool | None = None
        if self._accept_kw("NULLS"):
            if self._accept_kw("LAST"):
                nulls_last = True
            else:
                self._expect_kw("FIRST")
                nulls_last = False
        return OrderItem(path, descending, nulls_last)

    def _or(self) -> Condition:
        items = [self._and()]
        while self._accept_kw("OR"):
            items.append(self._and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _and(self) -> Condition:
        items = [self._not()]
        while self._accept_kw("AND"):
            items.append(self._not())
        return items[0] if len(items) == 1 else And(tuple(items))

    def _not(self) -> Condition:
        if self._accept_kw("NOT"):
            return Not(self._not())
        if self._accept_punct("("):
            inner = self._or()
            self._expect_punct(")")
            return inner
        return self._comparison()

    def _comparison(self) -> Condition:
        path = self._path()
        if self._accept_kw("NOT"):
            self._expect_kw("IN")
            return Comparison(path, "NOT IN", self._value_list())
        if self._accept_kw("IN"):
            return Comparison(path, "IN", self._value_list())
        if self._accept_kw("LIKE"):
            value = self._value()
            if value.kind != "string":
                raise SoqlError("MALFORMED_QUERY", "LIKE needs a string literal")
            return Comparison(path, "LIKE", (value,))
        tok = self.tok
        if tok.kind != "op":
            raise self._unexpected()
        self.i += 1
        op = "!=" if tok.text == "<>" else tok.text
        return Comparison(path, op, (self._value(),))

    def _value_list(self) -> tuple[Value, ...]:
        self._expect_punct("(")
        values = [self._value()]
        while self._accept_punct(","):
            values.append(self._value())
        self._expect_punct(")")
        return tuple(values)

    def _value(self) -> Value:
        tok = self.tok
        self.i += 1
        if tok.kind == "string":
            return Value("string", tok.value, like=tok.like)
        if tok.kind == "number":
            return Value("number", float(tok.text))
        if tok.kind == "date":
            try:
                return Value("date", date.fromisoformat(tok.text))
            except ValueError:
                raise SoqlError("MALFORMED_QUERY", f"invalid date: {tok.text}") from None
        if tok.kind == "datetime":
            try:
                return Value("datetime", parse_datetime(tok.text))
            except ValueError:
                raise SoqlError("MALFORMED_QUERY", f"invalid datetime: {tok.text}") from None
        if tok.kind == "ident":
            word = tok.text.upper()
            if word in ("TRUE", "FALSE"):
                return Value("boolean", word == "TRUE")
            if word == "NULL":
                return Value("null", None)
            if word in _DATE_RANGES:
                days = _DATE_RANGES[word]
                if days < 0:
                    self._expect_punct(":")
                    days = self._int()
                return Value("date_range", None, range_days=days, range_name=word)
        self.i -= 1
        raise self._unexpected()


def parse(text: str) -> Query:
    """Parse one SOQL statement; raises ``SoqlError`` (MALFORMED_QUERY) on anything outside the subset."""
    return _Parser(text).query()
