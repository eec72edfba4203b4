"""Harness functions for the QAOA benchmarks: each returns plain dicts, one per run.

``run.py`` in this folder turns them into tables and JSON; ``qopt bench`` can call them the
same way (``from benchmarks.qaoa.harness import compare_with_qiskit`` from the repository
root, or with this folder on ``sys.path``).

Every run is metered with :class:`qopt.solvers.MeteredComposite`, so times and joules come
with their provenance (``measured`` from RAPL/NVML, otherwise ``estimated``).
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import dimod
import numpy as np

from qopt.metering import record_of
from qopt.problems.maxcut import maxcut_bqm, random_regular_graph
from qopt.solvers import MeteredComposite, SimulatedAnnealingSolver
from qopt.solvers.decomposition import DecompositionSolver
from qopt.solvers.qaoa import QAOASolver, qaoa_cost_diagonal, qaoa_expectation

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"


def three_regular_maxcut(n: int, seed: int) -> tuple[dimod.BinaryQuadraticModel, float]:
    """A random 3-regular MaxCut BQM (energy = -cut) and its maximum cut (by enumeration)."""
    bqm = maxcut_bqm(random_regular_graph(n, 3, seed=seed))
    best = -float(qaoa_cost_diagonal(bqm).min())
    return bqm, best


def _metered(
    solver: dimod.Sampler, name: str, bqm: dimod.BinaryQuadraticModel, **params: Any
) -> tuple[dimod.SampleSet, dict[str, Any]]:
    sampleset = MeteredComposite(solver, name=name).sample(bqm, **params)
    record = record_of(sampleset)
    return sampleset, {
        "wall_s": record.wall_s,
        "cpu_s": record.cpu_s,
        "energy_j": record.energy_j,
        "energy_provenance": record.energy_provenance,
        "energy_method": record.energy_method,
    }


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
        log("qaoa-qiskit is not importable here (pip install 'qopt[qiskit]'): qopt arms only.")
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
                sampleset, meter = _metered(solver, name, bqm)
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
            sampleset, meter = _metered(solver, "qaoa", bqm)
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


def gset_decomposition(
    names: Iterable[str],
    *,
    data: Path,
    seeds: Iterable[int],
    subproblem_size: int,
    max_iterations: int,
    patience: int,
    reps: int,
    initial: str = "sa",
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Decomposition with a QAOA subsolver on G-set instances, beside SA.

    Per instance and seed: ``sa`` (qopt's default, 10 reads x 1000 sweeps) and
    ``qaoa+decompose`` (:class:`DecompositionSolver` over :class:`QAOASolver`), with the cut
    of the search's starting state recorded so that the subproblems' share is visible.
    """
    from qopt.io import load_problem

    rows: list[dict[str, Any]] = []
    for name in names:
        problem = load_problem(data / "gset" / f"{name}.txt")
        best = problem.best_known
        for seed in seeds:
            sa_set, sa_meter = _metered(SimulatedAnnealingSolver(seed=seed), "sa", problem.bqm)
            child = QAOASolver(reps=reps, maxiter=30, num_reads=100, seed=seed)
            solver = DecompositionSolver(
                child,
                subproblem_size=subproblem_size,
                max_iterations=max_iterations,
                patience=patience,
                initial=initial,
                seed=seed,
            )
            start = time.perf_counter()
            dec_set, dec_meter = _metered(solver, "qaoa+decompose", problem.bqm)
            elapsed = time.perf_counter() - start
            info = dec_set.info["decomposition"]
            for solver_name, sampleset, meter, extra in [
                ("sa", sa_set, sa_meter, {}),
                (
                    "qaoa+decompose",
                    dec_set,
                    dec_meter,
                    {
                        "initial": initial,
                        "initial_cut": -info["initial_energy"],
                        "iterations": info["iterations"],
                        "improvements": info["improvements"],
                        "stopped": info["stopped"],
                        "child_seconds": info["child_seconds"],
                        "subproblem_size": subproblem_size,
                        "qaoa_reps": reps,
                    },
                ),
            ]:
                cut = -float(sampleset.first.energy)
                row = {
                    "benchmark": "gset",
                    "problem": name,
                    "seed": seed,
                    "solver": solver_name,
                    "cut": cut,
                    "best_known": best,
                    "ratio": None if not best else cut / best,
                    **meter,
                    **extra,
                }
                rows.append(row)
            log(
                f"  {name} seed={seed}: sa {-float(sa_set.first.energy):.0f} "
                f"({sa_meter['wall_s']:.2f}s); decomposition {-float(dec_set.first.energy):.0f} "
                f"from {-info['initial_energy']:.0f} in {elapsed:.1f}s, "
                f"{info['iterations']} subproblems ({info['stopped']}); best known {best:g}"
            )
    return rows


def _median_spread(values: Sequence[float | None]) -> str:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return "n/a"
    return f"{statistics.median(finite):.4g} [{min(finite):.4g}, {max(finite):.4g}]"


def table(rows: Sequence[dict[str, Any]], group_by: Sequence[str], columns: Sequence[str]) -> str:
    """Median [min, max] of each column over the rows of each group, as plain text."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in group_by), []).append(row)
    header = [*group_by, "runs", *columns]
    lines = []
    for key, members in groups.items():
        cells = [str(k) for k in key] + [str(len(members))]
        cells += [_median_spread([m.get(c) for m in members]) for c in columns]
        lines.append(cells)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    text = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    text.append("-" * len(text[0]))
    text += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    return "\n".join(text)


def write_results(kind: str, payload: dict[str, Any], out: Path | None = None) -> Path:
    """Write ``payload`` as JSON to ``out`` or ``benchmarks/results/qaoa-<kind>-<time>.json``."""
    path = out or RESULTS / f"qaoa-{kind}-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float))
    return path
