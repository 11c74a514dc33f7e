"""YAML → plain Python data that remembers where every key and value came from.

Only `yaml.SafeLoader` machinery is used (no arbitrary tags). Mappings become `PosDict` and sequences
`PosList`; both carry the `Location` of each entry so later stages can point at the exact line.
"""
from __future__ import annotations

from typing import Any

import yaml

from nas.dsl.errors import Location, SpecError


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
            out.value_where[key] = _location(value_node.start_mark, file)
        return out
    if isinstance(node, yaml.SequenceNode):
        out = PosList(_construct(loader, item, file) for item in node.value)
        out.where = where
        out.item_where = [_location(item.start_mark, file) for item in node.value]
        return out
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, file: str = "<string>") -> Any:
    """Parse one YAML document with positions. YAML syntax errors become located `SpecError`s."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError("the file is empty", Location(file, 1, 1), "expected a mapping with 'name' and a body")
        return _construct(loader, node, file)
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
        loader.dispose()


def read_yaml(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise SpecError("no such file", Location(str(path)), "check the path") from None
    except IsADirectoryError:
        raise SpecError("is a directory, expected a YAML file", Location(str(path))) from None
    except UnicodeDecodeError:
        raise SpecError("not a UTF-8 text file", Location(str(path))) from None
    return parse_yaml(text, str(path))
