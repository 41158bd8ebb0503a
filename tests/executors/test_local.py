"""The local executor: trials as real process groups, each in its own working directory."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpt_core.executors import (
    NO_GPUS_NOTICE,
    ExecutorError,
    LaunchSpec,
    LocalExecutor,
    ResourcesUnavailable,
    TrialExit,
)
from hpt_core.executors.resources import THREAD_LIMIT_VARIABLES, detect_gpus, threads_per_trial

PYTHON = shlex.quote(sys.executable)
TIMEOUT_SECONDS = 15.0

# A trial's process tree: `main` starts a `plain` grandchild and a `stubborn` one that survives
# SIGTERM (noting that it got it); `main-exits` starts `stubborn` and ends on its own. Each
# process writes its pid to `pid-<role>` in the working directory once it is ready.
TREE_SCRIPT = """
import os, signal, subprocess, sys, time

role = sys.argv[1]

def ready(name):
    with open(f"pid-{name}.tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(f"pid-{name}.tmp", f"pid-{name}")

def start(child):
    subprocess.Popen([sys.executable, __file__, child])
    while not os.path.exists(f"pid-{child}"):
        time.sleep(0.01)

if role == "stubborn":
    signal.signal(signal.SIGTERM, lambda signum, frame: open("stubborn-got-sigterm", "w").close())
if role == "main":
    start("plain")
    start("stubborn")
if role == "main-exits":
    start("stubborn")
    ready(role)
    sys.exit(0)
ready(role)
while True:
    time.sleep(0.05)
"""

# Writes the environment it sees to env.json, then waits until a file `release` appears.
ENV_SCRIPT = """
import json, os, time
with open("env.json.tmp", "w") as handle:
    json.dump(dict(os.environ), handle)
os.replace("env.json.tmp", "env.json")
while not os.path.exists("release"):
    time.sleep(0.01)
"""


def python(code: str) -> str:
    return f"{PYTHON} -c {shlex.quote(code)}"


def wait_until(condition, what: str):
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not (result := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)
    return result


def wait_for_exits(executor: LocalExecutor, count: int) -> list[TrialExit]:
    exits: list[TrialExit] = []

    def enough():
        exits.extend(executor.poll())
        return len(exits) >= count

    wait_until(enough, f"{count} trial exit(s)")
    return sorted(exits, key=lambda ended: (ended.trial_id, ended.attempt))


def read_when_written(path: Path) -> str:
    return wait_until(lambda: path.exists() and path.read_text(), str(path))


def alive(pid: int) -> bool:
    """Whether `pid` runs: it exists and is not a zombie (PID 1 here does not reap orphans)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] not in ("Z", "X")


def snapshot(directory: Path, skip: Path | None = None) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): b"<dir>" if path.is_dir() else path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if skip is None or not path.is_relative_to(skip)
    }


@pytest.fixture
def model_dir(tmp_path):
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "tree.py").write_text(TREE_SCRIPT)
    (directory / "env.py").write_text(ENV_SCRIPT)
    return directory


@pytest.fixture
def make_executor(tmp_path, model_dir):
    executors = []

    def make(**options) -> LocalExecutor:
        options = {"max_concurrent": 4, "cpu_count": 8, **options}
        experiment_dir = options.pop("experiment_dir", tmp_path / "experiment")
        executors.append(LocalExecutor(experiment_dir, model_dir, **options))
        return executors[-1]

    yield make
    for executor in executors:
        executor.shutdown(grace_seconds=0)


@pytest.fixture
def executor(make_executor):
    return make_executor()


@pytest.fixture
def launch(tmp_path):
    def launch_trial(executor, trial_id, command, attempt=1, env=None, slots=1):
        spec = LaunchSpec(
            trial_id=trial_id,
            attempt=attempt,
            command=command,
            env=env or {},
            log_path=str(tmp_path / "logs" / f"trial-{trial_id}.log"),
            slots=slots,
        )
        executor.launch(spec)
        return spec

    return launch_trial


def trial_environment(executor, trial_id) -> dict[str, str]:
    return json.loads(read_when_written(executor.workdir(trial_id) / "env.json"))


def release(executor, trial_id):
    (executor.workdir(trial_id) / "release").touch()


def tree_pids(executor, trial_id, roles=("main", "plain", "stubborn")) -> list[int]:
    return [int(read_when_written(executor.workdir(trial_id) / f"pid-{role}")) for role in roles]


# --- environment ----------------------------------------------------------------------------------


