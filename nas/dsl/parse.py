"""YAML → plain Python data that remembers where every key and value came from.

Only `yaml.SafeLoader` machinery is used (no arbitrary tags). Mappings become `PosDict` and sequences
`PosList`; both carry the `Location` of each entry so later stages can point at the exact line.

The reader is bounded, so a tiny hostile file cannot take the machine: only regular files up to
`MAX_FILE_BYTES`, at most `MAX_DEPTH` levels of nesting, `MAX_ALIASES` aliases and `MAX_VALUES` values
once aliases are expanded (an alias bomb is refused before it is built), and no recursive aliases.
Numbers follow YAML 1.2 as users write them: `1e9` and `1.0e9` are floats, not strings.
"""
from __future__ import annotations

import os
import re
import stat
from typing import Any

import yaml

from nas.dsl.errors import Location, SpecError
from nas.dsl.limits import MAX_INT

MAX_FILE_BYTES = 2 * 1024 * 1024  # the largest shipped spec is a few KB
MAX_DEPTH = 64
MAX_ALIASES = 1000
MAX_VALUES = 20_000  # scalars, lists and mappings after alias expansion


class PosDict(dict):
    """A dict that knows the location of itself, its keys and its values."""

    where: Location
    key_where: dict
    value_where: dict

    def loc(self, key: Any = None) -> Location:
        if key is None:
            return self.where
        return self.value_where.get(key) or self.key_where.get(key) or self.where

    def key_loc(self, key: Any) -> Location:
        return self.key_where.get(key) or self.where


class PosList(list):
    """A list that knows the location of itself and of each item."""

    where: Location
    item_where: list

    def loc(self, index: int | None = None) -> Location:
        if index is None or index >= len(self.item_where):
            return self.where
        return self.item_where[index]


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:omap")


