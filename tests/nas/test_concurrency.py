"""Several workers on one study: the QUBO sampler with its trust region never evaluates one
architecture twice, and no trial is lost or left running (journal, SQLite, PostgreSQL)."""

from __future__ import annotations

import collections
import itertools
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from qopt.nas import Budget, Choice, Objective, SearchSpace, run_search
from qopt.nas import _runner as runner
from qopt.nas._runner import SearchJob, load_run
from qopt.nas._samplers import trial_architecture

OPS = ("none", "skip", "conv1", "conv3", "pool")
N_TRIALS = 15
WORKERS = 3


def objective(architecture: dict[str, Any]) -> float:
    """A rugged, deterministic score of six operation choices (fast: the workers spend their
    time proposing, so their proposals overlap)."""
    ops = [OPS.index(architecture[f"op{i}"]) for i in range(6)]
    score = sum((i + 1) * ((op * (i + 3)) % 5) for i, op in enumerate(ops))
    score += sum(3 * (a == b) for a, b in itertools.pairwise(ops))
    return float(score)


def cell_space(name: str) -> SearchSpace:
    """An NAS-Bench-201-like cell: six edges of five operations under a parameter budget."""
    return SearchSpace(
        [Choice(f"op{i}", "categorical", OPS) for i in range(6)],
        budgets=[
            Budget(
                "params",
                4.0,
                kind="params",
                costs={f"op{i}": {"conv1": 0.5, "conv3": 2.0} for i in range(6)},
            )
        ],
        objectives=[Objective("score", "maximize")],
        evaluate="tests.nas.test_concurrency:objective",
        name=name,
    )


def worker(job: SearchJob, index: int) -> None:  # pragma: no cover - runs in a child
    """One of ``qopt nas --workers N``'s processes, waiting for the last running trials in
    1 s steps rather than the heartbeat interval (30 s)."""
    runner.HEARTBEAT_INTERVAL_S = 1
    runner.run_worker(job, index)


def search_with_workers(space: SearchSpace, run_dir: Path, storage: str | None) -> None:
    """Run ``space`` with :data:`WORKERS` processes on one study, as ``run_search`` does.

    The first trial is made alone: before any trial has completed each worker enqueues its
    own start architecture, and SQLite (no row locks) lets two workers take one enqueued
    trial; the sampler's claims are what is under test here.
    """
    run_search(space, run_dir=run_dir, storage=storage, n_trials=1, seed=0, progress=False)
    job = SearchJob(space.to_dict(), str(run_dir), storage, "qubo", 0, N_TRIALS, "sa", None)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=worker, args=(job, i)) for i in range(WORKERS)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    assert [p.exitcode for p in processes] == [0] * WORKERS


def check_no_duplicates_lost_or_running(trials: list[optuna.trial.FrozenTrial]) -> None:
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == max(numbers) + 1  # none lost
    assert all(t.state.is_finished() for t in trials), [t.number for t in trials]
    evaluated = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert N_TRIALS <= len(evaluated) <= N_TRIALS + WORKERS - 1
    counts = collections.Counter(
        json.dumps(trial_architecture(t), sort_keys=True) for t in evaluated
    )
    assert [a for a, n in counts.items() if n > 1] == []
    # The trust region proposed while other workers were proposing: the race claims settle.
    assert any(t.system_attrs.get("qopt:candidate", "").startswith("trust") for t in evaluated)


@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_workers_never_evaluate_one_architecture_twice(tmp_path: Path, storage: str) -> None:
    url = None if storage == "journal" else f"sqlite:///{tmp_path / 'nas.db'}"
    search_with_workers(cell_space("cells"), tmp_path, url)
    study, _, _ = load_run(tmp_path)
    check_no_duplicates_lost_or_running(study.get_trials())


@pytest.mark.skipif(
    not os.environ.get("QOPT_TEST_POSTGRES_URL"), reason="set QOPT_TEST_POSTGRES_URL to run"
)
def test_workers_never_evaluate_one_architecture_twice_on_postgresql(tmp_path: Path) -> None:
    url = os.environ["QOPT_TEST_POSTGRES_URL"]
    space = cell_space(f"cells-{os.getpid()}-{time.time_ns()}")
    search_with_workers(space, tmp_path, url)
    study = optuna.load_study(study_name=space.name, storage=url)
    check_no_duplicates_lost_or_running(study.get_trials())
