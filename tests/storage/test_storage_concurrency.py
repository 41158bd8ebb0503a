"""Many writers at once lose nothing: threads sharing one Storage, and separate processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hpt_core.storage import Storage

WRITER = textwrap.dedent(
    """
    import sys
    from hpt_core.storage import Storage

    url, writer, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with Storage(url) as storage:
        experiment_id = storage.create_experiment(
            name=f"writer {writer}", config={}, model_dir=".", seed=writer, secret="s")
        trial_id = storage.create_trial(experiment_id, 1, {"writer": writer}, seed=writer)
        for step in range(count):
            storage.add_metrics(trial_id, "training", {"writer": writer, "step": step}, batches=step, epochs=0)
            if step % 20 == 0:
                storage.append_searcher_record(experiment_id, "event", {"step": step})
    """
)


def test_threads_sharing_one_storage_lose_no_writes(storage: Storage, experiment_id: int) -> None:
    threads, per_thread = 6, 25
    trial_ids = [storage.create_trial(experiment_id, request, {}, seed=0) for request in range(threads)]

    def write(index: int) -> list[int]:
        seqs = []
        for step in range(per_thread):
            storage.add_metrics(trial_ids[index], "validation", {"step": step}, batches=step, epochs=0)
            storage.update_trial(trial_ids[index], length_done=step)
            seqs.append(storage.append_searcher_record(experiment_id, "event", {"thread": index, "step": step}))
        return seqs

    with ThreadPoolExecutor(max_workers=threads) as pool:
        seqs = [seq for result in pool.map(write, range(threads)) for seq in result]

    assert sorted(seqs) == list(range(1, threads * per_thread + 1))
    records = storage.searcher_records(experiment_id)
    assert [record.seq for record in records] == list(range(1, threads * per_thread + 1))
    for index, trial_id in enumerate(trial_ids):
        steps = [record.metrics["step"] for record in storage.metrics(trial_id=trial_id)]
        assert steps == list(range(per_thread))
        assert storage.get_trial(trial_id).length_done == per_thread - 1
        assert [r.payload["step"] for r in records if r.payload["thread"] == index] == list(range(per_thread))


def test_threads_creating_trials_of_one_experiment_get_distinct_ids(storage: Storage, experiment_id: int) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda request: storage.create_trial(experiment_id, request, {}, seed=0), range(1, 41)))
    assert len(set(ids)) == 40
    assert [trial.request_id for trial in storage.list_trials(experiment_id)] == list(range(1, 41))


def test_processes_writing_one_new_database_lose_nothing(storage_url: str, tmp_path: Path) -> None:
    processes, per_process = 4, 200
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    writers = [
        subprocess.Popen(
            [sys.executable, str(script), storage_url, str(writer), str(per_process)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for writer in range(processes)
    ]
    outcomes = [(writer.wait(timeout=240), writer.communicate()[1]) for writer in writers]
    assert outcomes == [(0, "")] * processes

    with Storage(storage_url) as storage:
        experiments = storage.list_experiments()
        assert sorted(experiment.seed for experiment in experiments) == list(range(processes))
        for experiment in experiments:
            [trial] = storage.list_trials(experiment.id)
            steps = [record.metrics["step"] for record in storage.metrics(trial_id=trial.id)]
            assert steps == list(range(per_process))
            assert [record.seq for record in storage.searcher_records(experiment.id)] == list(range(1, 11))
        assert len(storage.metrics()) == processes * per_process
