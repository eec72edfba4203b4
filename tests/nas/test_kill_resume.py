"""A search killed with SIGKILL at random points, then resumed, loses and repeats nothing.

Each case runs ``qopt nas`` in a subprocess, kills it (SIGKILL: no clean-up runs) when a
random number of further architectures have been evaluated plus a random fraction of an
evaluation, several times, then lets a last start finish. Whatever the kill interrupted, the
search must end with exactly ``n_trials`` evaluated architectures, none evaluated twice, no
trial left running, and every trial that had finished before a kill kept as it was.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from qopt.nas import Budget, Choice, Objective, PairCost, SearchSpace, status
from qopt.nas._samplers import trial_architecture

ROOT = Path(__file__).resolve().parents[2]
N_TRIALS = 12
N_KILLS = 3
#: The runner in a subprocess, with heartbeats every second and a dead worker's trial failed
#: after 2 s (instead of 30 s and 120 s), so that a resume on a database need not wait long.
DRIVER = """
import sys
from qopt.nas import _runner
_runner.HEARTBEAT_INTERVAL_S = 1
_runner.GRACE_PERIOD_S = 2
from qopt.cli import main
sys.exit(main(sys.argv[1:]))
"""


def space(name: str) -> SearchSpace:
    """48 architectures, a quadratic budget (so proposals may be rejected and repaired)."""
    return SearchSpace(
        [
            Choice.integers("w1", 16, 64, step=16),
            Choice("w2", "ordinal", (16, 32, 48, 64)),
            Choice("act", "categorical", ("relu", "gelu", "tanh")),
        ],
        budgets=[
            Budget("params", 3072, kind="params", pairs=(PairCost("w1", "w2", coefficient=1.0),))
        ],
        objectives=[Objective("loss", "minimize")],
        evaluate="tests.nas._entry:slow",
        name=name,
    )


def is_evaluated(t: FrozenTrial) -> bool:
    return t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        t.state == TrialState.FAIL and t.user_attrs.get("qopt_nas:status") == "error"
    )


def finished(trials: list[FrozenTrial]) -> dict[int, tuple[Any, ...]]:
    return {
        t.number: (t.state, t.params, t.values, dict(t.user_attrs))
        for t in trials
        if t.state.is_finished()
    }


STORAGES = ["journal", "sqlite"]
if os.environ.get("QOPT_TEST_POSTGRES_URL"):
    STORAGES.append("postgresql")


@pytest.mark.parametrize("sampler", ["qubo", "random"])
@pytest.mark.parametrize("storage", STORAGES)
def test_a_search_killed_at_random_points_ends_with_every_trial_once(
    tmp_path: Path, storage: str, sampler: str
) -> None:
    name = f"kill-{storage}-{sampler}-{os.getpid()}-{time.time_ns()}"
    spec = tmp_path / "space.json"
    spec.write_text(json.dumps(space(name).to_dict()))
    run_dir = tmp_path / "run"
    url = {
        "journal": None,
        "sqlite": f"sqlite:///{tmp_path / 'nas.db'}",
        "postgresql": os.environ.get("QOPT_TEST_POSTGRES_URL"),
    }[storage]
    command = [sys.executable, "-c", DRIVER, "nas", str(spec), "--run-dir", str(run_dir)]
    command += ["--trials", str(N_TRIALS), "--sampler", sampler, "--seed", "0", "--no-progress"]
    command += [] if url is None else ["--storage", url]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    rng = random.Random(f"{storage}-{sampler}")
    reader: Any = None  # one storage for all the polls

    def trials() -> list[FrozenTrial]:
        nonlocal reader
        if reader is None:
            reader = (
                JournalStorage(JournalFileBackend(str(run_dir / "journal.log")))
                if url is None
                else optuna.storages.RDBStorage(url)
            )
        return optuna.load_study(study_name=name, storage=reader).get_trials()

    kept: dict[int, tuple[Any, ...]] = {}
    kills = 0
    for _ in range(N_KILLS):
        done = sum(is_evaluated(t) for t in trials()) if kills else 0
        target = done + rng.randint(1, 3)
        runner = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and runner.poll() is None:
            time.sleep(0.05)
            if (run_dir / "run.json").exists() and sum(map(is_evaluated, trials())) >= target:
                time.sleep(rng.uniform(0.0, 0.1))  # somewhere in the next trial
                break
        runner.send_signal(signal.SIGKILL)
        _, errors = runner.communicate()
        assert runner.returncode == -signal.SIGKILL, errors.decode()
        kills += 1
        now = finished(trials())
        assert all(now[n] == kept[n] for n in kept), "a finished trial changed or was lost"
        kept = now
    last = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=300)
    assert last.returncode == 0, last.stderr.decode()

    final = trials()
    evaluated = [t for t in final if is_evaluated(t)]
    assert len(evaluated) == N_TRIALS
    assert not [t.number for t in final if t.state == TrialState.RUNNING]
    architectures = [json.dumps(trial_architecture(t), sort_keys=True) for t in evaluated]
    assert len(set(architectures)) == len(architectures), "an architecture evaluated twice"
    after = finished(final)
    assert all(after[n] == kept[n] for n in kept), "a finished trial changed or was lost"
    summary = status(run_dir)
    assert summary.n_evaluated == N_TRIALS and summary.n_over_budget_evaluated == 0
    assert summary.n_interrupted <= kills  # at most the trial each kill interrupted
