"""The code in README.md and docs/coming-from-*.md runs as written, so the docs cannot drift from hpt.

Each page's fenced blocks, in order:

- a `python` or `yaml` block whose first line is `# NAME` is written to NAME in a folder of the page's own
  (a later block of the same name replaces it), so that the page's commands run on them;
- a `bash` block runs line by line in that folder, with this venv's `hpt` on PATH and a fresh HPT_HOME.

A comment `<!-- snippet: MODE: REASON -->` before a block (other lines may come between) changes that:

- `skip: REASON`: not run, for what this machine cannot have (a Determined or Ray cluster) or a long run
  checked elsewhere; the reason is required;
- `synopsis: REASON`: a bash block of command forms with placeholders: each `hpt` line's command must exist
  (hpt's parser answers `hpt ... --help`) and take every `--option` the line uses;
- `smoke: REASON`: a bash block whose `hpt experiment create` runs are long: those lines run with `--test` (one
  short trial and a checkpoint restore of the page's own files), the lines that read their results are checked
  as in a synopsis, the others run as written.

docs/plugins.md shows the test plugin package's modules (tests/plugin_fixture) verbatim; they must stay equal.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from hpt_core.cli import build_parser

ROOT = Path(__file__).parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("coming-from-*.md"))]
MARKER = re.compile(r"<!-- snippet: (skip|synopsis|smoke): (.+?) -->")
NAMED = re.compile(r"# ([\w.-]+\.(?:py|yaml))$")
RESULT_READERS = ("experiment describe", "trial logs", "trial describe")


@dataclass
class Block:
    language: str
    lines: list[str]
    mode: str | None
    reason: str | None
    line_number: int

    @property
    def file_name(self) -> str | None:
        match = NAMED.match(self.lines[0]) if self.lines else None
        return match[1] if match and self.language in ("python", "yaml") else None


def blocks(page: Path) -> list[Block]:
    """The page's fenced code blocks, each with the snippet marker that came before it (if any)."""
    found, marker, current = [], None, None
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        if current is not None:
            if line.startswith("```"):
                found.append(current)
                current = None
            else:
                current.lines.append(line)
        elif line.startswith("```"):
            mode, reason = marker.groups() if marker else (None, None)
            current, marker = Block(line[3:].strip(), [], mode, reason, number), None
        elif MARKER.search(line):
            marker = MARKER.search(line)
    return found


def hpt_lines(block: Block) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in block.lines if line.split("#", 1)[0].strip()]


def command_help(words: list[str]) -> str | None:
    """`hpt WORDS --help` as the parser prints it, or None when WORDS is not a command."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(io.StringIO()):
        try:
            build_parser().parse_args([*words, "--help"])
        except SystemExit as exit:
            return output.getvalue() if exit.code == 0 else None
    return None


def check_synopsis(line: str) -> None:
    """`hpt WORDS... --help` answers, and knows every `--option` of the line (`a|b` words: each of them)."""
    words = shlex.split(line.replace("[", " ").replace("]", " "))
    assert words[0] == "hpt", f"a synopsis line runs hpt: {line!r}"
    command = []
    for word in words[1:]:
        if not re.fullmatch(r"[a-z][a-z|-]*", word):
            break
        command.append(word)
    for choice in command[-1].split("|") if command and "|" in command[-1] else [None]:
        subcommand = command[:-1] + [choice] if choice else command
        shown = command_help(subcommand)
        assert shown is not None, f"{line!r}: `hpt {' '.join(subcommand)}` is not a command"
        for option in re.findall(r"(--[a-z][a-z-]*)", line):
            assert option in shown, f"{line!r}: `hpt {' '.join(subcommand)}` has no {option}"


_smoke_tested: set[str] = set()
"""The trial scripts (their files' content) that `--test` has run already: pages that share them run it once."""


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_the_pages_code_runs_as_written(page, tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    environment = {**os.environ, "HPT_HOME": str(tmp_path / "home"),
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    environment.pop("HPT_STORAGE", None)

    def run(line: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(line, shell=True, cwd=folder, env=environment, capture_output=True, text=True,
                              timeout=600)

    for block in blocks(page):
        where = f"{page.name}:{block.line_number}"
        assert block.mode is None or block.reason.strip(), f"{where}: a snippet marker needs its reason"
        if block.mode == "skip":
            continue
        if block.file_name is not None:
            (folder / block.file_name).write_text("\n".join(block.lines[1:]) + "\n")
        elif block.mode == "synopsis":
            for line in hpt_lines(block):
                check_synopsis(line)
        elif block.language == "bash":
            for line in hpt_lines(block):
                if block.mode == "smoke" and any(reader in line for reader in RESULT_READERS):
                    check_synopsis(line)
                    continue
                if block.mode == "smoke" and line.startswith("hpt experiment create "):
                    scripts = "".join(path.read_text() for path in sorted(folder.glob("*.py")))
                    if scripts in _smoke_tested:
                        check_synopsis(line)
                        continue
                    _smoke_tested.add(scripts)
                    line = line.replace("hpt experiment create ", "hpt experiment create --test ", 1)
                result = run(line)
                assert result.returncode == 0, f"{where}: `{line}` failed\n{result.stdout}{result.stderr}"


def test_the_plugin_guide_shows_the_test_plugin_package_as_it_is():
    prefix = "# tests/plugin_fixture/"
    shown = {block.lines[0].removeprefix(prefix): "\n".join(block.lines[1:]) + "\n"
             for block in blocks(ROOT / "docs" / "plugins.md") if block.lines and block.lines[0].startswith(prefix)}
    fixture = ROOT / "tests" / "plugin_fixture"
    assert set(shown) == {path.name for path in fixture.glob("*.py")}
    for name, text in shown.items():
        assert text == (fixture / name).read_text(), f"docs/plugins.md shows an old {name}"
