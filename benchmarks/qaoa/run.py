"""QAOA benchmarks: qopt's statevector ``qaoa`` against ``qaoa-qiskit``, its scaling, and
decomposition with a QAOA subsolver on G-set beside SA.

Each subcommand prints medians over seeds with [min, max] and writes every run as JSON under
benchmarks/results/ (or --out).

    python benchmarks/qaoa/run.py qiskit  --sizes 8 12 16 --reps 2 --maxiter 50 --seeds 3
    python benchmarks/qaoa/run.py scaling --sizes 8 12 16 20 24 --reps 3 --seeds 3
    python benchmarks/qaoa/run.py gset    --instances G1 G2 --seeds 2 --max-iterations 1000

Timings depend on the machine and on what else runs on it: each JSON file records the
machine, the commit, torch's thread count and the exact arguments.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # this folder is not a package: its path is added above
    REPO,
    compare_with_qiskit,
    gset_decomposition,
    qaoa_scaling,
    table,
    write_results,
)

from qopt.bench import machine_info


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
    gset.add_argument("--reps", type=int, default=2, help="QAOA depth of the subsolver")
    gset.add_argument("--initial", default="sa", choices=["sa", "steepest", "random"])

    for p in (qiskit, scaling, gset):
        p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        p.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    seeds = range(args.seeds)

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
            table(
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
            table(
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
        rows = gset_decomposition(
            args.instances,
            data=args.data,
            seeds=seeds,
            subproblem_size=args.subproblem_size,
            max_iterations=args.max_iterations,
            patience=args.patience,
            reps=args.reps,
            initial=args.initial,
        )
        for row in rows:
            if row["solver"] == "qaoa+decompose":
                row["initial_ratio"] = row["initial_cut"] / row["best_known"]
        print()
        print(
            table(
                rows,
                ["problem", "solver"],
                ["ratio", "initial_ratio", "wall_s", "energy_j", "iterations"],
            )
        )
        print(
            "ratio: cut / best known; initial_ratio: the cut the search started from "
            f"({args.initial!r} start), so ratio - initial_ratio is what the QAOA subproblems added."
        )

    info = {**machine_info(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    print(f"\nmachine: {info}")
    path = write_results(
        args.benchmark,
        {"machine": info, "arguments": {k: str(v) for k, v in vars(args).items()}, "runs": rows},
        args.out,
    )
    print(f"raw results: {path}")


if __name__ == "__main__":
    main()
