"""Every local backend on the public G-set and Beasley instances, plus a 36-node MaxCut.

Prints the quality / TTS99 / ETS99 table (median over seeds with [min, max]) and qopt's overhead
over calling dwave-samplers directly on the same BQM, and writes the raw trials as JSON.

    python benchmarks/solvers/run.py                      # a fresh run of the published grid
    python benchmarks/solvers/run.py --tables benchmarks/solvers/results/solvers.json.gz
                                                          # the tables in docs/benchmarks.md
    python benchmarks/solvers/run.py --seeds 3 --gset G1  # a quick look
    python benchmarks/solvers/run.py --plot plots         # also the PNG plots (qopt-loop[plot])

Runs, tables, JSON and plots come from qopt.bench, the harness behind ``qopt bench``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from qopt.bench import (
    Comparison,
    Summary,
    compare_solvers,
    format_table,
    machine_info,
    plot_quality_vs_time,
    plot_tts_vs_size,
    read_results,
    write_results,
)
from qopt.io import ProblemFile, load_problem
from qopt.problems.maxcut import maxcut_bqm, random_regular_graph

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data"

SOLVERS: dict[str, dict[str, Any]] = {
    "sa": {},  # qopt's defaults: 10 reads x 1000 sweeps
    "tabu": {},  # seeded: 5 restarts, no clock (TabuSolver.SEEDED_RESTARTS)
    "steepest": {"num_reads": 100},
}
# QAOA needs 2^n memory: on the 36-node graph it runs under decomposition, from a steepest-descent
# start so that the QAOA subproblems, not a classical start, do the work.
QAOA_36 = {"qaoa": {"decompose": {"initial": "steepest", "max_iterations": 200, "patience": 50}}}


def overhead(problem: ProblemFile, repeats: int) -> dict[str, float]:
    """Median time of qopt's metered 'sa' against dwave-samplers called directly, interleaved."""
    from dwave.samplers import SimulatedAnnealingSampler

    from qopt.solvers import get_solver

    raw_sampler = SimulatedAnnealingSampler()
    raw, built, qopt_total = [], [], []
    for seed in range(repeats):
        start = time.perf_counter()
        raw_sampler.sample(problem.bqm, num_reads=10, num_sweeps=1000, seed=seed).resolve()
        raw.append(time.perf_counter() - start)
        solver = get_solver("sa", seed=seed)
        start = time.perf_counter()
        solver.sample(problem.bqm).resolve()
        built.append(time.perf_counter() - start)
        start = time.perf_counter()
        get_solver("sa", seed=seed).sample(problem.bqm).resolve()
        qopt_total.append(time.perf_counter() - start)
    base = statistics.median(raw)
    return {
        "raw_s": base,
        "qopt_solve_s": statistics.median(built),
        "qopt_with_get_solver_s": statistics.median(qopt_total),
        "overhead_solve": statistics.median(built) / base - 1,
        "overhead_with_get_solver": statistics.median(qopt_total) / base - 1,
    }


def print_tables(payload: dict[str, Any]) -> None:
    """The quality / TTS99 / ETS99 table and the overhead table of one results payload."""
    settings = payload["settings"]
    print(f"machine: {payload['machine']}")
    print(
        f"targets: G-set {settings['gset_ratio']} x best known; Beasley the proven/best-known "
        "minimum;\n3reg36 (36-node 3-regular MaxCut) 0.90 x the best cut any solver found.\n"
    )
    print(format_table([Summary(**s) for s in payload["summaries"]]))
    print(
        f"\n{settings['seeds']} seeds each; median with [min, max]; "
        "P(hit) = fraction of runs reaching the target."
    )
    print(
        "\nqopt overhead over dwave-samplers' SimulatedAnnealingSampler "
        "(same BQM, 10 reads x 1000 sweeps):"
    )
    print(
        f"{'problem':<10} {'raw':>9} {'qopt solve':>11} {'overhead':>9} "
        f"{'+get_solver':>12} {'overhead':>9}"
    )
    for name, o in payload["overhead"].items():
        print(
            f"{name:<10} {1e3 * o['raw_s']:>7.1f}ms {1e3 * o['qopt_solve_s']:>9.1f}ms "
            f"{100 * o['overhead_solve']:>8.1f}% {1e3 * o['qopt_with_get_solver_s']:>10.1f}ms "
            f"{100 * o['overhead_with_get_solver']:>8.1f}%"
        )
    print(f"medians of {settings['overhead_repeats']} interleaved runs.")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder with gset/ and beasley/"
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--gset", nargs="*", default=[f"G{i}" for i in range(1, 11)])
    parser.add_argument(
        "--beasley", nargs="*", default=[f"bqp{n}-{k}" for n in (50, 100, 250) for k in (1, 2, 3)]
    )
    parser.add_argument(
        "--gset-ratio", type=float, default=0.999, help="G-set target: ratio x best known"
    )
    parser.add_argument("--overhead-repeats", type=int, default=41)
    parser.add_argument(
        "--out", type=Path, default=REPO / "benchmarks" / "results" / "solvers.json"
    )
    parser.add_argument(
        "--plot", type=Path, default=None, metavar="DIR", help="also write PNG plots to DIR"
    )
    parser.add_argument(
        "--tables",
        type=Path,
        default=None,
        metavar="JSON",
        help="print the tables of an earlier run's raw results (.json or .json.gz) and run nothing",
    )
    args = parser.parse_args()
    if args.tables is not None:
        print_tables(read_results(args.tables))
        return

    edges = random_regular_graph(36, 3, seed=0)
    problems: list[tuple[ProblemFile, float, dict[str, dict[str, Any]]]] = (
        [(load_problem(args.data / "gset" / f"{n}.txt"), args.gset_ratio, {}) for n in args.gset]
        + [(load_problem(args.data / "beasley" / f"{n}.txt"), 1.0, {}) for n in args.beasley]
        + [(ProblemFile("3reg36", "maxcut", maxcut_bqm(edges), "max"), 0.90, QAOA_36)]
    )
    comparisons: list[Comparison] = []
    summaries: list[Summary] = []
    trials: list[dict[str, Any]] = []
    for problem, ratio, extra in problems:
        solvers = {**SOLVERS, **extra}
        comparison = compare_solvers(problem, solvers, seeds=args.seeds, target_ratio=ratio)
        comparisons.append(comparison)
        summaries += comparison.summaries
        trials += [asdict(t) for t in comparison.trials]
    overheads = {
        path.stem: overhead(load_problem(path), args.overhead_repeats)
        for path in (args.data / "gset" / "G1.txt", args.data / "beasley" / "bqp100-1.txt")
    }
    payload: dict[str, Any] = {
        "machine": machine_info(),
        "settings": {
            "seeds": args.seeds,
            "gset_ratio": args.gset_ratio,
            "overhead_repeats": args.overhead_repeats,
        },
        "summaries": [s.to_dict() for s in summaries],
        "trials": trials,
        "overhead": overheads,
    }
    print_tables(payload)
    write_results(args.out, payload)
    if args.plot is not None:
        plot_quality_vs_time(comparisons, args.plot / "solvers-quality-vs-time.png")
        plot_tts_vs_size(comparisons, args.plot / "solvers-tts-vs-size.png")
        print(f"plots: {args.plot}/solvers-quality-vs-time.png, solvers-tts-vs-size.png")
    print(f"raw results: {args.out}")


if __name__ == "__main__":
    main()
