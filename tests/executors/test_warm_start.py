"""Warm trial starts: trials handed to preloaded interpreters, each a fresh process like a cold start."""

import json
import os
import signal
import sys
import threading
import time

import pytest

from hpt_core.executors import LaunchSpec, LocalExecutor, warm_pool
from hpt_core.executors.warm_pool import python_script_of, third_party_imports

TRIAL = """
import sys
preloaded = "numpy" in sys.modules
import json, os
import numpy
mode = sys.argv[1]
record = {"preloaded": preloaded, "cwd": os.getcwd(), "argv": sys.argv, "environment": dict(os.environ),
          "path": sys.path, "file": __file__, "name": __name__, "pid": os.getpid(), "pgid": os.getpgid(0),
          "sid": os.getsid(0), "ppid": os.getppid(), "stdin": os.read(0, 10).decode(),
          "random": numpy.random.random()}
if mode == "leak":
    hoard = bytearray(300 * 1024 * 1024)
    hoard[::4096] = b"x" * len(hoard[::4096])
with open(os.path.join(os.environ["RECORDS"], "record-" + os.environ["HPT_TRIAL_ID"]), "w") as handle:
    status = open("/proc/self/status").read()
    record["peak_kb"] = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
    json.dump(record, handle)
if mode == "abort":
    os.abort()
if mode == "exit3":
    sys.exit(3)
if mode == "raise":
    raise ValueError("boom")
if mode == "lingering":  # what an interpreter's end must still do: join threads, run atexit, flush open files
    import atexit, threading, time
    def write(name, text):
        with open(os.path.join(os.environ["RECORDS"], name + "-" + os.environ["HPT_TRIAL_ID"]), "w") as handle:
            handle.write(text)
    left_open = open(os.path.join(os.environ["RECORDS"], "open-" + os.environ["HPT_TRIAL_ID"]), "w")
    left_open.write("never closed")
    atexit.register(write, "atexit", "ran")
    threading.Thread(target=lambda: (time.sleep(0.3), write("thread", "joined"))).start()
    sys.exit("farewell")
if mode == "sleep":
    import time
    time.sleep(60)
print("done", mode)
"""

TIMEOUT_SECONDS = 120


@pytest.fixture
def model_dir(tmp_path):
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "train.py").write_text(TRIAL)
    (directory / "helpers.py").write_text("VALUE = 1\n")
    return directory


@pytest.fixture
def executor(model_dir, tmp_path):
    executor = LocalExecutor(tmp_path / "experiment", model_dir, max_concurrent=1)
    yield executor
    executor.shutdown(grace_seconds=1)


def wait_for(condition, what):
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not (value := condition()):
        assert time.monotonic() < deadline, what
        time.sleep(0.02)
    return value


def trial_spec(tmp_path, trial_id, mode):
    return LaunchSpec(trial_id=trial_id, attempt=1, command=f"{sys.executable} train.py {mode}",
                      env={"HPT_TRIAL_ID": str(trial_id), "RECORDS": str(tmp_path)},
                      log_path=str(tmp_path / f"trial-{trial_id}.log"))


def launch(executor, tmp_path, trial_id, mode):
    executor.launch(trial_spec(tmp_path, trial_id, mode))


def run_trial(executor, tmp_path, trial_id, mode="ok"):
    """Launch a trial, wait for its end; its exit status and what it recorded (None if nothing)."""
    launch(executor, tmp_path, trial_id, mode)
    (trial_exit,) = wait_for(executor.poll, f"trial {trial_id} never ended")
    record = tmp_path / f"record-{trial_id}"
    return trial_exit.returncode, json.loads(record.read_text()) if record.exists() else None


def wait_for_exits(executor, trial_ids):
    ended = set()
    wait_for(lambda: ended.update(trial_exit.trial_id for trial_exit in executor.poll()) or ended == trial_ids,
             f"trials {sorted(trial_ids)} never ended")


def waiting_interpreters_ready(executor):
    """Every waiting interpreter has finished preloading (and there is one)."""
    return not executor.preloading() and "ready" in executor.warm_start_state()


