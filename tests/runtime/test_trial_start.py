"""What a trial is told at its start (its hyperparameters, restore point, first decision) comes in its environment
at launch, one request fewer; an answer too long for an environment variable is asked for instead."""

from real_experiments import ExperimentFolder

from hpt_core.channel import START_VARIABLE_BYTES

TRIAL = """
import json, os
import hpt_core

ctx = hpt_core.init()
with open(os.environ["TRIAL_LOG"], "a") as log:
    log.write(json.dumps({"event": "start", "handed": "HPT_START" in os.environ,
                          "note": ctx.get_hparam("note"), "restore": ctx.restore is not None}) + "\\n")
for target in ctx.targets():
    ctx.report_validation({"val_loss": ctx.get_hparam("x")}, batches=target)
"""


def run_with_note(tmp_path, note):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "trial.py").write_text(TRIAL)
    return ExperimentFolder(tmp_path, model_dir).run(
        {"name": "random", "max_length": 1, "max_trials": 2, "max_concurrent_trials": 1},
        {"x": {"type": "double", "minval": 0, "maxval": 1}, "note": {"type": "const", "val": note}})


def test_a_trial_is_told_its_start_in_its_environment(tmp_path):
    run = run_with_note(tmp_path, "short")
    assert run.state == "COMPLETED"
    assert [(entry["handed"], entry["note"], entry["restore"]) for entry in run.log("start")] == \
        [(True, "short", False)] * 2


def test_a_start_too_long_for_the_environment_is_asked_for(tmp_path):
    note = "n" * START_VARIABLE_BYTES
    run = run_with_note(tmp_path, note)
    assert run.state == "COMPLETED"
    assert [(entry["handed"], entry["note"]) for entry in run.log("start")] == [(False, note)] * 2
