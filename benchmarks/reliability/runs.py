"""Killed and concurrent searches: ``qopt nas`` SIGKILLed at random points on the journal,
SQLite and PostgreSQL storages, and several workers sharing one study with the QUBO sampler's
trust region. The runs themselves are ``tests/nas/_harness.py``'s, which the kill and
concurrency tests assert on; here they are counted."""

from __future__ import annotations

import dataclasses
import random
import signal
from pathlib import Path
from typing import Any

from verdicts import DUPLICATE, LOST, OK, RUNNING, SILENT_WRONG, UNCLEAR, Case


def storages() -> list[str]:
    from tests.nas._harness import postgres_url

    return ["journal", "sqlite"] + (["postgresql"] if postgres_url() else [])


def kill_cases(n_kills: int, per_run: int = 4, n_trials: int = 10) -> list[Case]:
    """At least ``n_kills`` SIGKILLs in all: runs of ``per_run`` kills, spread over the
    storages and the QUBO and random samplers."""
    kinds = storages()
    n_runs = max(1, -(-n_kills // per_run))
    found = []
    for i in range(n_runs):
        storage = kinds[i % len(kinds)]
        sampler = ("qubo", "random")[(i // len(kinds)) % 2]
        found.append(_kill_case(i, storage, sampler, per_run, n_trials))
    return found


def _kill_case(index: int, storage: str, sampler: str, kills: int, n_trials: int) -> Case:
    def run(scratch: Path) -> dict[str, Any]:
        from tests.nas._harness import kill_and_resume

        outcome = kill_and_resume(
            scratch,
            storage,
            sampler,
            n_trials=n_trials,
            n_kills=kills,
            rng=random.Random(f"attack-{index}"),
        )
        counts = dataclasses.asdict(outcome)
        counts["final_stderr"] = outcome.final_stderr[-300:]
        landed = sum(code == -signal.SIGKILL for code in outcome.kill_exits)
        if outcome.final_exit != 0:
            return {
                "verdict": UNCLEAR,
                "detail": outcome.final_stderr[-300:],
                "kills": landed,
                **counts,
            }
        if outcome.running:
            kind = RUNNING
        elif outcome.evaluated != n_trials or outcome.changed_or_lost:
            kind = LOST
        elif outcome.duplicates:
            kind = DUPLICATE
        elif outcome.status_evaluated != n_trials or outcome.status_over_budget:
            kind = SILENT_WRONG
        else:
            kind = OK
        detail = (
            f"{landed} kills; evaluated {outcome.evaluated}/{n_trials}, duplicates "
            f"{outcome.duplicates}, running {outcome.running}, finished trials changed or lost "
            f"{outcome.changed_or_lost}, interrupted {outcome.interrupted}"
        )
        return {"verdict": kind, "detail": detail, "kills": landed, **counts}

    return Case(f"kill/{storage}/{sampler}/{index}", run, 600.0)


def concurrency_cases(n_runs: int, workers: int = 3, n_trials: int = 12) -> list[Case]:
    """``n_runs`` searches with ``workers`` processes on one study, over the storages; every
    other run starts all workers at once (each enqueues its start architecture)."""
    kinds = storages()
    return [
        _concurrency_case(
            i, kinds[i % len(kinds)], workers, n_trials, first_alone=bool(i // len(kinds) % 2)
        )
        for i in range(n_runs)
    ]


def _concurrency_case(
    index: int, storage: str, workers: int, n_trials: int, *, first_alone: bool
) -> Case:
    def run(scratch: Path) -> dict[str, Any]:
        from tests.nas._harness import cell_space, search_with_workers, storage_url, unique_name

        outcome = search_with_workers(
            cell_space(unique_name("attack")),
            scratch,
            storage_url(storage, scratch),
            n_trials=n_trials,
            workers=workers,
            seed=index,
            first_alone=first_alone,
        )
        counts = dataclasses.asdict(outcome)
        if any(code != 0 for code in outcome.exits):
            kind = UNCLEAR
        elif outcome.running:
            kind = RUNNING
        elif outcome.lost or outcome.evaluated < n_trials:
            kind = LOST
        elif outcome.duplicates:
            kind = DUPLICATE
        else:
            kind = OK
        detail = (
            f"exits {outcome.exits}; evaluated {outcome.evaluated}, duplicates "
            f"{outcome.duplicates}, lost {outcome.lost}, running {outcome.running}, "
            f"trust-region proposals {outcome.trust_region}"
        )
        return {"verdict": kind, "detail": detail, **counts}

    start = "together" if not first_alone else "after-one"
    return Case(f"concurrency/{storage}/{start}/{index}", run, 600.0)
