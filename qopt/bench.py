"""The quality / time-to-solution / energy-to-solution harness behind ``qopt bench`` and
the scripts under ``benchmarks/``.

A *trial* is one solve of one problem by one solver with one seed. A *summary* gathers the
trials of a (problem, solver) pair: median objective with its spread, the fraction of runs that
reach the target, and from that TTS99 and ETS99 (energy to solution at 99% confidence), with
the energy's provenance carried through.

Example:
    >>> import dimod
    >>> from qopt.bench import run_trials, summarize
    >>> from qopt.io import ProblemFile
    >>> bqm = dimod.generators.ran_r(1, 12, seed=0).change_vartype("BINARY", inplace=False)
    >>> problem = ProblemFile("ran12", "json", bqm, "min", best_known=None)
    >>> trials = run_trials(problem, "sa", seeds=range(3))
    >>> summary = summarize(trials, problem, target=min(t.objective for t in trials))
    >>> summary.runs, summary.success
    (3, 1.0)
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qopt.io import ProblemFile
from qopt.metering import record_of
from qopt.quality import gap_to_best_known, reaches_target, tts

__all__ = [
    "Comparison",
    "Summary",
    "Trial",
    "compare_solvers",
    "format_table",
    "machine_info",
    "run_trials",
    "summarize",
]


@dataclass(frozen=True)
class Trial:
    """One solve: its best objective and what it cost."""

    problem: str
    solver: str
    seed: int
    objective: float
    wall_s: float
    cpu_s: float
    energy_j: float | None
    energy_provenance: str
    energy_method: str
    fallback: str | None
    mock: bool


@dataclass(frozen=True)
class Summary:
    """The trials of one (problem, solver) pair, summarised."""

    problem: str
    solver: str
    runs: int
    target: float
    target_source: str
    best_known: float | None
    median_objective: float
    min_objective: float
    max_objective: float
    median_gap: float | None
    success: float
    median_wall_s: float | None
    tts99_s: float | None
    median_energy_j: float | None
    ets99_j: float | None
    energy_provenance: str
    fallbacks: int
    mock: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_trials(
    problem: ProblemFile,
    solver: str,
    *,
    seeds: Iterable[int],
    options: dict[str, Any] | None = None,
) -> list[Trial]:
    """Solve ``problem`` once per seed with ``get_solver(solver, seed=seed, **options)``."""
    from qopt.solvers import get_solver

    trials = []
    for seed in seeds:
        sampleset = get_solver(solver, seed=seed, **(options or {})).sample(problem.bqm)
        record = record_of(sampleset)
        trials.append(
            Trial(
                problem=problem.name,
                solver=solver,
                seed=seed,
                objective=problem.objective(sampleset.first.energy),
                wall_s=record.wall_s,
                cpu_s=record.cpu_s,
                energy_j=record.energy_j,
                energy_provenance=record.energy_provenance,
                energy_method=record.energy_method,
                fallback=record.fallback,
                mock=record.mock,
            )
        )
    return trials


def summarize(
    trials: Sequence[Trial], problem: ProblemFile, *, target: float, target_source: str = "given"
) -> Summary:
    """Summarise the trials of one (problem, solver) pair against ``target``.

    Mock trials keep their quality but lose their times and joules: those are never reported.
    """
    if not trials:
        raise ValueError("summarize needs at least one trial.")
    objectives = [t.objective for t in trials]
    success = sum(reaches_target(o, target, sense=problem.sense) for o in objectives) / len(trials)
    mock = any(t.mock for t in trials)
    wall = None if mock else statistics.median(t.wall_s for t in trials)
    joules = [t.energy_j for t in trials if t.energy_j is not None]
    energy = None if mock or not joules else statistics.median(joules)
    provenances = sorted({t.energy_provenance for t in trials})
    return Summary(
        problem=problem.name,
        solver=trials[0].solver,
        runs=len(trials),
        target=target,
        target_source=target_source,
        best_known=problem.best_known,
        median_objective=statistics.median(objectives),
        min_objective=min(objectives),
        max_objective=max(objectives),
        median_gap=None
        if problem.best_known is None
        else statistics.median(
            gap_to_best_known(o, problem.best_known, sense=problem.sense) for o in objectives
        ),
        success=success,
        median_wall_s=wall,
        tts99_s=None if wall is None else tts(wall, success),
        median_energy_j=energy,
        ets99_j=None if energy is None else tts(energy, success),
        energy_provenance="/".join(provenances),
        fallbacks=sum(t.fallback is not None for t in trials),
        mock=mock,
    )


@dataclass(frozen=True)
class Comparison:
    """Several solvers on one problem against one target."""

    problem: str
    reference: float
    reference_source: str
    target: float
    summaries: list[Summary]
    trials: list[Trial]


def compare_solvers(
    problem: ProblemFile,
    solvers: dict[str, dict[str, Any]],
    *,
    seeds: int,
    target_ratio: float = 1.0,
) -> Comparison:
    """Run every solver on ``problem`` and summarise them against a common target.

    The reference is the best-known value when the problem has one, otherwise the best value
    any of these solvers found (then say so when reporting). The target is
    ``target_ratio x reference``: a ratio of a cut for MaxCut, and for a minimum below zero
    likewise a fraction of it.

    Args:
        problem: The problem.
        solvers: Backend names mapped to their options (seeds are added per run).
        seeds: Runs per solver, seeded 0..seeds-1.
        target_ratio: In (0, 1].
    """
    if not 0 < target_ratio <= 1:
        raise ValueError(f"target_ratio must be in (0, 1]. Got {target_ratio!r} instead.")
    runs = {
        name: run_trials(problem, name, seeds=range(seeds), options=opts)
        for name, opts in solvers.items()
    }
    if problem.best_known is not None:
        reference, source = problem.best_known, "best known"
    else:
        pick = max if problem.sense == "max" else min
        reference = pick(t.objective for trials in runs.values() for t in trials)
        source = "best found by any solver here"
    target = reference * target_ratio
    return Comparison(
        problem=problem.name,
        reference=reference,
        reference_source=source,
        target=target,
        summaries=[
            summarize(t, problem, target=target, target_source=source) for t in runs.values()
        ],
        trials=[t for trials in runs.values() for t in trials],
    )


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.3g}{unit}"


def format_table(summaries: Sequence[Summary]) -> str:
    """A plain-text table, one row per (problem, solver)."""
    header = (
        f"{'problem':<10} {'solver':<12} {'runs':>4} {'median':>10} {'[min, max]':>19} "
        f"{'gap':>7} {'P(hit)':>6} {'time':>8} {'TTS99':>8} {'joules':>8} {'ETS99':>8}  energy"
    )
    lines = [header, "-" * len(header)]
    for s in summaries:
        gap = "n/a" if s.median_gap is None else f"{100 * s.median_gap:.2f}%"
        spread = f"[{s.min_objective:g}, {s.max_objective:g}]"
        provenance = "not reported (mock)" if s.mock else s.energy_provenance
        lines.append(
            f"{s.problem:<10} {s.solver:<12} {s.runs:>4} {s.median_objective:>10g} {spread:>19} "
            f"{gap:>7} {s.success:>6.2f} {_number(s.median_wall_s, 's'):>8} "
            f"{_number(s.tts99_s, 's'):>8} {_number(s.median_energy_j, 'J'):>8} "
            f"{_number(s.ets99_j, 'J'):>8}  {provenance}"
            + (f"  ({s.fallbacks} fallbacks)" if s.fallbacks else "")
        )
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    """What ran the benchmark: machine, Python, core count, and the commit."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    return {
        "machine": platform.machine(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "commit": commit or "unknown",
    }
