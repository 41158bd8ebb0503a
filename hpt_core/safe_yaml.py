"""Read one YAML document safely: bounded size, depth and alias expansion; strict keys; plain data.

Hostile files (alias or merge-key bombs, Python tags, NUL or non-UTF-8 bytes, deep nesting,
huge integers, duplicate keys, several documents) end in a `ConfigError`, never a traceback.
A problem inside the document names its dotted path and line, e.g.
`hyperparameters.lr: duplicate key 'lr' at line 5 (first at line 3)`.

Values are plain data, as in JSON: mappings, lists, strings, numbers, booleans and null. Tags
for other types (`!!set`, `!!binary`, `!!timestamp`, `!!omap`, `!!pairs`, Python tags) are
refused. As in YAML 1.2, a date such as `2024-05-01` is a string and `1e-5` is a float.
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
_STANDARD_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = ("str", "int", "float", "bool", "null", "seq", "map")
_REFUSED_TAGS = ("binary", "timestamp", "set", "omap", "pairs")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that reads YAML 1.2 floats, refuses duplicate keys and non-JSON tags, and knows where it is.

    While composing it keeps the path of the node being read (for syntax errors) and bounds the
    nesting depth; while constructing, an error names the path of the node that caused it.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.segments: list[Any] = []
        self.depth = 0
        self.root: yaml.Node | None = None

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self.segments.append(_segment(parent, index))
        opens = self.check_event(yaml.MappingStartEvent, yaml.SequenceStartEvent)
        if opens and self.depth >= MAX_DEPTH:
            raise ConfigError([Problem(self.path(), f"nesting is deeper than {MAX_DEPTH} levels "
                                       f"(line {self.peek_event().start_mark.line + 1})")])
        self.depth += opens
        node = super().compose_node(parent, index)
        self.depth -= opens
        self.segments.pop()
        return node

    def path(self) -> str:
        """The dotted path of the node being composed."""
        return ".".join(str(segment) for segment in self.segments if segment is not None)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """Construct depth-first (so that every error is raised here), naming the path of a node that fails."""
        tag = node.tag.replace(_STANDARD_TAG, "!!")
        if not _tag_fits(node):
            raise self.problem(node, f"the YAML tag {tag!r} does not fit a {node.id}")
        try:
            return super().construct_object(node, deep=True)
        except ConfigError:
            raise
        except yaml.constructor.ConstructorError as error:
            raise self.problem(node, str(error.problem)) from None
        except (ValueError, KeyError, TypeError, OverflowError):
            raise self.problem(node, f"cannot read {_short(node.value)} as {tag}") from None

    def construct_undefined(self, node: yaml.Node) -> Any:
        tags = ", ".join(f"!!{tag}" for tag in _PLAIN_TAGS)
        raise self.problem(node, f"the YAML tag {node.tag.replace(_STANDARD_TAG, '!!')!r} is not allowed; "
                           f"an experiment file holds plain data (allowed tags: {tags})")

    def path_of(self, node: yaml.Node) -> str:
        """The dotted path of a composed node (its first place, if aliases repeat it)."""
        return _path_to(self.root, node) if self.root is not None else ""

    def problem(self, node: yaml.Node, message: str, line_node: yaml.Node | None = None) -> ConfigError:
        """A `ConfigError` at `node`'s path, naming its line (or `line_node`'s)."""
        line = (line_node or node).start_mark.line + 1
        return ConfigError([Problem(self.path_of(node), f"{message} (line {line})")])


_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in (f"{_STANDARD_TAG}float", f"{_STANDARD_TAG}timestamp")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(f"{_STANDARD_TAG}float", _FLOAT_PATTERN, list("-+0123456789."))
for _tag in (None, *(f"{_STANDARD_TAG}{refused}" for refused in _REFUSED_TAGS)):
    _StrictLoader.add_constructor(_tag, _StrictLoader.construct_undefined)


def _tag_fits(node: yaml.Node) -> bool:
    """Whether a standard tag names the kind of node it is on (`!!map` a mapping, `!!str` a scalar, ...)."""
    kinds = {"seq": yaml.SequenceNode, "map": yaml.MappingNode}
    name = node.tag.removeprefix(_STANDARD_TAG)
    if node.tag == name or name not in _PLAIN_TAGS:
        return True
    return isinstance(node, kinds.get(name, yaml.ScalarNode))


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    """A mapping whose own keys appear once each; keys merged in with `<<` give way to its own."""
    own_count = sum(1 for key_node, _ in node.value if key_node.tag != f"{_STANDARD_TAG}merge")
    loader.flatten_mapping(node)
    merged_pairs, own_pairs = node.value[: len(node.value) - own_count], node.value[len(node.value) - own_count:]
    mapping: dict[Any, Any] = {}
    for key_node, value_node in merged_pairs:
        mapping[_key(loader, node, key_node)] = loader.construct_object(value_node)
    first_lines: dict[Any, int] = {}
    for key_node, value_node in own_pairs:
        key = _key(loader, node, key_node)
        line = key_node.start_mark.line + 1
        if key in first_lines:
            path = _join(loader.path_of(node), key_node.value)
            message = f"duplicate key {key!r} at line {line} (first at line {first_lines[key]})"
            raise ConfigError([Problem(path, f"{message}; each key may appear once in a mapping")])
        first_lines[key] = line
        mapping[key] = loader.construct_object(value_node)
    return mapping


def _key(loader: _StrictLoader, mapping_node: yaml.MappingNode, key_node: yaml.Node) -> Any:
    key = loader.construct_object(key_node)
    if isinstance(key, (dict, list)):
        raise loader.problem(mapping_node, "a key must be a string, number, boolean or null, "
                             f"but got a {type(key).__name__}", key_node)
    return key


_StrictLoader.add_constructor(f"{_STANDARD_TAG}map", _construct_mapping)


class _StrictDumper(yaml.SafeDumper):
    """SafeDumper that quotes what `_StrictLoader` would read as another type (a string `1e5`, say)."""


_StrictDumper.yaml_implicit_resolvers = _StrictLoader.yaml_implicit_resolvers


def dump_yaml(data: Any) -> str:
    """`data` as YAML that `load_yaml` reads back as the same data (keys in their given order)."""
    return yaml.dump(data, Dumper=_StrictDumper, sort_keys=False, allow_unicode=True)


def load_yaml(content: str | bytes, source: str = "<string>") -> Any:
    """Parse exactly one YAML document of plain data; any problem is a `ConfigError` naming `source`."""
    text = _decode(content, source)
    loader = _StrictLoader(text)
    try:
        loader.root = _compose_one_document(loader)
        if _expanded_size(loader.root, {}) > MAX_EXPANDED_NODES:
            message = f"aliases expand to more than {MAX_EXPANDED_NODES} values (an alias bomb?)"
            raise ConfigError([Problem("", message)])
        return loader.construct_document(loader.root)
    except ConfigError as error:
        raise ConfigError(error.problems, source) from None
    except yaml.MarkedYAMLError as error:
        raise ConfigError([Problem(loader.path(), f"not valid YAML: {_describe(error)}")], source) from None
    except yaml.YAMLError as error:
        raise ConfigError([Problem("", f"not valid YAML: {_one_line(error)}")], source) from None
    except (ValueError, OverflowError, RecursionError, MemoryError) as error:
        raise ConfigError([Problem(loader.path(), f"cannot read a value: {_one_line(error)}")], source) from None
    finally:
        loader.dispose()


def _compose_one_document(loader: _StrictLoader) -> yaml.Node:
    loader.get_event()  # the start of the stream
    if loader.check_event(yaml.StreamEndEvent):
        raise ConfigError([Problem("", "the file is empty; an experiment config is a mapping")])
    root = loader.compose_document()
    if not loader.check_event(yaml.StreamEndEvent):
        line = loader.peek_event().start_mark.line + 1
        raise ConfigError([Problem("", f"the file holds several YAML documents (another starts at line {line}); "
                                   "one is allowed")])
    if isinstance(root, yaml.ScalarNode) and root.tag == f"{_STANDARD_TAG}null" and not root.value:
        raise ConfigError([Problem("", "the file is empty; an experiment config is a mapping")])
    return root


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


def _segment(parent: yaml.Node | None, index: Any) -> Any:
    """The path segment of the node composed under `parent` at `index`: a key's text, a list index, or
    None for the root and for a key itself (whose path is its mapping's while it is read)."""
    if parent is None or index is None:
        return None
    if isinstance(index, yaml.ScalarNode):
        return index.value
    if isinstance(index, yaml.Node):
        return "?"
    return index


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _path_to(root: yaml.Node, target: yaml.Node) -> str:
    """The dotted path of `target` in the document (its first place, if aliases repeat it)."""
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in reversed(node.value):
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                stack.extend([(value_node, _join(path, key)), (key_node, _join(path, key))])
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, _join(path, index)) for index, item in reversed(list(enumerate(node.value))))
    return ""


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


def _describe(error: yaml.MarkedYAMLError) -> str:
    """`while parsing ... (line 3): expected ..., but found ... at line 4, column 16`."""
    context = ""
    if error.context:
        where = f" (line {error.context_mark.line + 1})" if error.context_mark else ""
        context = f"{error.context}{where}: "
    mark = error.problem_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return _one_line(f"{context}{error.problem}{where}")


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_line(error: BaseException | str) -> str:
    return " ".join(str(error).split())
