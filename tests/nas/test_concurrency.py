"""Several workers on one study: the QUBO sampler with its trust region never evaluates one
architecture twice, and no trial is lost or left running (journal, SQLite, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.storages import InMemoryStorage

from qopt.nas._runner import STATUS_ATTR, SearchJob, open_study, run_worker
from qopt.nas._samplers import make_sampler, trial_architecture

from ._harness import (
    WorkersOutcome,
    cell_score,
    cell_space,
    postgres_url,
    search_with_workers,
    storage_url,
    unique_name,
)

N_TRIALS = 15
WORKERS = 3

STORAGES = ["journal", "sqlite"] + (["postgresql"] if postgres_url() else [])


def check_no_duplicates_lost_or_running(outcome: WorkersOutcome) -> None:
    assert outcome.exits == [0] * WORKERS
    assert outcome.lost == 0 and outcome.running == 0
    assert N_TRIALS <= outcome.evaluated <= N_TRIALS + WORKERS - 1
    assert outcome.duplicates == 0
    # The trust region proposed while other workers were proposing: the race claims settle.
    assert outcome.trust_region > 0


@pytest.mark.parametrize("storage", STORAGES)
def test_workers_never_evaluate_one_architecture_twice(tmp_path: Path, storage: str) -> None:
    space = cell_space(unique_name("cells"))
    outcome = search_with_workers(
        space,
        tmp_path,
        storage_url(storage, tmp_path),
        n_trials=N_TRIALS,
        workers=WORKERS,
        first_alone=True,
    )
    check_no_duplicates_lost_or_running(outcome)


@pytest.mark.parametrize("storage", STORAGES)
def test_workers_starting_together_never_take_one_queued_architecture(
    tmp_path: Path, storage: str
) -> None:
    # Before any trial completes each worker enqueues its start architecture, and a rejected
    # proposal's repair is enqueued too: a queued trial is taken by one worker only, and its
    # architecture is claimed like any proposal.
    space = cell_space(unique_name("queued"))
    outcome = search_with_workers(
        space, tmp_path, storage_url(storage, tmp_path), n_trials=N_TRIALS, workers=WORKERS
    )
    check_no_duplicates_lost_or_running(outcome)


def test_a_queued_architecture_another_worker_holds_is_taken_not_evaluated() -> None:
    space = cell_space("queued-claim")
    study = open_study(space, InMemoryStorage(), "qubo", create=True)
    _, codec = make_sampler("qubo", space, seed=0)
    arch = {f"op{i}": "skip" for i in range(6)}
    study.enqueue_trial(codec.params_of(arch))
    rival = study.ask()  # another worker, evaluating `arch` right now
    assert codec.suggest(rival) == arch
    study.enqueue_trial(codec.params_of(arch))  # e.g. a repair that landed on the same one
    job = SearchJob(space.to_dict(), None, None, "qubo", 0, 2, "sa", None)
    told = run_worker(job, 0, space=space, study=study, evaluate=lambda a: {"score": cell_score(a)})
    queued = study.trials[told[0]]
    assert queued.user_attrs[STATUS_ATTR] == "taken" and queued.params == {}
    assert queued.state == optuna.trial.TrialState.FAIL
    evaluated = [trial_architecture(t) for t in study.trials if t.number in told[1:]]
    assert evaluated and arch not in evaluated
