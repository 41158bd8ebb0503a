"""Packaging rules: hpt_core stays framework-free and its layers point one way."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
FRAMEWORKS = ["torch", "lightning", "pytorch_lightning", "tensorflow", "keras", "ray", "optuna"]


def test_importing_hpt_core_pulls_in_no_ml_framework():
    code = (
        "import sys, json, hpt_core, hpt_core.cli, hpt_core.searchers;"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []


def test_layers_contract_holds():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is installed with the dev extra"
    result = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_ci_runs_the_readme_test_command_as_written():
    readme = (ROOT / "README.md").read_text().splitlines()
    command = readme[readme.index("<!-- command-2 -->") + 2]
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci_lines[-1] == command
