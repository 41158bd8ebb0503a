"""Warm trial starts: trials forked from a server that preloaded their imports, isolated from each other."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpt_core.executors import LaunchSpec, LocalExecutor
from hpt_core.executors.fork_server import python_script_of, third_party_imports

TRIAL = """
import sys
preloaded = "numpy" in sys.modules
import json, os
import numpy
mode = sys.argv[1]
record = {"preloaded": preloaded, "cwd": os.getcwd(), "argv": sys.argv, "trial": os.environ.get("HPT_TRIAL_ID"),
          "pid": os.getpid(), "pgid": os.getpgid(0)}
if mode == "leak":
    hoard = bytearray(300 * 1024 * 1024)
    hoard[::4096] = b"x" * len(hoard[::4096])
with open(os.environ["RECORD"], "w") as handle:
    status = open("/proc/self/status").read()
    record["peak_kb"] = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
    json.dump(record, handle)
if mode == "abort":
    os.abort()
if mode == "exit3":
    sys.exit(3)
if mode == "raise":
    raise ValueError("boom")
if mode == "sleep":
    import time
    time.sleep(60)
print("done", mode)
"""


@pytest.fixture
def model_dir(tmp_path):
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "train.py").write_text(TRIAL)
    (directory / "helpers.py").write_text("VALUE = 1\n")
    return directory


def run_trial(executor, tmp_path, trial_id, mode):
    record = tmp_path / f"record-{trial_id}.json"
    executor.launch(LaunchSpec(trial_id=trial_id, attempt=1, command=f"{sys.executable} train.py {mode}",
                               env={"HPT_TRIAL_ID": str(trial_id), "RECORD": str(record)},
                               log_path=str(tmp_path / f"trial-{trial_id}.log")))
    deadline = time.monotonic() + 60
    while True:
        exits = executor.poll()
        if exits:
            (trial_exit,) = exits
            return trial_exit.returncode, json.loads(record.read_text()) if record.exists() else None
        assert time.monotonic() < deadline
        time.sleep(0.02)


def wait_until_warm(executor, tmp_path):
    run_trial(executor, tmp_path, 100, "ok")  # the first trial starts the server and runs cold
    deadline = time.monotonic() + 60
    while not executor._fork_server.ready:
        assert time.monotonic() < deadline, executor.warm_start_state()
        time.sleep(0.05)


@pytest.mark.parametrize("command, expected", [
    (f"{sys.executable} train.py --lr 0.1", ["train.py", "--lr", "0.1"]),
    ("python3 train.py", ["train.py"]),
    ("python train.py > out.txt", None),
    ("bash run.sh", None),
    ("python -m package.train", None),
    ("python train.py && echo done", None),
])
def test_which_commands_can_start_warm(command, expected):
    assert python_script_of(command) == expected


def test_the_server_preloads_the_scripts_third_party_imports_only(model_dir):
    (model_dir / "train.py").write_text("import json\nimport numpy as np\nfrom helpers import VALUE\n"
                                        "from sqlalchemy import text\nimport not_installed_anywhere\n")
    assert third_party_imports(model_dir / "train.py") == ["numpy", "sqlalchemy"]


def test_warm_trials_run_with_their_own_directory_arguments_environment_and_output(model_dir, tmp_path):
    executor = LocalExecutor(tmp_path / "experiment", model_dir, max_concurrent=2)
    try:
        wait_until_warm(executor, tmp_path)
        returncode, record = run_trial(executor, tmp_path, 1, "ok")
        assert returncode == 0 and record["preloaded"] is True
        assert record["cwd"] == str(executor.workdir(1)) and record["argv"] == ["train.py", "ok"]
        assert record["trial"] == "1" and record["pgid"] == record["pid"]
        assert "done ok" in (tmp_path / "trial-1.log").read_text()
        assert executor.starts == {"warm": 1, "cold": 1}
        assert executor.warm_start_state() == "warm: numpy preloaded"
    finally:
        executor.shutdown()


def test_a_crash_or_a_leak_in_one_warm_trial_does_not_touch_the_next(model_dir, tmp_path):
    executor = LocalExecutor(tmp_path / "experiment", model_dir, max_concurrent=2)
    try:
        wait_until_warm(executor, tmp_path)
        assert run_trial(executor, tmp_path, 1, "abort")[0] == -6
        assert run_trial(executor, tmp_path, 2, "exit3")[0] == 3
        assert run_trial(executor, tmp_path, 3, "raise")[0] == 1
        assert "ValueError: boom" in (tmp_path / "trial-3.log").read_text()
        leak_code, leak = run_trial(executor, tmp_path, 4, "leak")
        after_code, after = run_trial(executor, tmp_path, 5, "ok")
        assert leak_code == 0 and leak["peak_kb"] > 300 * 1024
        assert after_code == 0 and after["preloaded"] and after["peak_kb"] < leak["peak_kb"] - 250 * 1024
        assert executor.starts["warm"] == 5
    finally:
        executor.shutdown()


def test_terminate_ends_a_warm_trial(model_dir, tmp_path):
    executor = LocalExecutor(tmp_path / "experiment", model_dir, max_concurrent=2)
    try:
        wait_until_warm(executor, tmp_path)
        executor.launch(LaunchSpec(trial_id=7, attempt=1, command=f"{sys.executable} train.py sleep",
                                   env={"RECORD": str(tmp_path / "r.json")}, log_path=str(tmp_path / "t7.log")))
        executor.terminate(7, grace_seconds=5)
        deadline = time.monotonic() + 30
        while not (exits := executor.poll()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert exits[0].returncode == -15
    finally:
        executor.shutdown()


def test_trials_start_fresh_when_the_preloaded_imports_start_threads(model_dir, tmp_path, monkeypatch):
    package = tmp_path / "site" / "threadstarter"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("import threading, time\n"
                                         "threading.Thread(target=time.sleep, args=(600,), daemon=True).start()\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    (model_dir / "train.py").write_text("import threadstarter\n" + TRIAL)
    executor = LocalExecutor(tmp_path / "experiment", model_dir, max_concurrent=2)
    try:
        run_trial(executor, tmp_path, 1, "ok")
        deadline = time.monotonic() + 60
        while "thread" not in executor.warm_start_state():
            assert time.monotonic() < deadline, executor.warm_start_state()
            time.sleep(0.05)
        returncode, record = run_trial(executor, tmp_path, 2, "ok")
        assert returncode == 0 and record["preloaded"] is False
        assert executor.starts == {"warm": 0, "cold": 2}
        assert executor.warm_start_state().startswith("cold: the preloaded modules started 1 thread(s)")
    finally:
        executor.shutdown()


def test_the_server_ends_when_its_executor_dies_while_it_is_still_preloading(tmp_path):
    package = tmp_path / "site" / "slowimport"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("import time\ntime.sleep(2)\n")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "train.py").write_text("import slowimport\n")
    executor_process = subprocess.run(  # an executor process that starts the server and dies at once (kill -9)
        [sys.executable, "-c", "import os, sys; from pathlib import Path; "
         "from hpt_core.executors.warm_start import ForkServer; "
         "server = ForkServer(Path(sys.argv[1]), Path(sys.argv[2]), dict(os.environ)); print(server._process.pid, "
         "flush=True); os.kill(os.getpid(), 9)", str(tmp_path / "experiment"), str(model_dir / "train.py")],
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")}, capture_output=True, text=True, timeout=60)
    server_pid = int(executor_process.stdout.split()[0])
    deadline = time.monotonic() + 60
    while Path(f"/proc/{server_pid}").exists() and \
            Path(f"/proc/{server_pid}/stat").read_text().rpartition(")")[2].split()[0] not in ("Z", "X"):
        assert time.monotonic() < deadline, "the fork server outlived its executor"
        time.sleep(0.1)