def test_trial_sees_hpt_and_experiment_variables_on_top_of_the_controllers_environment(
    executor, launch, monkeypatch
):
    monkeypatch.setenv("FROM_CONTROLLER", "yes")
    monkeypatch.setenv("SHARED", "controller")
    launch(executor, 7, f"{PYTHON} env.py", env={"HPT_TRIAL_ID": "7", "SHARED": "experiment"})
    release(executor, 7)
    seen = trial_environment(executor, 7)
    assert (seen["HPT_TRIAL_ID"], seen["SHARED"], seen["FROM_CONTROLLER"]) == ("7", "experiment", "yes")


def test_threads_are_shared_out_among_the_trials_that_run_at_once(make_executor, launch, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "64")
    executor = make_executor(cpu_count=8, max_concurrent=4)
    launch(executor, 1, f"{PYTHON} env.py")
    release(executor, 1)
    seen = trial_environment(executor, 1)
    assert {variable: seen[variable] for variable in THREAD_LIMIT_VARIABLES} == dict.fromkeys(
        THREAD_LIMIT_VARIABLES, "2"
    )


def test_a_thread_limit_in_the_experiments_variables_wins(executor, launch):
    launch(executor, 1, f"{PYTHON} env.py", env={"OMP_NUM_THREADS": "3"})
    release(executor, 1)
    seen = trial_environment(executor, 1)
    assert (seen["OMP_NUM_THREADS"], seen["MKL_NUM_THREADS"]) == ("3", "2")


@pytest.mark.parametrize(
    "cores, limits, expected",
    [
        (8, [4, 0], 2),  # max_concurrent 4
        (8, [3, 0], 2),  # cores that do not divide evenly are left idle, never oversubscribed
        (8, [0, 2], 4),  # unlimited concurrency but only two trials
        (8, [16, 3], 2),
        (2, [16, 0], 1),  # never fewer than one thread
        (8, [0, 0], 1),  # nothing bounds the trials running at once: one thread per core
    ],
)
def test_threads_per_trial(cores, limits, expected):
    assert threads_per_trial(cores, limits) == expected


def test_the_gpus_bound_how_many_trials_share_the_cores(make_executor, launch):
    executor = make_executor(cpu_count=8, max_concurrent=16, gpus=["0", "1"])
    launch(executor, 1, f"{PYTHON} env.py", slots=1)
    release(executor, 1)
    assert trial_environment(executor, 1)["OMP_NUM_THREADS"] == "4"


# --- GPUs -----------------------------------------------------------------------------------------


def test_without_gpus_trials_run_on_cpus_and_the_user_is_told_once(make_executor, launch, monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "no-nvidia-smi-here"))
    executor = make_executor()
    for trial_id in (1, 2):
        assert executor.can_launch(LaunchSpec(trial_id, 1, "true", {}, str(tmp_path / "unused.log"), slots=4))
        launch(executor, trial_id, f"{PYTHON} env.py", slots=4)
        release(executor, trial_id)
    assert [trial_environment(executor, trial_id)["CUDA_VISIBLE_DEVICES"] for trial_id in (1, 2)] == ["", ""]
    assert executor.notices() == [NO_GPUS_NOTICE]
    assert executor.notices() == []


def test_each_trial_holds_gpus_of_its_own_until_it_ends(make_executor, launch, tmp_path, monkeypatch):
    monkeypatch.setenv("HPT_WARM_START", "0")  # GPUs alone decide can_launch (no interpreter to wait for)
    executor = make_executor(gpus=["0", "1"])
    launch(executor, 1, f"{PYTHON} env.py")
    launch(executor, 2, f"{PYTHON} env.py")
    first, second = (trial_environment(executor, trial_id)["CUDA_VISIBLE_DEVICES"] for trial_id in (1, 2))
    assert {first, second} == {"0", "1"}

    third = LaunchSpec(3, 1, f"{PYTHON} env.py", {}, str(tmp_path / "trial-3.log"))
    assert not executor.can_launch(third)
    with pytest.raises(ResourcesUnavailable, match="trial 3 needs 1 GPU"):
        executor.launch(third)

    release(executor, 1)
    wait_for_exits(executor, 1)
    assert executor.can_launch(third)
    executor.launch(third)
    assert trial_environment(executor, 3)["CUDA_VISIBLE_DEVICES"] == first
    assert executor.notices() == []