def start_the_pool(executor, tmp_path):
    """The first trial starts cold and starts the pool; wait until an interpreter is ready."""
    run_trial(executor, tmp_path, 100)
    wait_for(lambda: waiting_interpreters_ready(executor), "no preloaded interpreter became ready")


def process_json(executor, trial_id):
    return json.loads((executor.workdir(trial_id).parent / "process.json").read_text())


@pytest.mark.parametrize("command, expected", [
    (f"{sys.executable} train.py --lr=0.1", (sys.executable, ["train.py", "--lr=0.1"])),
    ("python train.py > out.txt", None),
    ("bash run.sh", None),
    ("python -m package.train", None),
    ("python train.py && echo done", None),
    ("ls train.py", None),
])
def test_which_commands_can_start_warm(command, expected):
    assert python_script_of(command) == expected


def test_the_script_s_third_party_imports_are_what_the_pool_preloads_before_a_trial_ran(model_dir):
    (model_dir / "train.py").write_text("import json\nimport numpy as np\nfrom helpers import VALUE\n"
                                        "from sqlalchemy import text\nimport not_installed_anywhere\n")
    assert third_party_imports(model_dir / "train.py") == ["numpy", "sqlalchemy"]


def test_a_warm_trial_sees_what_a_cold_one_sees(executor, tmp_path):
    cold_code, cold = run_trial(executor, tmp_path, 100)
    wait_for(lambda: waiting_interpreters_ready(executor), "no preloaded interpreter became ready")
    warm_code, warm = run_trial(executor, tmp_path, 1)
    assert executor.start_kinds == {100: "cold", 1: "warm"}
    assert (cold_code, cold["preloaded"], warm_code, warm["preloaded"]) == (0, False, 0, True)
    assert warm["cwd"] == str(executor.workdir(1)) and cold["cwd"] == str(executor.workdir(100))
    per_trial = {"HPT_TRIAL_ID", "PWD"}
    assert {name: value for name, value in warm["environment"].items() if name not in per_trial} == \
           {name: value for name, value in cold["environment"].items() if name not in per_trial}
    assert warm["environment"]["PWD"] == warm["cwd"] and warm["environment"]["HPT_TRIAL_ID"] == "1"
    for same in ("argv", "path", "name", "stdin"):
        assert warm[same] == cold[same], same
    assert warm["file"] == str(executor.workdir(1) / "train.py")
    assert warm["pgid"] == warm["sid"] == warm["pid"]
    log = (tmp_path / "trial-1.log").read_text()
    assert "hpt: warm start: preloaded numpy\n" in log and "done ok" in log
    assert process_json(executor, 1)["start"] == "warm"


def test_a_crash_or_a_leak_in_one_warm_trial_does_not_touch_the_next(executor, tmp_path):
    start_the_pool(executor, tmp_path)
    assert run_trial(executor, tmp_path, 1, "abort")[0] == -6
    assert run_trial(executor, tmp_path, 2, "exit3")[0] == 3
    assert run_trial(executor, tmp_path, 3, "raise")[0] == 1
    traceback = (tmp_path / "trial-3.log").read_text()
    assert "ValueError: boom" in traceback and "preloaded.py" not in traceback
    wait_for(lambda: waiting_interpreters_ready(executor), "no preloaded interpreter became ready")
    leak_code, leak = run_trial(executor, tmp_path, 4, "leak")
    wait_for(lambda: waiting_interpreters_ready(executor), "no preloaded interpreter became ready")
    after_code, after = run_trial(executor, tmp_path, 5, "ok")
    assert leak_code == 0 and leak["peak_kb"] > 300 * 1024
    assert after_code == 0 and after["preloaded"] and after["peak_kb"] < leak["peak_kb"] - 250 * 1024
    assert executor.start_kinds[4] == executor.start_kinds[5] == "warm"


def test_terminate_ends_a_warm_trial(executor, tmp_path):
    start_the_pool(executor, tmp_path)
    launch(executor, tmp_path, 7, "sleep")
    assert executor.start_kinds[7] == "warm"
    wait_for(lambda: (tmp_path / "record-7").exists(), "the warm trial never ran")
    executor.terminate(7, grace_seconds=5)
    (trial_exit,) = wait_for(executor.poll, "the terminated trial never ended")
    assert trial_exit.returncode == -15


