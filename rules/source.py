"""Reading a rules file: YAML into plain values, with the place of every key and value kept.

Two YAML 1.1 habits would misread an admin's file, so this loader does not have them:
`no`, `yes`, `on` and `off` stay strings (`no` is Norwegian, not False), and `08:00` stays a
string (YAML 1.1 reads it as the base-60 number 480). Only true/false are booleans and only
plain decimal digits are integers. A key given twice in one mapping is an error, not a silent
overwrite.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from rules.errors import Mark, Problem, RulesInvalid

#: A path into the document: keys and list indexes.
Path_ = tuple[str | int, ...]

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"


#: libyaml's parser when PyYAML has it (it builds the same nodes with the same marks, about
#: five times faster for a file of thousands of rules), else the pure-Python one.
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[misc]
    """SafeLoader with YAML 1.2-like scalars (see the module docstring)."""


_TIMESTAMP = "tag:yaml.org,2002:timestamp"
# Dates stay text too: `contains: 2026-01-05` means those characters, and holidays are read
# from text by the loader.
_StrictLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp) for tag, regexp in resolvers if tag not in (_BOOL, _INT, _FLOAT, _TIMESTAMP)
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_StrictLoader.add_implicit_resolver(_INT, re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
_StrictLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


class _Scalars(SafeConstructor):
    def construct_yaml_int(self, node: ScalarNode) -> int:  # type: ignore[override]
        # Decimal only: "08" is 8, never an octal error.
        return int(str(self.construct_scalar(node)).replace("_", ""))


_Scalars.add_constructor(_INT, _Scalars.construct_yaml_int)


class SourceInt(int):
    """An integer that remembers how it was written: `+358` or `007` read where text is
    expected stays "+358" and "007", not 358 and 7."""

    source: str


class SourceFloat(float):
    source: str


def _numbers_keep_source(value: Any, written: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    kept: SourceInt | SourceFloat = (
        SourceInt(value) if isinstance(value, int) else SourceFloat(value)
    )
    kept.source = written
    return kept


#: Values a file may expand to through YAML aliases: a few kilobytes of `&a [*b, *b, ...]`
#: could otherwise expand to billions and stall the daemon's reload.
MAX_VALUES = 200_000


@dataclass
class Document:
    """One file's values, and where each key and value is in it."""

    file: str
    data: Any
    #: The path it was read from (`file` is how errors show it).
    source: str = ""
    #: Where each value starts (the path of a mapping key gives its value's place).
    values: dict[Path_, Mark] = field(default_factory=dict)
    #: Where each mapping key is written: what "unknown key" errors point at.
    keys: dict[Path_, Mark] = field(default_factory=dict)

    def at(self, path: Path_) -> Mark:
        """The closest known place: the value's, else its nearest parent's."""
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), Mark(self.file, 1, 1))

    def key_at(self, path: Path_) -> Mark:
        return self.keys.get(path) or self.at(path)


def read_document(path: Path, shown_as: str | None = None) -> Document:
    """Parse one file; a syntax error raises RulesInvalid with its place."""
    name = shown_as or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesInvalid([Problem(Mark(name, 1, 1), "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise RulesInvalid([Problem(Mark(name, 1, 1), "", f"cannot read: {error}")]) from None
    document = parse_document(text, name)
    document.source = str(path)
    return document


def parse_document(text: str, name: str) -> Document:
    try:
        root = yaml.compose(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as error:
        place = error.problem_mark or error.context_mark
        mark = Mark(name, place.line + 1, place.column + 1) if place else Mark(name, 1, 1)
        problem = " ".join(str(part) for part in (error.context, error.problem) if part)
        raise RulesInvalid([Problem(mark, "", f"not valid YAML: {problem}")]) from None
    except yaml.YAMLError as error:
        raise RulesInvalid([Problem(Mark(name, 1, 1), "", f"not valid YAML: {error}")]) from None
    document = Document(name, None)
    if root is None:
        document.data = {}
        return document
    problems: list[Problem] = []
    try:
        document.data = _convert(root, (), document, problems, set())
    except _TooLarge:
        raise RulesInvalid(
            [Problem(Mark(name, 1, 1), "", f"expands to more than {MAX_VALUES} values (aliases)")]
        ) from None
    if problems:
        raise RulesInvalid(problems)
    return document


def _mark(document: Document, node: Node) -> Mark:
    return Mark(document.file, node.start_mark.line + 1, node.start_mark.column + 1)


class _TooLarge(Exception):
    pass


def _convert(
    node: Node, path: Path_, document: Document, problems: list[Problem], open_nodes: set[int]
) -> Any:
    document.values[path] = _mark(document, node)
    if len(document.values) > MAX_VALUES:
        raise _TooLarge
    if id(node) in open_nodes:  # an alias inside the value it names
        problems.append(Problem(_mark(document, node), dotted(path), "an alias refers to itself"))
        return None
    if isinstance(node, MappingNode | SequenceNode):
        open_nodes = open_nodes | {id(node)}
    if isinstance(node, MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = (
                _Scalars().construct_object(key_node) if isinstance(key_node, ScalarNode) else None
            )
            if not isinstance(key, str | int | float | bool) or isinstance(key, bool):
                problems.append(
                    Problem(_mark(document, key_node), dotted(path), "keys must be plain names")
                )
                continue
            key = str(key)
            if key in result:
                problems.append(
                    Problem(_mark(document, key_node), dotted((*path, key)), "given twice")
                )
                continue
            document.keys[(*path, key)] = _mark(document, key_node)
            result[key] = _convert(value_node, (*path, key), document, problems, open_nodes)
        return result
    if isinstance(node, SequenceNode):
        return [
            _convert(item, (*path, index), document, problems, open_nodes)
            for index, item in enumerate(node.value)
        ]
    try:
        return _numbers_keep_source(_Scalars().construct_object(node), str(node.value))
    except (yaml.YAMLError, ValueError) as error:
        problems.append(Problem(_mark(document, node), dotted(path), f"unreadable value: {error}"))
        return None


def dotted(path: Path_) -> str:
    """`rules[3].when.subject`: how a path is shown in errors."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