def test_a_trial_may_take_several_gpus_or_none(make_executor, launch):
    executor = make_executor(gpus=["0", "1"])
    launch(executor, 1, f"{PYTHON} env.py", slots=2)
    launch(executor, 2, f"{PYTHON} env.py", slots=0)
    assert trial_environment(executor, 1)["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert trial_environment(executor, 2)["CUDA_VISIBLE_DEVICES"] == ""


def test_a_trial_needing_more_gpus_than_the_machine_has_is_refused_not_queued(make_executor, tmp_path):
    executor = make_executor(gpus=["0", "1"])
    spec = LaunchSpec(1, 1, "true", {}, str(tmp_path / "trial-1.log"), slots=3)
    for attempt_to_run in (executor.can_launch, executor.launch):
        with pytest.raises(ExecutorError, match="needs 3 GPUs .* this machine has 2: 0, 1") as raised:
            attempt_to_run(spec)
        assert not isinstance(raised.value, ResourcesUnavailable)


@pytest.mark.parametrize(
    "visible, expected",
    [("2,3", ["2", "3"]), ("", []), ("0,-1,1", ["0"]), ("GPU-8f1c, GPU-77aa", ["GPU-8f1c", "GPU-77aa"])],
)
def test_cuda_visible_devices_decides_which_gpus_are_used(visible, expected):
    assert detect_gpus({"CUDA_VISIBLE_DEVICES": visible, "PATH": ""}) == expected


@pytest.mark.parametrize(
    "listing, status, expected",
    [
        ("GPU 0: A100 (UUID: GPU-1)\n  MIG 1g.5gb Device 0: (UUID: MIG-1)\nGPU 1: A100 (UUID: GPU-2)", 0, ["0", "1"]),
        ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", 9, []),
    ],
)
def test_nvidia_smi_counts_the_gpus(tmp_path, listing, status, expected):
    nvidia_smi = tmp_path / "bin" / "nvidia-smi"
    nvidia_smi.parent.mkdir()
    nvidia_smi.write_text(f"#!/bin/sh\ncat <<'EOF'\n{listing}\nEOF\nexit {status}\n")
    nvidia_smi.chmod(0o755)
    assert detect_gpus({"PATH": str(nvidia_smi.parent)}) == expected


def test_no_nvidia_smi_means_no_gpus(tmp_path):
    assert detect_gpus({"PATH": str(tmp_path)}) == []


# --- logs -----------------------------------------------------------------------------------------


def test_stdout_and_stderr_of_every_attempt_land_in_the_trials_log(executor, launch, tmp_path):
    for attempt in (1, 2):
        code = f"import sys; print('out {attempt}'); print('err {attempt}', file=sys.stderr)"
        spec = launch(executor, 1, python(code), attempt=attempt)
        wait_for_exits(executor, 1)
    header = r"=== attempt {} started \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ ===\nhpt: cold start: the entrypoint is not a plain Python script \(.*\)\n"
    expected = header.format(1) + "out 1\nerr 1\n" + header.format(2) + "out 2\nerr 2\n"
    assert re.fullmatch(expected, Path(spec.log_path).read_text())


# --- working directories --------------------------------------------------------------------------


def test_each_trial_writes_in_its_own_workdir_and_the_model_dir_is_untouched(
    make_executor, launch, model_dir, monkeypatch
):
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    (model_dir / "helper.py").write_text("GREETING = 'hello'\n")
    (model_dir / "train.py").write_text(
        "import os, pathlib, helper\n"
        "trial = os.environ['HPT_TRIAL_ID']\n"
        "with open('out.txt', 'a') as out:\n"
        "    out.write(f'{helper.GREETING} from {trial}\\n')\n"
        "pathlib.Path('lightning_logs/version_0').mkdir(parents=True, exist_ok=True)\n"
        "pathlib.Path('data/derived.csv').write_text(pathlib.Path('data/train.csv').read_text() + trial)\n"
    )
    (model_dir / "data").mkdir()
    (model_dir / "data" / "train.csv").write_text("x,y\n")
    for skipped in (".git", "__pycache__", ".venv"):
        (model_dir / skipped).mkdir()
        (model_dir / skipped / "inside").write_text("not for trials")
    experiment_dir = model_dir / "experiment"
    before = snapshot(model_dir)
    executor = make_executor(experiment_dir=experiment_dir)

    for trial_id in (1, 2):
        launch(executor, trial_id, f"{PYTHON} train.py", env={"HPT_TRIAL_ID": str(trial_id)})
    assert [ended.returncode for ended in wait_for_exits(executor, 2)] == [0, 0]
    launch(executor, 1, f"{PYTHON} train.py", attempt=2, env={"HPT_TRIAL_ID": "1"})
    assert wait_for_exits(executor, 1)[0].returncode == 0

    assert snapshot(model_dir, skip=experiment_dir) == before
    first, second = executor.workdir(1), executor.workdir(2)
    assert (first / "out.txt").read_text() == "hello from 1\nhello from 1\n"  # a restart reuses the workdir
    assert (second / "out.txt").read_text() == "hello from 2\n"
    assert (second / "data" / "derived.csv").read_text() == "x,y\n2"
    assert (second / "lightning_logs" / "version_0").is_dir()
    assert (first / "train.py").resolve() == (model_dir / "train.py").resolve()
    assert sorted(path.name for path in first.iterdir()) == [
        "data", "env.py", "helper.py", "lightning_logs", "out.txt", "train.py", "tree.py"
    ]


def test_the_model_dir_is_listed_once_so_later_trials_link_the_same_files(make_executor, launch, model_dir):
    (model_dir / "train.py").write_text("print(open('notes.txt').read())\n")
    (model_dir / "notes.txt").write_text("first")
    executor = make_executor(experiment_dir=model_dir / "experiment")
    launch(executor, 1, f"{PYTHON} train.py")
    assert wait_for_exits(executor, 1)[0].returncode == 0
    (model_dir / "added.txt").write_text("added after the first launch")
    (model_dir / "notes.txt").write_text("changed")
    spec = launch(executor, 2, f"{PYTHON} train.py")
    assert wait_for_exits(executor, 1)[0].returncode == 0
    assert not (executor.workdir(2) / "added.txt").exists()
    assert Path(spec.log_path).read_text().splitlines()[-1] == "changed"  # linked, so changes are seen


# --- exits ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, returncode",
    [
        ("pass", 0),
        ("import sys; sys.exit(3)", 3),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -signal.SIGKILL),
    ],
    ids=["success", "failure", "killed"],
)
def test_every_exit_is_reported_once_with_its_status(executor, launch, code, returncode):
    launch(executor, 5, python(code), attempt=2)
    assert wait_for_exits(executor, 1) == [TrialExit(trial_id=5, attempt=2, returncode=returncode)]
    assert executor.poll() == []
    assert executor.running() == set()


