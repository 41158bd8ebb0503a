"""Hostile experiment files end in a clear error, never a traceback, in bounded time and memory.

Each file is checked by `hpt config check` in a subprocess that may use at most 512 MB of
address space and is killed after 60 s (a guard against hangs, not a timing assertion).
"""

import resource
import subprocess
import sys

import pytest

from hpt_core import ConfigError, load_config

MEMORY_LIMIT = 512 * 1024 * 1024

VALID_TAIL = b"\nsearcher: {name: single, metric: loss, max_length: 3}\n"

BILLION_LAUGHS = b"""
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
hyperparameters: {x: *i}
"""


def merge_key_bomb() -> bytes:
    lines = [b"m0: &m0 {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7}"]
    for level in range(1, 25):
        previous = level - 1
        lines.append(
            f"m{level}: &m{level} {{a: *m{previous}, b: *m{previous}, c: *m{previous}, <<: *m{previous}}}".encode()
        )
    lines.append(b"hyperparameters: {x: *m24}")
    return b"\n".join(lines) + VALID_TAIL


HOSTILE_FILES = {
    "alias bomb": BILLION_LAUGHS + VALID_TAIL,
    "merge-key bomb": merge_key_bomb(),
    "python object tag": b"hyperparameters: !!python/object/apply:os.system ['touch /tmp/hpt-pwned']" + VALID_TAIL,
    "python name tag": b"name: !!python/name:os.system" + VALID_TAIL,
    "NUL byte": b"name: a\x00b" + VALID_TAIL,
    "non-UTF-8 bytes": b"name: caf\xe9" + VALID_TAIL,
    "deep nesting": b"hyperparameters: " + b"[" * 1000 + b"]" * 1000 + VALID_TAIL,
    "deep block nesting": b"hyperparameters:\n" + b"".join(b"  " * i + b"k%d:\n" % i for i in range(1, 1000)) + b"  " * 1000 + b"x: 1\n",
    "huge integer": b"max_restarts: " + b"9" * 5000 + VALID_TAIL,
    "large integer": b"max_restarts: " + b"9" * 4000 + VALID_TAIL,
    "duplicate keys": b"name: a\nname: b" + VALID_TAIL,
    "a list": b"- searcher\n- hyperparameters\n",
    "a scalar": b"just a string\n",
    "several documents": b"name: a" + VALID_TAIL + b"---\nname: b" + VALID_TAIL,
    "empty file": b"",
    "only a comment": b"# nothing here\n",
    "recursive alias": b"a: &a [*a]" + VALID_TAIL,
    "unhashable key": b"? [a, b]\n: 1" + VALID_TAIL,
    "huge float": b"hyperparameters: {x: {type: double, minval: 0, maxval: 1e999}}" + VALID_TAIL,
    "broken syntax": b"searcher: {name: single,\n",
}


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


@pytest.mark.parametrize("name", sorted(HOSTILE_FILES))
def test_hostile_file_is_rejected_with_a_clear_error(name, tmp_path):
    path = tmp_path / "experiment.yaml"
    path.write_bytes(HOSTILE_FILES[name])
    result = subprocess.run(
        [sys.executable, "-m", "hpt_core.cli", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limit_memory,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert str(path) in result.stderr


def test_python_tags_are_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    text = f"name: !!python/object/apply:os.system ['touch {marker}']" + VALID_TAIL.decode()
    with pytest.raises(ConfigError):
        load_config(text)
    assert not marker.exists()


def test_anchors_and_merge_keys_of_normal_size_still_work():
    config = load_config(
        "hyperparameters:\n  a: &lr {type: log, minval: -4, maxval: -1}\n  b: *lr\n"
        "  c: {<<: *lr, base: 2}\n" + VALID_TAIL.decode()
    )
    assert config.space.names == ["a", "b", "c"]
    assert dict(config.space.leaves())[("c",)].base == 2


def problem_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(text)
    (problem,) = caught.value.problems
    return str(problem)


def test_duplicate_keys_are_an_error_naming_the_path_and_both_lines():
    text = "hyperparameters:\n  x: 1\n  y: 2\n  x: 3\n" + VALID_TAIL.decode()
    assert problem_of(text) == ("hyperparameters.x: duplicate key 'x' at line 4 (first at line 2); "
                                "each key may appear once in a mapping")
    assert problem_of("searcher: {name: single, metric: a, metric: b, max_length: 3}\n").startswith(
        "searcher.metric: duplicate key 'metric' at line 1")


def test_keys_merged_in_give_way_to_the_mappings_own_as_yaml_merge_keys_do():
    config = load_config("hyperparameters:\n  a: &lr {type: log, minval: -4, maxval: -1}\n"
                         "  b: {<<: *lr, minval: -3}\n" + VALID_TAIL.decode())
    assert dict(config.space.leaves())[("b",)].minval == -3


@pytest.mark.parametrize(("value", "problem"), [
    ("!!set {a, b}", "hyperparameters.x: the YAML tag '!!set' is not allowed; an experiment file holds plain data "
                     "(allowed tags: !!str, !!int, !!float, !!bool, !!null, !!seq, !!map) (line 2)"),
    ("!!binary aGk=", "hyperparameters.x: the YAML tag '!!binary' is not allowed"),
    ("!!python/name:os.system", "hyperparameters.x: the YAML tag '!!python/name:os.system' is not allowed"),
    ("!local 1", "hyperparameters.x: the YAML tag '!local' is not allowed"),
    ("!!int abc", "hyperparameters.x: cannot read 'abc' as !!int (line 2)"),
    ("!!bool maybe", "hyperparameters.x: cannot read 'maybe' as !!bool (line 2)"),
    ("!!str {a: 1}", "hyperparameters.x: the YAML tag '!!str' does not fit a mapping (line 2)"),
    ("[1, !!map 2]", "hyperparameters.x.1: the YAML tag '!!map' does not fit a scalar (line 2)"),
    ("*undefined", "hyperparameters.x: not valid YAML: found undefined alias 'undefined' at line 2, column 6"),
    ("[1, 2", "hyperparameters.x: not valid YAML: while parsing a flow sequence (line 2): expected ',' or ']'"),
])
def test_yaml_level_problems_name_the_dotted_path_and_the_line(value, problem):
    assert problem_of(f"hyperparameters:\n  x: {value}\nsearcher: {{name: single, metric: a, max_length: 3}}\n"
                      ).startswith(problem)


def test_dates_are_strings_as_in_yaml_1_2():
    config = load_config("description: 2024-05-01\n" + VALID_TAIL.decode())
    assert config.description == "2024-05-01"
