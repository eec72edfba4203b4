"""A search killed with SIGKILL at random points, then resumed, loses and repeats nothing.

Each case runs ``qopt nas`` in a subprocess, kills it (SIGKILL: no clean-up runs) when a
random number of further architectures have been evaluated plus a random fraction of an
evaluation, several times, then lets a last start finish. Whatever the kill interrupted, the
search must end with exactly ``n_trials`` evaluated architectures, none evaluated twice, no
trial left running, and every trial that had finished before a kill kept as it was.
"""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest

from ._harness import kill_and_resume, postgres_url

N_TRIALS = 12
N_KILLS = 3

STORAGES = ["journal", "sqlite"] + (["postgresql"] if postgres_url() else [])


@pytest.mark.parametrize("sampler", ["qubo", "random"])
@pytest.mark.parametrize("storage", STORAGES)
def test_a_search_killed_at_random_points_ends_with_every_trial_once(
    tmp_path: Path, storage: str, sampler: str
) -> None:
    outcome = kill_and_resume(
        tmp_path,
        storage,
        sampler,
        n_trials=N_TRIALS,
        n_kills=N_KILLS,
        rng=random.Random(f"{storage}-{sampler}"),
    )
    assert outcome.kill_exits == [-signal.SIGKILL] * N_KILLS, outcome.final_stderr
    assert outcome.final_exit == 0, outcome.final_stderr
    assert outcome.evaluated == N_TRIALS
    assert outcome.running == 0
    assert outcome.duplicates == 0, "an architecture evaluated twice"
    assert outcome.changed_or_lost == 0, "a finished trial changed or was lost"
    assert outcome.status_evaluated == N_TRIALS and outcome.status_over_budget == 0
    assert outcome.interrupted is not None
    assert outcome.interrupted <= N_KILLS  # at most the trial each kill interrupted
