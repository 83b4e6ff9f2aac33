"""A small parser of the Grafana Alloy configuration syntax, enough to check a config.alloy
for structure: blocks (`name "label" { ... }`), attributes (`key = value`), strings (with
escapes, and raw backtick strings), numbers, booleans, null, lists, objects, references
(`discovery.docker.containers.targets`) and function calls (`sys.env("X")`).

Operators are left out on purpose: a config that needs them fails here loudly rather than
being half-read. Syntax reference: https://grafana.com/docs/alloy/latest/get-started/syntax/
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The components of the Alloy version the configs are written for (tests/alloy_components.txt).
ALLOY_COMPONENTS = {
    line.strip()
    for line in (Path(__file__).parent / "alloy_components.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
}


class AlloySyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Reference:
    """A dotted name used as a value: a component's export or a standard-library value."""

    path: str


@dataclass(frozen=True)
class Call:
    function: str
    arguments: tuple[Any, ...]


@dataclass
class Block:
    name: str
    label: str | None
    line: int
    attributes: dict[str, Any] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def children(self, name: str) -> list[Block]:
        return [block for block in self.blocks if block.name == name]

    def child(self, name: str) -> Block:
        (only,) = self.children(name)
        return only


_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\n]+|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<punct>[{}\[\](),=:])
    """,
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    line: int


def _tokens(source: str) -> Iterator[_Token]:
    position, line = 0, 1
    while position < len(source):
        match = _TOKEN.match(source, position)
        if match is None:
            raise AlloySyntaxError(f"line {line}: unexpected {source[position : position + 20]!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            yield _Token(kind, match.group(), line)
        line += match.group().count("\n")
        position = match.end()


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = list(_tokens(source))
        self.index = 0

    def peek(self, offset: int = 0) -> _Token | None:
        index = self.index + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, text: str | None = None, kind: str | None = None) -> _Token:
        token = self.peek()
        if token is None:
            raise AlloySyntaxError(f"unexpected end of file, expected {text or kind}")
        if (text is not None and token.text != text) or (kind is not None and token.kind != kind):
            raise AlloySyntaxError(
                f"line {token.line}: expected {text or kind}, got {token.text!r}"
            )
        self.index += 1
        return token

    def body(self, closing: str | None) -> Block:
        first = self.peek()
        body = Block(name="", label=None, line=first.line if first else 1)
        while True:
            token = self.peek()
            if token is None:
                if closing is not None:
                    raise AlloySyntaxError(
                        f"unexpected end of file: a block is not closed by {closing!r}"
                    )
                return body
            if token.text == closing:
                return body
            name = self.take(kind="name")
            following = self.peek()
            if following is not None and following.text == "=":
                self.take("=")
                if "." in name.text:
                    raise AlloySyntaxError(f"line {name.line}: attribute names have no dots")
                if name.text in body.attributes:
                    raise AlloySyntaxError(f"line {name.line}: attribute {name.text} set twice")
                body.attributes[name.text] = self.value()
                continue
            label = None
            if following is not None and following.kind in ("string", "raw"):
                label = _string(self.take())
            self.take("{")
            inner = self.body("}")
            self.take("}")
            body.blocks.append(Block(name.text, label, name.line, inner.attributes, inner.blocks))

    def value(self) -> Any:
        token = self.take()
        if token.kind in ("string", "raw"):
            return _string(token)
        if token.kind == "number":
            return float(token.text) if re.search(r"[.eE]", token.text) else int(token.text)
        if token.text == "[":
            return self.sequence("]")
        if token.text == "{":
            return self.object()
        if token.kind == "name":
            if token.text in ("true", "false"):
                return token.text == "true"
            if token.text == "null":
                return None
            following = self.peek()
            if following is not None and following.text == "(":
                self.take("(")
                return Call(token.text, tuple(self.sequence(")")))
            return Reference(token.text)
        raise AlloySyntaxError(f"line {token.line}: unexpected {token.text!r} (no operators here)")

    def sequence(self, closing: str) -> list[Any]:
        items = []
        while (token := self.peek()) is not None and token.text != closing:
            items.append(self.value())
            if (token := self.peek()) is not None and token.text == ",":
                self.take(",")
            elif token is None or token.text != closing:
                raise AlloySyntaxError(
                    f"line {token.line if token else '?'}: expected , or {closing}"
                )
        self.take(closing)
        return items

    def object(self) -> dict[str, Any]:
        items: dict[str, Any] = {}
        while (token := self.peek()) is not None and token.text != "}":
            key = self.take()
            if key.kind not in ("name", "string"):
                raise AlloySyntaxError(f"line {key.line}: object keys are names or strings")
            self.take("=")
            items[_string(key) if key.kind == "string" else key.text] = self.value()
            if (token := self.peek()) is not None and token.text == ",":
                self.take(",")
            elif token is None or token.text != "}":
                raise AlloySyntaxError(f"line {token.line if token else '?'}: expected , or }}")
        self.take("}")
        return items


def _string(token: _Token) -> str:
    if token.kind == "raw":
        return token.text[1:-1]
    try:
        text: str = json.loads(token.text)
    except json.JSONDecodeError as error:
        raise AlloySyntaxError(f"line {token.line}: bad string {token.text}: {error}") from None
    return text


def parse(source: str) -> list[Block]:
    """The top-level blocks of an Alloy configuration; AlloySyntaxError when it is malformed."""
    parser = _Parser(source)
    root = parser.body(None)
    if parser.peek() is not None:
        token = parser.peek()
        assert token is not None
        raise AlloySyntaxError(f"line {token.line}: unexpected {token.text!r}")
    if root.attributes:
        raise AlloySyntaxError(f"top-level attributes are not allowed: {sorted(root.attributes)}")
    return root.blocks


def references(node: Any) -> Iterator[Reference]:
    """Every reference inside a value or block, however deep."""
    if isinstance(node, Reference):
        yield node
    elif isinstance(node, Call):
        for argument in node.arguments:
            yield from references(argument)
    elif isinstance(node, Block):
        for value in node.attributes.values():
            yield from references(value)
        for block in node.blocks:
            yield from references(block)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)
    elif isinstance(node, dict):
        for item in node.values():
            yield from references(item)


def component(blocks: list[Block], name: str) -> Block:
    """The one top-level block of a config named `name`."""
    (block,) = [block for block in blocks if block.name == name]
    return block
