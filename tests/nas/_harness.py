"""Runs of ``qopt nas`` that are killed or share a study, and what they left behind.

Used by ``tests/nas/test_kill_resume.py``, ``tests/nas/test_concurrency.py`` and the attack in
``benchmarks/reliability/attack.py``: each function runs a search and *measures* it (evaluated,
duplicated, lost, running trials); the tests assert on the measurements, the attack counts them.
"""

from __future__ import annotations

import collections
import itertools
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from qopt.nas import Budget, Choice, Objective, PairCost, SearchSpace, run_search, status
from qopt.nas import _runner as runner
from qopt.nas._runner import SearchJob
from qopt.nas._samplers import trial_architecture

ROOT = Path(__file__).resolve().parents[2]
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


def postgres_url() -> str | None:
    """The PostgreSQL server the tests may use (``QOPT_TEST_POSTGRES_URL``), if any."""
    return os.environ.get("QOPT_TEST_POSTGRES_URL") or None


def storage_url(kind: str, directory: Path) -> str | None:
    """The ``--storage`` URL of a storage kind: journal (None: the run directory's journal
    file), SQLite (a file in ``directory``) or PostgreSQL (:func:`postgres_url`)."""
    return {
        "journal": None,
        "sqlite": f"sqlite:///{directory / 'nas.db'}",
        "postgresql": postgres_url(),
    }[kind]


def unique_name(prefix: str) -> str:
    """A study name no other run on a shared server uses."""
    return f"{prefix}-{os.getpid()}-{time.time_ns()}"


def is_evaluated(t: FrozenTrial) -> bool:
    """Whether trial ``t`` counts as an evaluation (complete, pruned or an evaluation error)."""
    return t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        t.state == TrialState.FAIL and t.user_attrs.get("qopt_nas:status") == "error"
    )


def finished(trials: list[FrozenTrial]) -> dict[int, tuple[Any, ...]]:
    """The finished trials by number, with everything a resume must keep unchanged."""
    return {
        t.number: (t.state, t.params, t.values, dict(t.user_attrs))
        for t in trials
        if t.state.is_finished()
    }


def duplicates(trials: list[FrozenTrial]) -> int:
    """Evaluations of an architecture beyond its first."""
    counts = collections.Counter(
        json.dumps(trial_architecture(t), sort_keys=True) for t in trials if is_evaluated(t)
    )
    return sum(n - 1 for n in counts.values())


# ---------------------------------------------------------------------- kill and resume
def kill_space(name: str) -> SearchSpace:
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


@dataclass
class KillOutcome:
    """What a search killed ``kills`` times and then finished left behind."""

    kills: int = 0
    kill_exits: list[int] = field(default_factory=list)  # -9 each: the kill landed
    final_exit: int | None = None
    final_stderr: str = ""
    evaluated: int = 0
    duplicates: int = 0
    running: int = 0
    changed_or_lost: int = 0  # trials finished before a kill, changed or gone after it
    status_evaluated: int | None = None
    status_over_budget: int | None = None
    interrupted: int | None = None


