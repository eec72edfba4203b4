"""QAOA benchmarks: qopt's statevector ``qaoa`` against ``qaoa-qiskit``, its scaling, and
decomposition with a QAOA subsolver on G-set beside SA.

Each subcommand prints medians over seeds with [min, max] and writes every run as JSON under
benchmarks/results/ (or --out). Metering, tables and the JSON writer are qopt.bench's, the
same harness ``qopt bench`` and benchmarks/solvers/run.py use.

    python benchmarks/qaoa/run.py qiskit  --sizes 8 12 16 --reps 2 --maxiter 50 --seeds 3
    python benchmarks/qaoa/run.py scaling --sizes 8 12 16 20 24 --reps 3 --seeds 3
    python benchmarks/qaoa/run.py gset    --seeds 3 --initial steepest --max-iterations 1000 \
        --patience 1000 --repairs 2 --threads 1 --controls random none

Timings depend on the machine and on what else runs on it: each JSON file records the
machine, the commit, torch's thread count and the exact arguments.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import dimod
import numpy as np
import torch

from qopt.bench import (
    Trial,
    format_runs_table,
    machine_info,
    metered_sample,
    results_path,
    run_trials,
    write_results,
)
from qopt.io import load_problem
from qopt.problems.maxcut import maxcut_bqm, random_regular_graph
from qopt.solvers import SimulatedAnnealingSolver
from qopt.solvers.decomposition import DecompositionSolver
from qopt.solvers.qaoa import QAOASolver, qaoa_cost_diagonal, qaoa_expectation

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"


def three_regular_maxcut(n: int, seed: int) -> tuple[dimod.BinaryQuadraticModel, float]:
    """A random 3-regular MaxCut BQM (energy = -cut) and its maximum cut (by enumeration)."""
    bqm = maxcut_bqm(random_regular_graph(n, 3, seed=seed))
    best = -float(qaoa_cost_diagonal(bqm).min())
    return bqm, best


def warm_up(solver: dimod.Sampler) -> None:
    """One untimed solve of a 4-node ring: the first torch optimizer built in a process
    imports torch's compiler stack (about a second), qiskit builds its caches; neither is
    the per-solve cost a training loop pays."""
    solver.sample(maxcut_bqm([(0, 1), (1, 2), (2, 3), (3, 0)]))


def qiskit_solver_class() -> Callable[..., dimod.Sampler] | None:
    """``QiskitQAOASolver``, or ``None`` when qiskit (or the module) is not importable."""
    try:
        from qopt.solvers.qiskit_qaoa import QiskitQAOASolver
    except ImportError:
        return None
    return QiskitQAOASolver


def qiskit_angles_in_qopt_convention(
    parameters: dict[str, float], bqm: dimod.BinaryQuadraticModel
) -> tuple[list[float], list[float]]:
    """Map qiskit's optimal ``β[k]``, ``γ[k]`` to :class:`QAOASolver`'s angles.

    Qiskit applies ``exp(-i γ H)`` with ``H`` the BQM energy (minus a constant) and
    ``exp(-i β ΣX)``; qopt applies ``exp(-i γ' C)`` with ``C = (E - mean) / scale`` and
    ``exp(+i β' ΣX)``. So ``γ' = γ · scale`` and ``β' = -β``; the expectation of the same
    circuit can then be computed exactly (no shot noise) by :func:`qaoa_expectation`.
    """
    spin = bqm.spin
    scale = (
        max([abs(b) for b in spin.linear.values()] + [abs(b) for b in spin.quadratic.values()])
        or 1.0
    )

    def angles(letter: str) -> list[float]:
        named = {k: v for k, v in parameters.items() if k.startswith(letter)}
        return [named[k] for k in sorted(named, key=lambda k: int(k.split("[")[1].rstrip("]")))]

    return [g * scale for g in angles("γ")], [-b for b in angles("β")]


def compare_with_qiskit(
    sizes: Iterable[int],
    *,
    reps: int,
    maxiter: int,
    seeds: Iterable[int],
    qiskit_max_n: int = 16,
    shots: int = 1024,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """qopt ``qaoa`` against ``qaoa-qiskit`` on 3-regular MaxCut, at equal p and budget.

    Three arms per (n, seed): ``qaoa-qiskit`` (COBYLA, ``maxiter`` iterations, ``shots``
    shots per evaluation), ``qaoa[cobyla]`` (qopt with the same optimizer, iteration budget
    and linear-ramp start, exact expectations) and ``qaoa`` (qopt's defaults: L-BFGS with
    INTERP, ``maxiter`` evaluations per depth). Both qopt arms sample without polishing, like
    qiskit. The expectation ratio is ``<cut> / max cut`` computed exactly at each arm's final
    angles (qiskit's too, converted by :func:`qiskit_angles_in_qopt_convention`).
    """
    qiskit = qiskit_solver_class()
    if qiskit is None:
        log("qaoa-qiskit is not importable here (pip install 'qopt-loop[qiskit]'): qopt arms only.")
    rows: list[dict[str, Any]] = []
    for n in sizes:
        for seed in seeds:
            bqm, best = three_regular_maxcut(n, seed)
            arms: list[tuple[str, dimod.Sampler, int]] = [
                (
                    "qaoa[cobyla]",
                    QAOASolver(
                        reps=reps,
                        maxiter=maxiter,
                        optimizer="cobyla",
                        init="ramp",
                        seed=seed,
                        polish=False,
                        num_reads=shots,
                    ),
                    maxiter,
                ),
                (
                    "qaoa",
                    QAOASolver(
                        reps=reps, maxiter=maxiter, seed=seed, polish=False, num_reads=shots
                    ),
                    maxiter,
                ),
            ]
            if qiskit is not None and n <= qiskit_max_n:
                arms.append(
                    (
                        "qaoa-qiskit",
                        qiskit(reps=reps, maxiter=maxiter, seed=seed, shots=shots, max_qubits=n),
                        maxiter,
                    )
                )
            for name, solver, _ in arms:
                warm_up(solver)
                sampleset, meter = metered_sample(solver, bqm, name=name)
                info = sampleset.info
                if name == "qaoa-qiskit":
                    gammas, betas = qiskit_angles_in_qopt_convention(
                        info["optimal_parameters"], bqm
                    )
                    expectation = qaoa_expectation(bqm, gammas, betas)
                    evaluations = info["num_function_evaluations"]
                    reported = info.get("expected_energy")
                else:
                    expectation = info["expectation"]
                    evaluations = info["evaluations"]
                    reported = expectation
                energies = sampleset.record.energy
                counts = sampleset.record.num_occurrences
                row = {
                    "benchmark": "qiskit",
                    "n": n,
                    "seed": seed,
                    "solver": name,
                    "reps": reps,
                    "maxiter": maxiter,
                    "max_cut": best,
                    "expectation_ratio": -expectation / best,
                    "reported_expectation_ratio": None if reported is None else -reported / best,
                    "best_sample_ratio": -float(energies.min()) / best,
                    "sample_mean_ratio": -float(np.average(energies, weights=counts)) / best,
                    "evaluations": evaluations,
                    **meter,
                }
                rows.append(row)
                log(
                    f"  n={n:>2} seed={seed} {name:<13} {row['wall_s']:8.3f}s "
                    f"ratio <C> {row['expectation_ratio']:.4f} evals {evaluations}"
                )
    return rows


def qaoa_scaling(
    sizes: Iterable[int],
    *,
    reps: int,
    maxiter: int,
    seeds: Iterable[int],
    dtype: str = "float32",
    device: str = "cpu",
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Time to optimize and sample qopt ``qaoa`` on 3-regular MaxCut as n grows."""
    rows: list[dict[str, Any]] = []
    for n in sizes:
        for seed in seeds:
            bqm, best = (
                three_regular_maxcut(n, seed)
                if n <= 26
                else (
                    maxcut_bqm(random_regular_graph(n, 3, seed=seed)),
                    math.nan,
                )
            )
            solver = QAOASolver(reps=reps, maxiter=maxiter, seed=seed, dtype=dtype, device=device)
            warm_up(solver)
            sampleset, meter = metered_sample(solver, bqm, name="qaoa")
            info = sampleset.info
            timing = info["timing"]
            row = {
                "benchmark": "scaling",
                "n": n,
                "seed": seed,
                "solver": "qaoa",
                "reps": reps,
                "maxiter": maxiter,
                "dtype": dtype,
                "device": device,
                "max_cut": best,
                "expectation_ratio": -info["expectation"] / best,
                "best_sample_ratio": -float(sampleset.first.energy) / best,
                "evaluations": info["evaluations"],
                "optimize_and_sample_s": timing["sampling_ns"] / 1e9,
                "seconds_per_evaluation": timing["sampling_ns"] / 1e9 / max(1, info["evaluations"]),
                **meter,
            }
            rows.append(row)
            log(
                f"  n={n:>2} seed={seed} {row['wall_s']:8.3f}s "
                f"({row['seconds_per_evaluation'] * 1e3:.1f} ms/eval, {info['evaluations']} evals) "
                f"ratio <C> {row['expectation_ratio']:.4f}"
            )
    return rows


class RandomChild(dimod.Sampler):
    """A control subsolver: ``num_reads`` uniformly random assignments of the subproblem.

    Run in place of QAOA it shows how much of the search's progress the large-neighbourhood
    search itself (its tabu moves) makes without a real subsolver.
    """

    def __init__(self, *, num_reads: int = 100, seed: int | None = None) -> None:
        self.num_reads = num_reads
        self.rng = np.random.default_rng(seed)

    @property
    def parameters(self) -> dict[str, list[Any]]:
        return {}

    @property
    def properties(self) -> dict[str, Any]:
        return {}

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        bits = self.rng.integers(0, 2, size=(self.num_reads, bqm.num_variables), dtype=np.int8)
        if bqm.vartype is dimod.SPIN:
            bits = 2 * bits - 1
        return dimod.SampleSet.from_samples_bqm((bits, list(bqm.variables)), bqm)


def _decomposition_facts(sampleset: dimod.SampleSet) -> dict[str, Any]:
    info = sampleset.info["decomposition"]
    return {
        "initial_cut": -info["initial_energy"],
        "iterations": info["iterations"],
        "improvements": info["improvements"],
        "moves": info["moves"],
        "stopped": info["stopped"],
        "child_calls": info["child_calls"],
        "child_improvements": info["child_improvements"],
        "child_gain": info["child_gain"],
        "child_best": info["child_best"],
        "child_seconds": info["child_seconds"],
    }


def gset_decomposition(
    names: Iterable[str],
    *,
    data: Path,
    seeds: Iterable[int],
    subproblem_size: int,
    max_iterations: int,
    patience: int,
    reps: int,
    repairs: int = 2,
    polish: bool = False,
    initial: str = "sa",
    tabu_moves: int = 100,
    controls: Iterable[str] = (),
    log: Callable[[str], None] = print,
) -> list[Trial]:
    """Decomposition with a QAOA subsolver on G-set instances, beside SA.

    Per instance and seed: ``sa`` (qopt's default, 10 reads x 1000 sweeps) and
    ``qaoa+decompose`` (:class:`DecompositionSolver` over :class:`QAOASolver`), with the cut
    of the search's starting state in ``info`` so that the subproblems' share is visible.
    ``controls`` adds the same search (same seed, so the same starting state) over other
    children: ``"random"`` (100 uniformly random assignments per subproblem, see
    :class:`RandomChild`), ``"none"`` (no child call: the search's tabu moves only,
    ``repairs=0``) and ``"exact"`` (dimod's exact solver: the best any child
    can do). The QAOA child samples without polishing (``polish``: descend its samples first),
    so its answers are the circuit's own shots.
    """

    def search(
        child: Callable[[int], dimod.Sampler], child_repairs: int = repairs
    ) -> Callable[[int], dimod.Sampler]:
        return lambda seed: DecompositionSolver(
            child(seed),
            subproblem_size=subproblem_size,
            max_iterations=max_iterations,
            patience=patience,
            initial=initial,
            tabu_moves=tabu_moves,
            repairs=child_repairs,
            seed=seed,
        )

    arms: dict[str, Callable[[int], dimod.Sampler]] = {
        "qaoa+decompose": search(
            lambda seed: QAOASolver(reps=reps, maxiter=30, num_reads=100, seed=seed, polish=polish)
        )
    }
    for control in controls:
        if control == "random":
            arms["random+decompose"] = search(lambda seed: RandomChild(seed=seed))
        elif control == "none":
            arms["none+decompose"] = search(lambda seed: RandomChild(seed=seed), 0)
        elif control == "exact":
            arms["exact+decompose"] = search(lambda seed: dimod.ExactSolver())
        else:
            raise ValueError(f"Unknown control {control!r}: 'random', 'none' or 'exact'.")
    trials: list[Trial] = []
    for name in names:
        problem = load_problem(data / "gset" / f"{name}.txt")
        for seed in seeds:
            runs = run_trials(
                problem, lambda s: SimulatedAnnealingSolver(seed=s), seeds=[seed], name="sa"
            )
            for arm, factory in arms.items():
                runs += run_trials(
                    problem, factory, seeds=[seed], name=arm, extract=_decomposition_facts
                )
            trials += runs
            log(
                f"  {name} seed={seed}: "
                + "; ".join(
                    f"{t.solver} {t.objective:.0f}"
                    + (f" from {t.info['initial_cut']:.0f}" if t.info else "")
                    + f" ({t.wall_s:.1f}s"
                    + (f", {t.info['iterations']} iterations" if t.info else "")
                    + ")"
                    for t in runs
                )
                + f"; best known {problem.best_known:g}"
            )
    return trials


def speedups(rows: list[dict[str, Any]]) -> str:
    """Median qaoa-qiskit time over median qopt time, per n, for each qopt arm."""
    lines = []
    for n in sorted({r["n"] for r in rows}):
        times = {
            name: statistics.median(
                r["wall_s"] for r in rows if r["n"] == n and r["solver"] == name
            )
            for name in {r["solver"] for r in rows if r["n"] == n}
        }
        if "qaoa-qiskit" not in times:
            continue
        parts = [
            f"{name} {times['qaoa-qiskit'] / times[name]:.0f}x"
            for name in ("qaoa[cobyla]", "qaoa")
            if name in times
        ]
        lines.append(
            f"  n={n}: qaoa-qiskit {times['qaoa-qiskit']:.2f}s; speed-up " + ", ".join(parts)
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="benchmark", required=True)

    qiskit = sub.add_parser("qiskit", help="qopt qaoa vs qaoa-qiskit on 3-regular MaxCut")
    qiskit.add_argument("--sizes", type=int, nargs="+", default=[8, 12, 16])
    qiskit.add_argument("--reps", type=int, default=2)
    qiskit.add_argument("--maxiter", type=int, default=50, help="optimizer iterations")
    qiskit.add_argument("--seeds", type=int, default=3)
    qiskit.add_argument("--qiskit-max-n", type=int, default=16, help="largest n run on qiskit")
    qiskit.add_argument("--shots", type=int, default=1024)

    scaling = sub.add_parser("scaling", help="qopt qaoa time as n grows")
    scaling.add_argument("--sizes", type=int, nargs="+", default=[8, 12, 16, 20, 22, 24])
    scaling.add_argument("--reps", type=int, default=3)
    scaling.add_argument("--maxiter", type=int, default=50, help="evaluations per depth")
    scaling.add_argument("--seeds", type=int, default=3)
    scaling.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    scaling.add_argument("--device", default="cpu")

    gset = sub.add_parser("gset", help="decomposition with a QAOA subsolver on G-set, beside SA")
    gset.add_argument("--instances", nargs="+", default=[f"G{i}" for i in range(1, 11)])
    gset.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    gset.add_argument("--seeds", type=int, default=3)
    gset.add_argument("--subproblem-size", type=int, default=12)
    gset.add_argument("--max-iterations", type=int, default=1000)
    gset.add_argument("--patience", type=int, default=200)
    gset.add_argument(
        "--reps",
        type=int,
        default=1,
        help="QAOA depth of the subsolver (p = 1 finds the optimum of most 12-variable "
        "subproblems among its 100 shots, at a third of p = 2's cost)",
    )
    gset.add_argument("--repairs", type=int, default=2, help="child calls per iteration")
    gset.add_argument(
        "--polish", action="store_true", help="descend the QAOA samples (off: raw shots)"
    )
    gset.add_argument("--initial", default="sa", choices=["sa", "steepest", "random"])
    gset.add_argument(
        "--tabu-moves", type=int, default=100, help="one-flip tabu moves per iteration"
    )
    gset.add_argument(
        "--controls",
        nargs="*",
        default=[],
        choices=["random", "none", "exact"],
        help="also run the search over random assignments / with no child / with an exact one",
    )

    for p in (qiskit, scaling, gset):
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        p.add_argument("--first-seed", type=int, default=0, help="seeds run from this one")
        p.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    seeds = range(args.first_seed, args.first_seed + args.seeds)

    if args.benchmark == "qiskit":
        rows = compare_with_qiskit(
            args.sizes,
            reps=args.reps,
            maxiter=args.maxiter,
            seeds=seeds,
            qiskit_max_n=args.qiskit_max_n,
            shots=args.shots,
        )
        print()
        print(
            format_runs_table(
                rows,
                ["n", "solver"],
                ["wall_s", "evaluations", "expectation_ratio", "best_sample_ratio"],
            )
        )
        print(speedups(rows))
        print(
            "\nexpectation_ratio: <cut>/max cut computed exactly at each arm's final angles; "
            "best_sample_ratio: best of the final shots, unpolished."
        )
    elif args.benchmark == "scaling":
        rows = qaoa_scaling(
            args.sizes,
            reps=args.reps,
            maxiter=args.maxiter,
            seeds=seeds,
            dtype=args.dtype,
            device=args.device,
        )
        print()
        print(
            format_runs_table(
                rows,
                ["n"],
                [
                    "wall_s",
                    "evaluations",
                    "seconds_per_evaluation",
                    "energy_j",
                    "expectation_ratio",
                ],
            )
        )
        provenance = sorted({r["energy_provenance"] for r in rows})
        print(f"energy: {', '.join(provenance)} ({rows[0]['energy_method']})")
    else:
        trials = gset_decomposition(
            args.instances,
            data=args.data,
            seeds=seeds,
            subproblem_size=args.subproblem_size,
            max_iterations=args.max_iterations,
            patience=args.patience,
            reps=args.reps,
            repairs=args.repairs,
            polish=args.polish,
            initial=args.initial,
            tabu_moves=args.tabu_moves,
            controls=args.controls,
        )
        best_known = {
            name: load_problem(args.data / "gset" / f"{name}.txt").best_known
            for name in args.instances
        }
        rows = []
        for trial in trials:
            best = best_known[trial.problem] or math.nan
            row = {**asdict(trial), **trial.info, "ratio": trial.objective / best}
            if "initial_cut" in trial.info:
                row["initial_ratio"] = trial.info["initial_cut"] / best
            rows.append(row)
        print()
        print(
            format_runs_table(
                rows,
                ["problem", "solver"],
                ["ratio", "initial_ratio", "cpu_s", "child_improvements", "child_gain"],
            )
        )
        print(
            "ratio: cut / best known; initial_ratio: the cut the search started from "
            f"({args.initial!r} start), so ratio - initial_ratio is what the search (tabu moves "
            "and subproblems) added; child_gain: energy removed by the child's answers."
        )

    info = {**machine_info(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    print(f"\nmachine: {info}")
    path = write_results(
        args.out or results_path(RESULTS, f"qaoa-{args.benchmark}"),
        {"machine": info, "arguments": {k: str(v) for k, v in vars(args).items()}, "runs": rows},
    )
    print(f"raw results: {path}")


if __name__ == "__main__":
    main()
