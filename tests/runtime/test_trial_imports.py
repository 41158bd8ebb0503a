"""A trial process imports only the trial side of hpt: `hpt_core.init()` pulls in no validation, storage, search
method or numerical library, so a trial starts fast (measured in docs/benchmarks.md, trial import)."""

import io
import json
import re
from pathlib import Path

from real_experiments import ExperimentFolder

from hpt_core.progress import ProgressView

TRIAL = """
import json, os, sys
import hpt_core
import helpers  # the trial's own module: never preloaded, so edits to it are seen

ctx = hpt_core.init()
heavy = ("pydantic", "sqlalchemy", "numpy", "yaml", "pluggy", "hpt_core.searchers", "hpt_core.config",
         "hpt_core.storage", "hpt_core.controller", "hpt_core.plugins", "http.server", "http.client")
with open(os.environ["TRIAL_LOG"], "a") as log:
    log.write(json.dumps({"event": "start", "trial_id": ctx.trial_id,
                          "imported": [name for name in heavy if name in sys.modules]}) + "\\n")
for target in ctx.targets():
    ctx.report_validation({"val_loss": ctx.get_hparam("x")}, batches=target)
"""


def test_a_trial_s_init_imports_no_validation_storage_searcher_or_numpy_and_the_progress_line_counts_starts(
        tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "trial.py").write_text(TRIAL)
    (model_dir / "helpers.py").write_text("VALUE = 1\n")
    output = io.StringIO()
    view = ProgressView(experiment_id=1, metric="val_loss", stream=output)
    run = ExperimentFolder(tmp_path, model_dir).run(
        {"name": "random", "max_length": 1, "max_trials": 2, "max_concurrent_trials": 1},
        {"x": {"type": "double", "minval": 0, "maxval": 1}}, on_tick=view.update)
    assert run.state == "COMPLETED"
    assert re.search(r"^experiment 1: .* \| \d warm, \d cold starts \| ", output.getvalue(), re.MULTILINE)
    starts = run.log("start")
    assert [entry["imported"] for entry in starts] == [[], []]
    experiment_dir = Path(run.storage.get_experiment(run.experiment_id).experiment_dir)
    recorded = json.loads((experiment_dir / "trial-imports.json").read_text())
    assert "hpt_core" in recorded and "pydantic" not in recorded and "helpers" not in recorded
