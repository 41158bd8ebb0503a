"""Mechanically mutated experiment files: accepted and normalised, or refused naming a field that is there.

Every example experiment file (examples/**.yaml) and every file in tests/experiment_files/ is
mutated the ways people and tools break files: a value swapped for a mapping, list, set, bool,
null, huge number or string; keys added, deleted, misspelt and duplicated; YAML tags. Each result
must be accepted, with a normalised config that is plain data and reads back the same once written
out as `hpt config check` prints it, or refused with a `ConfigError` whose every problem names a
path that is in the file (or, for a field that is missing, the path of its mapping). Nothing else
may escape `load_config`, and each case stays within a generous time and memory bound (a guard
against blow-ups, not a benchmark).

The mutations work on the composed YAML node tree, which can hold what a Python dict cannot
(duplicate keys, tags), and are written back with PyYAML's serializer.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import resource
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpt_core import ConfigError, load_config
from hpt_core.safe_yaml import dump_yaml, load_yaml
from hpt_core.storage.json_values import encode_json

ROOT = Path(__file__).resolve().parent.parent
SEED_FILES = sorted([*ROOT.glob("examples/**/*.yaml"), *(ROOT / "tests" / "experiment_files").glob("*.yaml")])
CASES_PER_FILE = 250
MAX_SECONDS_PER_CASE = 10.0
MAX_PEAK_GROWTH = 256 * 1024 * 1024
MAX_ADDRESS_SPACE_GROWTH = 1024 * 1024 * 1024

STANDARD = "tag:yaml.org,2002:"
TAGS = [f"{STANDARD}{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map", "set", "binary",
                                         "timestamp", "omap", "python/object/apply:os.system")] + ["!local"]
KEY_NAMES = ["extra", "type", "count", "default", "val", "vals", "base", "class", "name", "metric", "<<", "1", ""]
STRINGS = ["", "x", "yes", "null", "1e5", "0x1F", "2024-05-01", "a b", "a.b", "ünï cödé", "- a", ": b", "#c", "'q'",
           "~", "x" * 300]
HUGE_NUMBERS = [10**400, -(10**30), 2**63, 2**64, 1e308, -1e308, 5e-324, float("inf"), float("nan")]


Draw = Callable[[st.SearchStrategy[Any]], Any]


def scalar(value: Any) -> yaml.Node:
    """`value` as PyYAML represents it (a mapping or list becomes a tree of nodes)."""
    return yaml.SafeDumper(io.StringIO()).represent_data(value)


REPLACEMENTS: dict[str, Callable[[Draw], yaml.Node]] = {
    "mapping": lambda draw: scalar({draw(st.sampled_from(KEY_NAMES)): draw(st.integers(-3, 3))}),
    "list": lambda draw: scalar(draw(st.lists(st.integers(-3, 3), max_size=3))),
    "set": lambda draw: yaml.MappingNode(f"{STANDARD}set", [(scalar("a"), scalar(None)), (scalar("b"), scalar(None))]),
    "bool": lambda draw: scalar(draw(st.booleans())),
    "null": lambda draw: scalar(None),
    "huge number": lambda draw: scalar(draw(st.sampled_from(HUGE_NUMBERS))),
    "small number": lambda draw: scalar(draw(st.sampled_from([0, -1, 1, 0.5, -0.0, 3.0]))),
    "string": lambda draw: scalar(draw(st.sampled_from(STRINGS))),
}


@functools.cache
def seed_tree(path: Path) -> yaml.Node:
    """The file's node tree, without the marks that tie it to the text (so that copies are cheap)."""
    return clone(yaml.compose(path.read_text(), Loader=yaml.SafeLoader))


def clone(node: yaml.Node) -> yaml.Node:
    """A copy of the tree with its tags and scalar styles, without marks (positions in the text)."""
    if isinstance(node, yaml.MappingNode):
        return yaml.MappingNode(node.tag, [(clone(key), clone(value)) for key, value in node.value])
    if isinstance(node, yaml.SequenceNode):
        return yaml.SequenceNode(node.tag, [clone(item) for item in node.value])
    return yaml.ScalarNode(node.tag, node.value, style=node.style)


def places(node: yaml.Node) -> list[tuple[yaml.Node, int, int]]:
    """Every slot that holds a node: (container, index, 0 for a key / 1 for a value or list item)."""
    found = []
    for container in walk(node):
        if isinstance(container, yaml.MappingNode):
            found += [(container, index, side) for index in range(len(container.value)) for side in (0, 1)]
        elif isinstance(container, yaml.SequenceNode):
            found += [(container, index, 1) for index in range(len(container.value))]
    return found


def walk(node: yaml.Node) -> list[yaml.Node]:
    nodes = [node]
    if isinstance(node, yaml.MappingNode):
        nodes += [inner for key, value in node.value for inner in (*walk(key), *walk(value))]
    elif isinstance(node, yaml.SequenceNode):
        nodes += [inner for item in node.value for inner in walk(item)]
    return nodes


def get(place: tuple[yaml.Node, int, int]) -> yaml.Node:
    container, index, side = place
    return container.value[index][side] if isinstance(container, yaml.MappingNode) else container.value[index]


def put(place: tuple[yaml.Node, int, int], node: yaml.Node) -> None:
    container, index, side = place
    if isinstance(container, yaml.SequenceNode):
        container.value[index] = node
    else:
        pair = list(container.value[index])
        pair[side] = node
        container.value[index] = tuple(pair)