def test_an_interpreter_killed_while_it_waits_is_replaced(executor, tmp_path):
    start_the_pool(executor, tmp_path)
    (waiting,) = executor._pool._waiting
    os.killpg(waiting.process.pid, signal.SIGKILL)
    wait_for(lambda: waiting.process.poll() is not None, "the interpreter survived SIGKILL")
    executor.poll()
    assert f"interpreter {waiting.process.pid} ended while it waited (exit status -9)" in \
           (tmp_path / "experiment" / "warm-pool.log").read_text()
    wait_for(lambda: waiting_interpreters_ready(executor), "the killed interpreter was not replaced")
    assert run_trial(executor, tmp_path, 1)[1]["preloaded"] is True
    assert executor.start_kinds[1] == "warm"


def test_a_stopped_interpreter_never_blocks_a_launch_and_the_trial_says_why_it_starts_cold(executor, tmp_path):
    start_the_pool(executor, tmp_path)
    (waiting,) = executor._pool._waiting
    os.kill(waiting.process.pid, signal.SIGSTOP)
    wait_for(lambda: open(f"/proc/{waiting.process.pid}/stat").read().rpartition(")")[2].split()[0] == "T",
             "the interpreter did not stop")
    returncode, record = run_trial(executor, tmp_path, 1)
    assert returncode == 0 and record["preloaded"] is False
    assert "hpt: cold start: it is stopped (SIGSTOP)" in (tmp_path / "trial-1.log").read_text()
    assert process_json(executor, 1) | {"start": "cold", "start_note": "it is stopped (SIGSTOP)"} == \
           process_json(executor, 1)
    assert any("trial 1 starts cold: it is stopped (SIGSTOP)" in notice for notice in executor.notices())
    assert waiting.process.poll() == -9  # discarded


def test_a_preload_that_fails_is_said_in_the_trial_s_log_and_the_trial_starts_cold(model_dir, tmp_path):
    executor = LocalExecutor(tmp_path / "experiment", model_dir, max_concurrent=1,
                             preload=["numpy", "not_installed_anywhere"])
    try:
        run_trial(executor, tmp_path, 1)
        wait_for(lambda: executor._pool._waiting[0].result, "the interpreter never finished preloading")
        returncode, record = run_trial(executor, tmp_path, 2)
        assert returncode == 0 and record["preloaded"] is False
        reason = "preloading failed: not_installed_anywhere: ModuleNotFoundError: " \
                 "No module named 'not_installed_anywhere'"
        assert f"hpt: cold start: {reason}" in (tmp_path / "trial-2.log").read_text()
        assert executor.start_notes[2] == reason
        assert any(reason in notice for notice in executor.notices())
    finally:
        executor.shutdown(grace_seconds=1)


def gate_the_preload(tmp_path, monkeypatch):
    """A module `gated_import` whose import waits until the returned file exists."""
    modules, release = tmp_path / "modules", tmp_path / "release"
    modules.mkdir()
    (modules / "gated_import.py").write_text("import os, time\nwhile not os.path.exists(os.environ['RELEASE']):\n"
                                             "    time.sleep(0.01)\n")
    monkeypatch.setenv("PYTHONPATH", str(modules))
    monkeypatch.setenv("RELEASE", str(release))
    return release


def test_a_trial_waits_for_an_interpreter_still_preloading_and_is_let_launch_warm_once_it_is_ready(
        model_dir, tmp_path, monkeypatch):
    release = gate_the_preload(tmp_path, monkeypatch)
    executor = LocalExecutor(tmp_path / "experiment", model_dir, max_concurrent=1, preload=["numpy", "gated_import"])
    woken = threading.Event()
    executor.wake_listener = woken.set
    try:
        run_trial(executor, tmp_path, 100)  # cold: it starts the pool, whose interpreter waits in its import
        woken.clear()
        assert not executor.can_launch(trial_spec(tmp_path, 1, "ok"))
        release.touch()
        assert woken.wait(60), "the executor did not wake its caller when the interpreter became ready"
        assert executor.can_launch(trial_spec(tmp_path, 1, "ok"))
        returncode, record = run_trial(executor, tmp_path, 1)
        assert (returncode, record["preloaded"], executor.start_kinds[1]) == (0, True, "warm")
    finally:
        executor.shutdown(grace_seconds=1)




