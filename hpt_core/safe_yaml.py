"""Read one YAML document safely: bounded size, depth and alias expansion; strict keys.

Hostile files (alias or merge-key bombs, Python tags, NUL or non-UTF-8 bytes, deep nesting,
huge integers, duplicate keys, several documents) end in a `ConfigError`, never a traceback.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from hpt_core.errors import ConfigError, Problem

MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64
MAX_EXPANDED_NODES = 200_000

# YAML 1.2 floats: PyYAML (YAML 1.1) reads `1e-5` as a string because it lacks a dot.
_FLOAT_PATTERN = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that reads YAML 1.2 floats and refuses duplicate keys."""


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_PATTERN, list("-+0123456789."))


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in mapping
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable key {key!r}", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def load_yaml(content: str | bytes, source: str = "<string>") -> Any:
    """Parse exactly one YAML document; any problem is a `ConfigError` naming `source`."""
    text = _decode(content, source)
    try:
        _check_shape(text, source)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError:
        raise
    except yaml.YAMLError as error:
        raise ConfigError([Problem("", f"not valid YAML: {_one_line(error)}")], source) from None
    except (ValueError, OverflowError, RecursionError, MemoryError) as error:
        raise ConfigError([Problem("", f"cannot read a value: {_one_line(error)}")], source) from None


def _decode(content: str | bytes, source: str) -> str:
    if len(content) > MAX_BYTES:
        raise ConfigError([Problem("", f"the file is larger than {MAX_BYTES} bytes")], source)
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ConfigError([Problem("", f"not UTF-8 text: byte {error.start} cannot be decoded")], source) from None
    if "\x00" in content:
        raise ConfigError([Problem("", "the file contains a NUL character")], source)
    return content.removeprefix("\ufeff")


def _check_shape(text: str, source: str) -> None:
    """Walk the node graph: one document, bounded depth, bounded size once aliases expand."""
    documents = 0
    depth = 0
    for event in yaml.parse(text, Loader=_StrictLoader):
        if isinstance(event, yaml.DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise ConfigError([Problem("", "the file holds several YAML documents; one is allowed")], source)
        elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError([Problem("", f"nesting is deeper than {MAX_DEPTH} levels")], source)
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    if documents == 0:
        raise ConfigError([Problem("", "the file is empty; an experiment config is a mapping")], source)
    root = yaml.compose(text, Loader=_StrictLoader)
    if root is None:
        raise ConfigError([Problem("", "the file is empty; an experiment config is a mapping")], source)
    if _expanded_size(root, {}) > MAX_EXPANDED_NODES:
        raise ConfigError(
            [Problem("", f"aliases expand to more than {MAX_EXPANDED_NODES} values (an alias bomb?)")], source
        )


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Number of values the node stands for once every alias is expanded (linear in the graph)."""
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    in_progress: set[int] = set()
    while stack:
        current, children_done = stack.pop()
        if id(current) in memo:
            continue
        children = _children(current)
        if children_done or not children:
            memo[id(current)] = min(1 + sum(memo[id(child)] for child in children), MAX_EXPANDED_NODES + 1)
            in_progress.discard(id(current))
            continue
        if id(current) in in_progress:
            raise yaml.YAMLError("an alias refers to a collection that contains it (a recursive structure)")
        in_progress.add(id(current))
        stack.append((current, True))
        stack.extend((child, False) for child in children if id(child) not in memo)
    return memo[id(node)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())