def misspell(text: str, draw: Draw) -> str:
    """`text` with one typing mistake: a letter dropped, added or swapped, or caps lock on."""
    position = draw(st.integers(0, len(text)))
    edit = draw(st.sampled_from(["drop", "insert", "swap", "case"]))
    if edit == "drop" and text:
        return text[: max(position - 1, 0)] + text[position:]
    if edit == "swap" and position >= 2:
        return text[: position - 2] + text[position - 1] + text[position - 2] + text[position:]
    if edit == "case":
        return text.upper()
    return text[:position] + draw(st.sampled_from("xe_.r1 ")) + text[position:]


def mutate(root: yaml.Node, draw: Draw) -> yaml.Node:
    """One mutation; returns the (possibly new) root."""
    operation = draw(st.sampled_from(["swap", "swap", "swap", "tag", "add", "delete", "misspell", "duplicate"]))
    if operation == "swap" and draw(st.integers(0, 30)) == 0:
        return REPLACEMENTS[draw(st.sampled_from(sorted(REPLACEMENTS)))](draw)
    slots = places(root)
    if not slots:
        return root
    place = slots[draw(st.integers(0, len(slots) - 1))]
    container, index, _ = place
    if operation == "swap":
        put(place, REPLACEMENTS[draw(st.sampled_from(sorted(REPLACEMENTS)))](draw))
    elif operation == "tag":
        get(place).tag = draw(st.sampled_from(TAGS))
    elif not isinstance(container, yaml.MappingNode):
        return root
    elif operation == "add":
        name = draw(st.sampled_from(KEY_NAMES))
        container.value.insert(index, (scalar(name), REPLACEMENTS[draw(st.sampled_from(sorted(REPLACEMENTS)))](draw)))
    elif operation == "delete":
        del container.value[index]
    elif operation == "misspell":
        key = container.value[index][0]
        if isinstance(key, yaml.ScalarNode):
            put((container, index, 0), yaml.ScalarNode(key.tag, misspell(key.value, draw)))
    else:
        key, value = container.value[index]
        twin = value if draw(st.booleans()) else REPLACEMENTS[draw(st.sampled_from(sorted(REPLACEMENTS)))](draw)
        container.value.insert(draw(st.integers(index + 1, len(container.value))), (clone(key), twin))
    return root


def written_paths(root: yaml.Node) -> set[str]:
    """Every dotted path in the file, keys as written."""
    paths = {""}
    stack = [(root, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = join(path, key.value if isinstance(key, yaml.ScalarNode) else "?")
                paths.add(name)
                stack.append((value, name))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                paths.add(join(path, index))
                stack.append((item, join(path, index)))
    return paths


def read_paths(text: str) -> set[str]:
    """Every dotted path in the file, keys as read (`1.0`, `yes`: a number, a bool)."""
    try:
        return data_paths(load_yaml(text), "")
    except ConfigError:
        return set()


def data_paths(data: Any, path: str) -> set[str]:
    found = {path}
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for key, value in items:
        found |= data_paths(value, join(path, key))
    return found


def join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def check(text: str, root: yaml.Node) -> None:
    try:
        config = load_config(text)
    except ConfigError as error:
        paths = written_paths(root)
        for problem in error.problems:
            named = {problem.path, problem.path.rpartition(".")[0]}
            if not named & paths:
                paths |= read_paths(text)
            assert named & paths, f"{problem} names no path of the file:\n{text}"
        return
    normalised = config.to_dict()
    encode_json(normalised, "the normalised config")
    again = load_config(dump_yaml(normalised)).to_dict()
    assert json.dumps(again, sort_keys=True) == json.dumps(normalised, sort_keys=True), text


@contextlib.contextmanager
def bounded_address_space(extra_bytes: int) -> Iterator[None]:
    """Cap the address space `extra_bytes` above its size now, so that a runaway case fails instead of
    exhausting the machine (`MemoryError`); the cap is lifted afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    size = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    cap = size + extra_bytes if hard == resource.RLIM_INFINITY else min(size + extra_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def peak_resident_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.fixture(scope="module")
def memory_guard() -> Iterator[int]:
    """The peak resident size before the cases run; cases may raise it by at most MAX_PEAK_GROWTH."""
    with bounded_address_space(MAX_ADDRESS_SPACE_GROWTH):
        yield peak_resident_bytes()


@pytest.mark.parametrize("seed_file", SEED_FILES, ids=lambda path: str(path.relative_to(ROOT)))
@settings(max_examples=CASES_PER_FILE, derandomize=True, database=None, deadline=None, print_blob=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_mutated_experiment_file_is_normalised_or_refused_naming_its_fields(
    seed_file: Path, data: Any, memory_guard: int
) -> None:
    root = clone(seed_tree(seed_file))
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        root = mutate(root, data.draw)
    text = yaml.serialize(root, Dumper=yaml.SafeDumper)
    started = time.process_time()
    check(text, root)
    assert time.process_time() - started < MAX_SECONDS_PER_CASE, f"a case ran away:\n{text}"
    assert peak_resident_bytes() - memory_guard < MAX_PEAK_GROWTH, f"a case used too much memory:\n{text}"


def test_every_seed_file_is_valid_as_it_is() -> None:
    assert len(SEED_FILES) >= 10
    for path in SEED_FILES:
        load_config(path)
