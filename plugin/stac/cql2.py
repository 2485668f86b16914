"""CQL2 text to CQL2 JSON, and CQL2 JSON evaluated on an item, for catalogs that cannot filter themselves.

Servers that implement the filter extension get CQL2 JSON in the POST body (stac-fastapi only takes
JSON there); light APIs and static catalogs are filtered here, item by item, with SQL's
three-valued logic so that a missing property behaves as it does on a server (a comparison with
NULL is neither true nor false). No third-party package: the `cql2` wheels need Python >= 3.10,
and QGIS 3.22 on Windows ships 3.9. The supported subset: comparisons, AND/OR/NOT, BETWEEN, IN,
LIKE, IS NULL, CASEI/ACCENTI, TIMESTAMP/DATE literals. Spatial, temporal and array operators
are rejected with a message saying so (a server that speaks CQL2 text may still take them).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from .items import parse_datetime

Json = Any


class Cql2Error(ValueError):
    """A CQL2 expression that cannot be parsed or evaluated here; the message points at the problem."""


_KEYWORDS = {"AND", "OR", "NOT", "LIKE", "BETWEEN", "IN", "IS", "NULL", "TRUE", "FALSE"}
_COMPARISONS = ("<>", "<=", ">=", "=", "<", ">")
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<quoted>"(?:[^"]|"")+")
    | (?P<number>-?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?))
    | (?P<op><>|<=|>=|!=|=|<|>|\(|\)|,|\+|-|\*|/)
    | (?P<word>[A-Za-z_][A-Za-z0-9_:.]*)
    )""",
    re.VERBOSE,
)
_UNSUPPORTED_PREFIXES = ("S_", "T_", "A_")


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, position = [], 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            where = len(text) - len(text[position:].lstrip())
            raise Cql2Error(f"CQL2: unexpected character {text[where]!r} at position {where + 1}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind), match.start(kind)))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent over the CQL2-text grammar subset; produces CQL2 JSON."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    def peek(self, offset: int = 0) -> tuple[str, str, int] | None:
        i = self.index + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def at_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "word" and token[1].upper() in words

    def at_op(self, *ops: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "op" and token[1] in ops

    def take(self) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            raise Cql2Error(f"CQL2: the expression ends too early: {self.text!r}")
        self.index += 1
        return token

    def expect_op(self, op: str) -> None:
        if self.peek() is None:
            raise self.error(None, f"expected '{op}'")
        token = self.take()
        if token[0] != "op" or token[1] != op:
            raise self.error(token, f"expected '{op}'")

    def expect_word(self, word: str) -> None:
        token = self.take()
        if token[0] != "word" or token[1].upper() != word:
            raise self.error(token, f"expected {word}")

    def error(self, token: tuple[str, str, int] | None, what: str) -> Cql2Error:
        if token is None:
            return Cql2Error(f"CQL2: {what} at the end of {self.text!r}")
        return Cql2Error(f"CQL2: {what} at position {token[2] + 1}, found {token[1]!r}")

    def parse(self) -> Json:
        if not self.tokens:
            raise Cql2Error("CQL2: the expression is empty")
        node = self.or_expr()
        if self.peek() is not None:
            raise self.error(self.peek(), "expected AND, OR or the end")
        return node

    def or_expr(self) -> Json:
        args = [self.and_expr()]
        while self.at_word("OR"):
            self.take()
            args.append(self.and_expr())
        return args[0] if len(args) == 1 else {"op": "or", "args": args}

    def and_expr(self) -> Json:
        args = [self.not_expr()]
        while self.at_word("AND"):
            self.take()
            args.append(self.not_expr())
        return args[0] if len(args) == 1 else {"op": "and", "args": args}

    def not_expr(self) -> Json:
        if self.at_word("NOT"):
            self.take()
            return {"op": "not", "args": [self.not_expr()]}
        if self.at_op("("):
            self.take()
            node = self.or_expr()
            self.expect_op(")")
            return node
        return self.predicate()

    def predicate(self) -> Json:
        left = self.scalar()
        if isinstance(left, bool) and (self.peek() is None or self.at_word("AND", "OR") or self.at_op(")")):
            return left
        negate = False
        if self.at_word("NOT"):
            self.take()
            negate = True
            if not self.at_word("LIKE", "BETWEEN", "IN"):
                raise self.error(self.peek(), "expected LIKE, BETWEEN or IN after NOT")
        token = self.peek()
        if self.at_op("+", "-", "*", "/"):
            raise self.error(token, "arithmetic is not supported")
        if self.at_op(*_COMPARISONS, "!="):
            op = self.take()[1]
            node: Json = {"op": "<>" if op == "!=" else op, "args": [left, self.scalar()]}
        elif self.at_word("LIKE"):
            self.take()
            node = {"op": "like", "args": [left, self.scalar()]}
        elif self.at_word("BETWEEN"):
            self.take()
            low = self.scalar()
            self.expect_word("AND")
            node = {"op": "between", "args": [left, low, self.scalar()]}
        elif self.at_word("IN"):
            self.take()
            self.expect_op("(")
            values = [self.scalar()]
            while self.at_op(","):
                self.take()
                values.append(self.scalar())
            self.expect_op(")")
            node = {"op": "in", "args": [left, values]}
        elif self.at_word("IS"):
            self.take()
            if self.at_word("NOT"):
                self.take()
                self.expect_word("NULL")
                return {"op": "not", "args": [{"op": "isNull", "args": [left]}]}
            self.expect_word("NULL")
            return {"op": "isNull", "args": [left]}
        else:
            raise self.error(token, "expected a comparison (=, <>, <, <=, >, >=, LIKE, BETWEEN, IN, IS NULL)")
        return {"op": "not", "args": [node]} if negate else node

    def scalar(self) -> Json:
        token = self.take()
        kind, value, _ = token
        if kind == "string":
            return value[1:-1].replace("''", "'")
        if kind == "number":
            number = float(value)
            return int(number) if re.fullmatch(r"-?\d+", value) else number
        if kind == "quoted":
            return {"property": value[1:-1].replace('""', '"')}
        if kind == "op" and value == "(":
            raise self.error(token, "arithmetic and nested scalar expressions are not supported")
        if kind != "word":
            raise self.error(token, "expected a property name or a value")
        upper = value.upper()
        if upper in ("TRUE", "FALSE"):
            return upper == "TRUE"
        if self.at_op("("):
            return self.function(token)
        if upper in _KEYWORDS:
            raise self.error(token, "expected a property name or a value")
        return {"property": value}

    def function(self, token: tuple[str, str, int]) -> Json:
        name = token[1].upper()
        if name.startswith(_UNSUPPORTED_PREFIXES) or name not in ("TIMESTAMP", "DATE", "CASEI", "ACCENTI"):
            raise Cql2Error(f"CQL2: {token[1]}() is not supported by Cubescope's own CQL2 evaluator (supported: "
                            "comparisons, AND/OR/NOT, BETWEEN, IN, LIKE, IS NULL, CASEI, ACCENTI, TIMESTAMP, DATE)")
        self.expect_op("(")
        argument = self.scalar()
        self.expect_op(")")
        if name in ("TIMESTAMP", "DATE"):
            if not isinstance(argument, str):
                raise self.error(token, f"{name} takes a quoted text")
            try:
                parse_datetime(argument) if name == "TIMESTAMP" else date.fromisoformat(argument)
            except ValueError:
                raise self.error(token, f"{name}({argument!r}) is not a valid {name.lower()}") from None
            return {name.lower(): argument}
        return {"op": name.lower(), "args": [argument]}


def parse_cql2_text(text: str) -> Json:
    """CQL2 JSON for a CQL2 text expression; Cql2Error saying where it went wrong."""
    if not isinstance(text, str):
        raise Cql2Error(f"CQL2 text must be a string, got {type(text).__name__}")
    return _Parser(text).parse()


# ---- evaluation -------------------------------------------------------------------------------


def _property(item: dict, name: str) -> Any:
    properties = item.get("properties") or {}
    if name.startswith("properties."):
        name = name[len("properties."):]
    if name in properties:
        return properties[name]
    return item.get(name)


def _value(node: Json, item: dict) -> Any:
    if isinstance(node, dict):
        if "property" in node:
            return _property(item, str(node["property"]))
        if "timestamp" in node:
            return parse_datetime(str(node["timestamp"]))
        if "date" in node:
            return date.fromisoformat(str(node["date"]))
        op = str(node.get("op", "")).lower()
        if op in ("casei", "accenti"):
            inner = _value(node["args"][0], item)
            if not isinstance(inner, str):
                return inner
            if op == "casei":
                return inner.casefold()
            return "".join(c for c in unicodedata.normalize("NFD", inner) if unicodedata.category(c) != "Mn")
        raise Cql2Error(f"CQL2: cannot evaluate {node!r} client-side")
    return node


def _coerce(a: Any, b: Any) -> tuple[Any, Any] | None:
    """Bring two values to comparable types, or None when they cannot be compared (NULL-like)."""
    if a is None or b is None:
        return None
    try:
        if isinstance(a, datetime) or isinstance(b, datetime):
            a = a if isinstance(a, datetime) else parse_datetime(str(a))
            b = b if isinstance(b, datetime) else parse_datetime(str(b))
            return a, b
        if isinstance(a, date) or isinstance(b, date):
            a = a if isinstance(a, date) else parse_datetime(str(a)).date()
            b = b if isinstance(b, date) else parse_datetime(str(b)).date()
            return a, b
    except ValueError:
        return None
    numeric = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return (a, b) if isinstance(a, bool) and isinstance(b, bool) else None
    if isinstance(a, numeric) and isinstance(b, numeric):
        return a, b
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    return None


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _like(value: Any, pattern: Any) -> bool | None:
    if not isinstance(value, str) or not isinstance(pattern, str):
        return None
    regex, escaped = [], False
    for char in pattern:
        if escaped:
            regex.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            regex.append(".*")
        elif char == "_":
            regex.append(".")
        else:
            regex.append(re.escape(char))
    return re.fullmatch("".join(regex), value, re.DOTALL) is not None


def evaluate(node: Json, item: dict) -> bool | None:
    """True, False or None (unknown, as SQL's NULL) for a CQL2 JSON boolean expression on an item."""
    if isinstance(node, bool):
        return node
    if not isinstance(node, dict) or "op" not in node:
        raise Cql2Error(f"CQL2: {node!r} is not a boolean expression")
    op, args = str(node["op"]).lower(), node.get("args") or []
    if op == "and":
        results = [evaluate(a, item) for a in args]
        return False if False in results else (None if None in results else True)
    if op == "or":
        results = [evaluate(a, item) for a in args]
        return True if True in results else (None if None in results else False)
    if op == "not":
        result = evaluate(args[0], item)
        return None if result is None else not result
    if op == "isnull":
        return _value(args[0], item) is None
    if op in _COMPARE:
        pair = _coerce(_value(args[0], item), _value(args[1], item))
        return None if pair is None else _COMPARE[op](*pair)
    if op == "like":
        return _like(_value(args[0], item), _value(args[1], item))
    if op == "between":
        value = _value(args[0], item)
        low, high = _coerce(value, _value(args[1], item)), _coerce(value, _value(args[2], item))
        return None if low is None or high is None else low[1] <= low[0] and high[0] <= high[1]
    if op == "in":
        value = _value(args[0], item)
        if value is None:
            return None
        pairs = [_coerce(value, _value(v, item)) for v in args[1]]
        return any(p is not None and p[0] == p[1] for p in pairs)
    raise Cql2Error(f"CQL2: the operator {node['op']!r} is not supported by Cubescope's own CQL2 evaluator")