@pytest.mark.parametrize("command", [f"{sys.executable} -c pass", f"{sys.executable} missing.py"])
def test_nothing_is_prepared_for_an_entrypoint_that_cannot_start_warm(executor, tmp_path, command):
    executor.prepare(command, {}, slots=0)
    assert executor.warm_start_state().endswith("no preloaded interpreter waiting")


def test_nothing_is_prepared_with_warm_starts_off(executor, tmp_path, monkeypatch):
    monkeypatch.setenv("HPT_WARM_START", "0")
    executor.prepare(trial_spec(tmp_path, 1, "ok").command, {}, slots=0)
    monkeypatch.delenv("HPT_WARM_START")
    assert executor.warm_start_state().endswith("no preloaded interpreter waiting")


def test_prepared_before_the_first_launch_the_pool_starts_the_first_trial_warm(model_dir, tmp_path, monkeypatch):
    release = gate_the_preload(tmp_path, monkeypatch)
    executor = LocalExecutor(tmp_path / "experiment", model_dir, max_concurrent=1, preload=["numpy", "gated_import"])
    try:
        spec = trial_spec(tmp_path, 1, "ok")
        executor.prepare(spec.command, {"RECORDS": str(tmp_path)}, slots=0)
        assert executor.preloading() and not executor.can_launch(spec)  # the first trial waits for the pool
        release.touch()
        wait_for(lambda: executor.can_launch(spec), "the first trial was never let launch")
        returncode, record = run_trial(executor, tmp_path, 1)
        assert (returncode, record["preloaded"], executor.start_kinds[1]) == (0, True, "warm")
    finally:
        executor.shutdown(grace_seconds=1)


@pytest.mark.parametrize("unwaited", ["outlasts the wait", "stopped"])
def test_an_interpreter_whose_preload_outlasts_the_wait_or_is_stopped_holds_no_trial_back(
        model_dir, tmp_path, monkeypatch, unwaited):
    release = gate_the_preload(tmp_path, monkeypatch)
    if unwaited == "outlasts the wait":
        monkeypatch.setattr(warm_pool, "PRELOAD_WAIT_SECONDS", 0.5)
    executor = LocalExecutor(tmp_path / "experiment", model_dir, max_concurrent=1, preload=["numpy", "gated_import"])
    try:
        run_trial(executor, tmp_path, 100)
        if unwaited == "stopped":
            os.kill(executor._pool._waiting[0].process.pid, signal.SIGSTOP)
        wait_for(lambda: executor.can_launch(trial_spec(tmp_path, 1, "ok")), "the trial was never let launch")
        assert executor.preloading()  # still importing, yet not waited for
        returncode, record = run_trial(executor, tmp_path, 1)
        assert (returncode, record["preloaded"], executor.start_kinds[1]) == (0, False, "cold")
    finally:
        release.touch()
        for waiting in executor._pool._waiting:
            os.kill(waiting.process.pid, signal.SIGCONT)
        executor.shutdown(grace_seconds=1)


def test_with_warm_starts_off_every_trial_starts_cold_and_says_so(executor, tmp_path, monkeypatch):
    monkeypatch.setenv("HPT_WARM_START", "0")
    run_trial(executor, tmp_path, 1)
    assert run_trial(executor, tmp_path, 2)[1]["preloaded"] is False
    assert "hpt: cold start: warm starts are off (HPT_WARM_START=0)" in (tmp_path / "trial-2.log").read_text()
    assert not executor._pool._waiting