def test_running_lists_the_trials_with_a_live_process(executor, launch):
    launch(executor, 1, f"{PYTHON} env.py")
    launch(executor, 2, python("pass"))
    wait_for_exits(executor, 1)
    assert executor.running() == {1}


# --- stopping -------------------------------------------------------------------------------------


def test_terminate_ends_the_whole_process_group_killing_what_ignores_sigterm_after_the_grace(executor, launch):
    launch(executor, 1, f"{PYTHON} tree.py main")
    pids = tree_pids(executor, 1)
    executor.terminate(1, grace_seconds=0.5)
    assert wait_for_exits(executor, 1) == [TrialExit(1, 1, -signal.SIGTERM)]
    assert (executor.workdir(1) / "stubborn-got-sigterm").exists()
    assert [pid for pid in pids if alive(pid)] == []


def test_processes_left_behind_by_a_command_that_ended_are_killed(executor, launch):
    launch(executor, 1, f"{PYTHON} tree.py main-exits")
    _main, stubborn = tree_pids(executor, 1, roles=("main-exits", "stubborn"))
    assert wait_for_exits(executor, 1) == [TrialExit(1, 1, 0)]
    assert not alive(stubborn)


def test_terminating_a_trial_that_is_not_running_does_nothing(executor, launch):
    launch(executor, 1, python("pass"))
    wait_for_exits(executor, 1)
    executor.terminate(1)
    executor.terminate(99)
    assert executor.poll() == []


def test_a_trial_cannot_start_again_while_an_earlier_attempt_lives(executor, launch):
    launch(executor, 1, f"{PYTHON} env.py")
    with pytest.raises(ExecutorError, match=r"trial 1 still has processes of attempt 1; call ensure_stopped\(1\)"):
        launch(executor, 1, python("pass"), attempt=2)


