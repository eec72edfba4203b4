"""Several workers on one study: the QUBO sampler with its trust region never evaluates one
architecture twice, and no trial is lost or left running (journal, SQLite, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._harness import (
    WorkersOutcome,
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