def _location(mark, file: str) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts while composing: nesting depth, aliases, values; refuses recursive aliases.

    It also remembers where each alias was used, so an error about an aliased value points at the use.
    """

    def __init__(self, text: str, file: str):
        super().__init__(text)
        self.file = file
        self.depth = 0
        self.values = 0
        self.aliases = 0
        self.open_anchors: list[str] = []
        self.alias_uses: dict[tuple[int, Any], Location] = {}

    def compose_node(self, parent, index):
        event = self.peek_event()
        where = _location(event.start_mark, self.file)
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise SpecError(f"more than {MAX_ALIASES} aliases", where, "a spec needs only a few")
            if event.anchor in self.open_anchors:
                raise SpecError(f"recursive alias '*{event.anchor}' inside its own anchor", where,
                                "an alias cannot contain itself")
            if parent is not None:
                self.alias_uses[(id(parent), id(index) if isinstance(index, yaml.Node) else index)] = where
            return super().compose_node(parent, index)
        self.values += 1
        if self.values > MAX_VALUES:
            raise SpecError(f"more than {MAX_VALUES} values", where, "this is not a search space")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SpecError(f"nested more than {MAX_DEPTH} levels deep", where, "a spec needs only a few")
        self.open_anchors.append(event.anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.open_anchors.pop()
            self.depth -= 1

    def use_site(self, parent: yaml.Node, index: Any) -> Location | None:
        return self.alias_uses.get((id(parent), id(index) if isinstance(index, yaml.Node) else index))


# YAML 1.1 reads 1e9 and 1.0e9 as strings (it wants 1.0e+9); users mean numbers.
_BoundedLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def _expanded_size(node: yaml.Node, file: str, memo: dict[int, int]) -> int:
    """How many values `node` becomes once aliases are expanded; refuses more than MAX_VALUES (alias bombs)."""
    known = memo.get(id(node))
    if known is not None:
        return known
    total = 1
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded_size(item, file, memo)
            if total > MAX_VALUES:
                break
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            total += _expanded_size(key, file, memo) + _expanded_size(value, file, memo)
            if total > MAX_VALUES:
                break
    if total > MAX_VALUES:
        raise SpecError(f"expands to more than {MAX_VALUES} values through aliases",
                        _location(node.start_mark, file), "each *alias repeats its anchor's whole content")
    memo[id(node)] = total
    return total


def _construct(loader: yaml.SafeLoader, node: yaml.Node, file: str) -> Any:
    where = _location(node.start_mark, file)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
        raise SpecError(f"YAML tag '{node.tag}' is not allowed", where, "only plain mappings, lists and scalars")
    if isinstance(node, yaml.MappingNode):
        explicit: dict = {}
        for key_node, _ in node.value:  # duplicates among the written keys are errors; merged ones override
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            key_where = _location(key_node.start_mark, file)
            if key_node.value in explicit:
                raise SpecError(f"duplicate key '{key_node.value}'", key_where,
                                f"first defined at line {explicit[key_node.value].line}")
            explicit[key_node.value] = key_where
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<) the safe way
        out = PosDict()
        out.where, out.key_where, out.value_where = where, {}, {}
        for key_node, value_node in node.value:
            key = _construct(loader, key_node, file)
            key_where = _location(key_node.start_mark, file)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise SpecError("mapping keys must be plain scalars", key_where)
            out[key] = _construct(loader, value_node, file)
            out.key_where[key] = key_where
            out.value_where[key] = loader.use_site(node, key_node) or _location(value_node.start_mark, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        out = PosList(_construct(loader, item, file) for item in node.value)
        out.where = where
        out.item_where = [loader.use_site(node, i) or _location(item.start_mark, file)
                          for i, item in enumerate(node.value)]
        return out
    try:
        value = loader.construct_object(node, deep=True)
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        raise SpecError(f"cannot read this value: {str(err).splitlines()[0]}", where) from None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        raise SpecError(f"integer too large ({str(value)[:12]}…, {len(str(abs(value)))} digits)", where,
                        "integers must be within ±2^53")
    return value


def parse_yaml(text: str, file: str = "<string>") -> Any:
    """Parse one YAML document with positions. YAML syntax errors become located `SpecError`s."""
    if len(text) > MAX_FILE_BYTES:
        raise SpecError(f"the text is too long ({len(text)} characters, limit {MAX_FILE_BYTES})", Location(file))
    loader = None
    try:
        loader = _BoundedLoader(text, file)  # inside: the reader refuses NUL and control bytes right here
        node = loader.get_single_node()
        if node is None:
            raise SpecError("the file is empty", Location(file, 1, 1), "expected a mapping with 'name' and a body")
        _expanded_size(node, file, {})
        return _construct(loader, node, file)
    except yaml.reader.ReaderError as err:
        line = text.count("\n", 0, err.position) + 1
        col = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
        char = f"U+{err.character:04X}" if isinstance(err.character, int) else repr(err.character)
        raise SpecError(f"character {char} is not allowed in YAML", Location(file, line, col),
                        "remove control characters and NUL bytes") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = _location(mark, file) if mark else Location(file)
        problem = err.problem or err.context or "invalid YAML"
        if "constructor" in problem:
            raise SpecError(f"YAML: {problem}", where, "tags that build Python objects are refused") from None
        raise SpecError(f"YAML syntax: {problem}", where, "check indentation, colons and brackets") from None
    except yaml.YAMLError as err:  # e.g. an unsafe tag: the safe constructor refuses it
        raise SpecError(f"YAML: {err}".splitlines()[0], Location(file)) from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: str) -> Any:
    """Read and parse a YAML file: only a regular file (never a pipe or device) up to MAX_FILE_BYTES."""
    where = Location(str(path))
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise SpecError("is a directory, expected a YAML file", where)
        if not stat.S_ISREG(info.st_mode):
            raise SpecError("not a regular file", where, "give a YAML file, not a pipe or a device")
        if info.st_size > MAX_FILE_BYTES:
            raise SpecError(f"file too large ({info.st_size} bytes, limit {MAX_FILE_BYTES})", where,
                            "a search space or architecture is a few KB")
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SpecError("no such file", where, "check the path") from None
    except OSError as err:
        raise SpecError(f"cannot read: {err.strerror or err}", where) from None
    except ValueError:  # os.stat refuses a path with a NUL byte
        raise SpecError("not a valid path (it holds a NUL byte)", Location(repr(str(path))), "check the path") from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(f"file too large (over {MAX_FILE_BYTES} bytes)", where)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:  # located at the first bad byte: often one Latin-1 letter in a comment
        line = raw.count(b"\n", 0, err.start) + 1
        col = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise SpecError(f"not a UTF-8 text file (byte 0x{raw[err.start]:02x})", Location(str(path), line, col),
                        "save it as UTF-8") from None
    return parse_yaml(text, str(path))