def test_ensure_stopped_waits_out_a_terminated_trial_before_it_runs_again(executor, launch):
    launch(executor, 1, f"{PYTHON} tree.py main")
    pids = tree_pids(executor, 1)
    executor.terminate(1, grace_seconds=0.3)
    executor.ensure_stopped(1)
    assert [pid for pid in pids if alive(pid)] == []
    launch(executor, 1, python("pass"), attempt=2)
    assert wait_for_exits(executor, 2) == [TrialExit(1, 1, -signal.SIGTERM), TrialExit(1, 2, 0)]


def test_ensure_stopped_stops_leftovers_of_an_attempt_whose_command_has_ended(executor, launch):
    launch(executor, 1, f"echo $$ > shell-pid; {PYTHON} tree.py main-exits")
    _main, stubborn = tree_pids(executor, 1, roles=("main-exits", "stubborn"))
    shell = int(read_when_written(executor.workdir(1) / "shell-pid"))
    wait_until(lambda: not alive(shell), "the trial's command to end")
    assert alive(stubborn)
    executor.ensure_stopped(1, grace_seconds=0.3)
    assert not alive(stubborn)
    assert executor.poll() == [TrialExit(1, 1, 0)]


def test_ensure_stopped_stops_a_running_trial(executor, launch):
    launch(executor, 1, f"{PYTHON} tree.py main")
    pids = tree_pids(executor, 1)
    executor.ensure_stopped(1, grace_seconds=0.3)
    assert [pid for pid in pids if alive(pid)] == []
    assert executor.running() == set()
    assert executor.poll() == [TrialExit(1, 1, -signal.SIGTERM)]


def test_shutdown_leaves_no_process_alive(executor, launch):
    for trial_id in (1, 2, 3):
        launch(executor, trial_id, f"{PYTHON} tree.py main")
    pids = [pid for trial_id in (1, 2, 3) for pid in tree_pids(executor, trial_id)]
    executor.shutdown(grace_seconds=0.3)
    assert [pid for pid in pids if alive(pid)] == []
    assert executor.running() == set()
    assert sorted(ended.trial_id for ended in executor.poll()) == [1, 2, 3]


def test_a_new_executor_stops_what_an_earlier_one_left_and_tells_its_last_attempt(make_executor, launch, tmp_path):
    earlier = make_executor()
    launch(earlier, 1, f"{PYTHON} tree.py main", attempt=3)
    pids = tree_pids(earlier, 1)
    later = make_executor()
    assert later.recover(1, grace_seconds=0.3) == 3
    assert [pid for pid in pids if alive(pid)] == []
    assert later.recover(2) == 0  # never launched


def test_recover_stops_a_trial_whose_launch_was_never_recorded(make_executor, launch):
    earlier = make_executor()
    launch(earlier, 1, f"{PYTHON} tree.py main")
    pids = tree_pids(earlier, 1)
    (earlier.experiment_dir / "trials" / "1" / "process.json").unlink()  # the controller died before recording it
    assert make_executor().recover(1, grace_seconds=0.3) == 0
    assert [pid for pid in pids if alive(pid)] == []


def test_recover_leaves_alone_a_process_that_reuses_a_recorded_group_id(make_executor, launch, tmp_path):
    earlier = make_executor()
    launch(earlier, 1, python("pass"))
    wait_for_exits(earlier, 1)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path,
                                start_new_session=True)
    record = earlier.experiment_dir / "trials" / "1" / "process.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "pgid": stranger.pid}))
    try:
        assert make_executor().recover(1, grace_seconds=0.3) == 1
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


# --- input checks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, message",
    [("slots", -1, "slots must be >= 0"), ("command", "  ", "command must be a non-empty shell command")],
)
def test_launch_spec_rejects_impossible_values(field, value, message):
    fields = {"trial_id": 1, "attempt": 1, "command": "true", "env": {}, "log_path": "trial.log", field: value}
    with pytest.raises(ValueError, match=message):
        LaunchSpec(**fields)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"max_concurrent": -1}, "max_concurrent must be >= 0"),
        ({"max_concurrent": 1, "cpu_count": 0}, "cpu_count must be >= 1"),
        ({"max_concurrent": 1, "max_trials": 0}, "max_trials must be >= 1"),
    ],
)
def test_executor_rejects_impossible_settings(tmp_path, model_dir, options, message):
    with pytest.raises(ValueError, match=message):
        LocalExecutor(tmp_path / "experiment", model_dir, **options)


def test_executor_needs_an_existing_model_dir(tmp_path):
    with pytest.raises(ValueError, match="model_dir must be an existing directory"):
        LocalExecutor(tmp_path / "experiment", tmp_path / "missing", max_concurrent=1)