def kill_and_resume(
    directory: Path,
    storage: str,
    sampler: str,
    *,
    n_trials: int,
    n_kills: int,
    rng: random.Random,
    timeout_s: float = 300.0,
) -> KillOutcome:
    """Run ``qopt nas`` in a subprocess, SIGKILL it ``n_kills`` times at random points (after
    1-3 further evaluations plus a random fraction of one), then let a last start finish."""
    name = unique_name(f"kill-{storage}-{sampler}")
    spec = directory / "space.json"
    spec.write_text(json.dumps(kill_space(name).to_dict()))
    run_dir = directory / "run"
    url = storage_url(storage, directory)
    command = [sys.executable, "-c", DRIVER, "nas", str(spec), "--run-dir", str(run_dir)]
    command += ["--trials", str(n_trials), "--sampler", sampler, "--seed", "0", "--no-progress"]
    command += [] if url is None else ["--storage", url]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
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

    outcome = KillOutcome()
    kept: dict[int, tuple[Any, ...]] = {}
    for _ in range(n_kills):
        done = sum(is_evaluated(t) for t in trials()) if outcome.kills else 0
        if done >= n_trials:
            break
        target = done + rng.randint(1, 3)
        process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
            if (run_dir / "run.json").exists() and sum(map(is_evaluated, trials())) >= target:
                time.sleep(rng.uniform(0.0, 0.1))  # somewhere in the next trial
                break
        process.send_signal(signal.SIGKILL)
        _, errors = process.communicate()
        outcome.kill_exits.append(process.returncode)
        if process.returncode != -signal.SIGKILL:
            outcome.final_stderr = errors.decode(errors="replace")
        outcome.kills += 1
        now = finished(trials())
        outcome.changed_or_lost += sum(now.get(n) != kept[n] for n in kept)
        kept = now
    last = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=timeout_s)
    outcome.final_exit = last.returncode
    outcome.final_stderr += last.stderr.decode(errors="replace")
    final = trials()
    outcome.evaluated = sum(map(is_evaluated, final))
    outcome.duplicates = duplicates(final)
    outcome.running = sum(t.state == TrialState.RUNNING for t in final)
    after = finished(final)
    outcome.changed_or_lost += sum(after.get(n) != kept[n] for n in kept)
    summary = status(run_dir)
    outcome.status_evaluated = summary.n_evaluated
    outcome.status_over_budget = summary.n_over_budget_evaluated
    outcome.interrupted = summary.n_interrupted
    return outcome


# ---------------------------------------------------------------------- several workers
OPS = ("none", "skip", "conv1", "conv3", "pool")


def cell_score(architecture: dict[str, Any]) -> float:
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
        evaluate="tests.nas._harness:cell_score",
        name=name,
    )


def _worker(job: SearchJob, index: int) -> None:  # pragma: no cover - runs in a child
    """One of ``qopt nas --workers N``'s processes, waiting for the last running trials in
    1 s steps rather than the heartbeat interval (30 s)."""
    runner.HEARTBEAT_INTERVAL_S = 1
    runner.run_worker(job, index)


@dataclass
class WorkersOutcome:
    """What several workers sharing one study left behind."""

    exits: list[int | None]
    trials: int
    evaluated: int
    duplicates: int
    lost: int  # trial numbers missing from the study
    running: int  # trials not finished
    trust_region: int  # evaluated proposals from the trust region (the racing path)


def search_with_workers(
    space: SearchSpace,
    run_dir: Path,
    storage: str | None,
    *,
    n_trials: int,
    workers: int,
    seed: int = 0,
    first_alone: bool = False,
) -> WorkersOutcome:
    """Run ``space`` with ``workers`` processes on one study, as ``run_search`` does, and
    measure it. ``first_alone``: make the first trial before the workers start."""
    journal = JournalStorage(JournalFileBackend(str(run_dir / "journal.log")))
    if first_alone:
        run_search(space, run_dir=run_dir, storage=storage, n_trials=1, seed=seed, progress=False)
    else:  # the study, no trial: every worker enqueues its start architecture at once
        store = journal if storage is None else optuna.storages.RDBStorage(storage)
        runner.open_study(space, store, "qubo", create=True)
    job = SearchJob(space.to_dict(), str(run_dir), storage, "qubo", seed, n_trials, "sa", None)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker, args=(job, i)) for i in range(workers)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    study = optuna.load_study(study_name=space.name, storage=storage or journal)
    trials = study.get_trials()
    numbers = {t.number for t in trials}
    evaluated = [t for t in trials if t.state == TrialState.COMPLETE]
    return WorkersOutcome(
        exits=[p.exitcode for p in processes],
        trials=len(trials),
        evaluated=len(evaluated),
        duplicates=duplicates(trials),
        lost=(max(numbers) + 1 - len(numbers)) if numbers else 0,
        running=sum(not t.state.is_finished() for t in trials),
        trust_region=sum(
            t.system_attrs.get("qopt:candidate", "").startswith("trust") for t in evaluated
        ),
    )