def test_an_import_that_kills_its_interpreter_costs_one_attempt_a_launch_and_trials_say_why(model_dir, tmp_path,
                                                                                             monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "dies_at_import.py").write_text("import os\nprint('dying at import', flush=True)\nos._exit(3)\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    executor = LocalExecutor(tmp_path / "experiment", model_dir, max_concurrent=1, preload=["dies_at_import"])
    try:
        run_trial(executor, tmp_path, 1)
        pool_log = tmp_path / "experiment" / "warm-pool.log"
        wait_for(lambda: executor.poll() == [] and "ended while it preloaded" in pool_log.read_text(),
                 "the interpreter survived its preload")
        for _ in range(5):
            executor.poll()
        assert executor._pool._waiting == []  # not restarted by every poll
        assert run_trial(executor, tmp_path, 2)[1]["preloaded"] is False
        reason = "the last preloaded interpreter ended while it preloaded (exit status 3"
        assert reason in executor.start_notes[2] and reason in (tmp_path / "trial-2.log").read_text()
        assert "dying at import" in pool_log.read_text()
        assert "another one starts with the next launch" in pool_log.read_text()
        assert any(reason in notice for notice in executor.notices())
    finally:
        executor.shutdown(grace_seconds=1)


def test_each_gpu_slot_gets_interpreters_that_imported_with_its_cuda_visible_devices(model_dir, tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "gpu_probe.py").write_text("import os\nAT_IMPORT = os.environ.get('CUDA_VISIBLE_DEVICES')\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    (model_dir / "train.py").write_text(  # a trial holds its GPU until the test lets it end (a file "go-<trial>")
        "import json, os, sys, time\nimport gpu_probe\n"
        "records, trial = os.environ['RECORDS'], os.environ['HPT_TRIAL_ID']\n"
        "with open(os.path.join(records, 'record-' + trial), 'w') as handle:\n"
        "    json.dump({'at_import': gpu_probe.AT_IMPORT, 'now': os.environ['CUDA_VISIBLE_DEVICES']}, handle)\n"
        "while not os.path.exists(os.path.join(records, 'go-' + trial)):\n"
        "    time.sleep(0.01)\n")

    def let_end(*trial_ids):
        for trial_id in trial_ids:
            (tmp_path / f"go-{trial_id}").touch()
        wait_for_exits(executor, set(trial_ids))

    executor = LocalExecutor(tmp_path / "experiment", model_dir, max_concurrent=2, gpus=["0", "1"])
    try:
        (tmp_path / "go-1").touch()
        run_trial(executor, tmp_path, 1)  # GPU 0, cold: the pool starts with interpreters for GPU 0
        wait_for(lambda: waiting_interpreters_ready(executor), "no preloaded interpreter became ready")
        launch(executor, tmp_path, 2, "ok")  # GPU 0 again, warm
        launch(executor, tmp_path, 3, "ok")  # GPU 1 (trial 2 holds GPU 0): only GPU 0's interpreters wait
        assert executor.start_kinds[2] == "warm" and executor.start_kinds[3] == "cold"
        assert executor.start_notes[3] == \
            "the waiting interpreters were started for another trial slot (CUDA_VISIBLE_DEVICES differ)"
        let_end(2, 3)
        wait_for(lambda: waiting_interpreters_ready(executor), "no preloaded interpreter became ready")
        launch(executor, tmp_path, 4, "ok")  # GPU 0 again; one interpreter now waits for GPU 1
        launch(executor, tmp_path, 5, "ok")  # GPU 1 (trial 4 holds GPU 0)
        assert executor.start_kinds[4] == executor.start_kinds[5] == "warm"
        let_end(4, 5)
        records = {trial: json.loads((tmp_path / f"record-{trial}").read_text()) for trial in (2, 3, 4, 5)}
        assert all(record["at_import"] == record["now"] for record in records.values())
        assert {records[4]["now"], records[5]["now"]} == {"0", "1"}
    finally:
        executor.shutdown(grace_seconds=1)


# --- preloaded interpreters that fork: one thread after preloading --------------------------------------------------


@pytest.fixture
def forking_executor(model_dir, tmp_path):
    """Two trials at once on two cores: one thread each, so numpy starts no thread and the interpreter forks."""
    executor = LocalExecutor(tmp_path / "experiment", model_dir, max_concurrent=2, cpu_count=2)
    yield executor
    executor.shutdown(grace_seconds=1)


def test_a_forked_trial_sees_what_a_cold_one_sees_and_its_interpreter_stays(forking_executor, tmp_path):
    executor = forking_executor
    cold_code, cold = run_trial(executor, tmp_path, 100)
    wait_for(lambda: waiting_interpreters_ready(executor), "no preloaded interpreter became ready")
    first_code, first = run_trial(executor, tmp_path, 1)
    second_code, second = run_trial(executor, tmp_path, 2)
    assert executor.start_kinds == {100: "cold", 1: "warm", 2: "warm"}
    assert executor.start_notes[1] == executor.start_notes[2] == "warm start: preloaded numpy (forked)"
    assert (cold_code, first_code, second_code) == (0, 0, 0)
    assert (cold["preloaded"], first["preloaded"], second["preloaded"]) == (False, True, True)
    interpreters = {waiting.process.pid for waiting in executor._pool._waiting}
    assert first["ppid"] == second["ppid"] and first["ppid"] in interpreters  # forked by one that still waits
    assert first["pid"] != second["pid"] and first["random"] != second["random"]
    per_trial = {"HPT_TRIAL_ID", "PWD"}
    assert {name: value for name, value in first["environment"].items() if name not in per_trial} == \
           {name: value for name, value in cold["environment"].items() if name not in per_trial}
    assert first["cwd"] == first["environment"]["PWD"] == str(executor.workdir(1))
    for same in ("argv", "path", "name", "stdin"):
        assert first[same] == cold[same], same
    assert first["file"] == str(executor.workdir(1) / "train.py")
    assert first["pgid"] == first["sid"] == first["pid"]
    assert "hpt: warm start: preloaded numpy (forked)\n" in (tmp_path / "trial-1.log").read_text()
    assert process_json(executor, 1)["pgid"] == first["pid"]


def test_forked_trials_end_signal_and_crash_as_cold_ones_do(forking_executor, tmp_path):
    executor = forking_executor
    start_the_pool(executor, tmp_path)
    assert run_trial(executor, tmp_path, 1, "abort")[0] == -6
    assert run_trial(executor, tmp_path, 2, "exit3")[0] == 3
    assert run_trial(executor, tmp_path, 3, "raise")[0] == 1
    assert "ValueError: boom" in (tmp_path / "trial-3.log").read_text()
    launch(executor, tmp_path, 4, "sleep")
    wait_for(lambda: (tmp_path / "record-4").exists(), "the forked trial never ran")
    executor.terminate(4, grace_seconds=5)
    (trial_exit,) = wait_for(executor.poll, "the terminated trial never ended")
    assert trial_exit.returncode == -15
    assert all("(forked)" in executor.start_notes[trial] for trial in (1, 2, 3, 4))


def test_an_interpreter_whose_preloads_started_a_thread_takes_one_trial_and_never_forks(model_dir, tmp_path,
                                                                                         monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "starts_a_thread.py").write_text("import threading, time\n"
                                             "threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    executor = LocalExecutor(tmp_path / "experiment", model_dir, max_concurrent=2, cpu_count=2,
                             preload=["numpy", "starts_a_thread"])
    try:
        start_the_pool(executor, tmp_path)
        interpreters = {waiting.process.pid for waiting in executor._pool._waiting}
        returncode, record = run_trial(executor, tmp_path, 1)
        assert returncode == 0 and record["preloaded"] is True
        assert executor.start_notes[1] == "warm start: preloaded numpy, starts_a_thread"
        assert record["pid"] in interpreters  # the interpreter became the trial
        assert record["pid"] not in {waiting.process.pid for waiting in executor._pool._waiting}
    finally:
        executor.shutdown(grace_seconds=1)


def test_a_forked_trial_ends_as_an_interpreter_does(forking_executor, tmp_path):
    executor = forking_executor
    cold = run_trial(executor, tmp_path, 100, "lingering")
    wait_for(lambda: waiting_interpreters_ready(executor), "no preloaded interpreter became ready")
    forked = run_trial(executor, tmp_path, 1, "lingering")
    assert "(forked)" in executor.start_notes[1]
    for trial, (returncode, _) in ((100, cold), (1, forked)):
        assert returncode == 1
        assert "farewell" in (tmp_path / f"trial-{trial}.log").read_text()
        assert [(tmp_path / f"{name}-{trial}").read_text() for name in ("open", "atexit", "thread")] == \
               ["never closed", "ran", "joined"]
