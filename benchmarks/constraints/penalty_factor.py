"""Why the local penalty rule uses factor 2: infeasible reads of simulated annealing per factor.

A 4-variable one-hot constraint over an objective whose biases all pull toward 1
(``h_i = -10``, so the largest single-flip change ``max D_i`` is 10). Each penalty weight is
``factor x max D_i``; the global rule (``1.1 x R``, R = sum of |biases|) is shown beside it.
Prints the median share of infeasible reads over seeds, with [min, max].

    python benchmarks/constraints/penalty_factor.py            # the figures in qopt/constraints.py
"""

from __future__ import annotations

import argparse
import statistics

import dimod

from qopt.bench import machine_info
from qopt.constraints import ConstrainedQUBO
from qopt.solvers import get_solver


def infeasible_share(weight: float, *, size: int, bias: float, reads: int, seed: int) -> float:
    objective = dimod.BinaryQuadraticModel({f"x{i}": bias for i in range(size)}, {}, 0, "BINARY")
    model = ConstrainedQUBO(objective)
    model.add_one_hot([f"x{i}" for i in range(size)], label="one")
    sampleset = get_solver("sa", num_reads=reads, seed=seed).sample(model.to_bqm(penalty=weight))
    samples = [dict(sample) for sample in sampleset.samples()]
    return sum(not model.is_feasible(s) for s in samples) / len(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--size", type=int, default=4)
    parser.add_argument("--bias", type=float, default=-10.0)
    parser.add_argument("--factors", type=float, nargs="+", default=[1.1, 1.5, 2.0, 3.0])
    args = parser.parse_args()

    max_change = abs(args.bias)
    rows = [(f"local, factor {f:g}", f * max_change) for f in args.factors]
    rows.append(("global rule, 1.1 x R", 1.1 * args.size * max_change))
    print(f"machine: {machine_info()}")
    print(
        f"one-hot over {args.size} variables, h_i = {args.bias:g}; sa with qopt defaults, "
        f"{args.reads} reads x {args.seeds} seeds\n"
    )
    print(f"{'penalty':<24} {'weight':>7} {'infeasible reads':>17} {'[min, max]':>15}")
    for name, weight in rows:
        shares = [
            infeasible_share(weight, size=args.size, bias=args.bias, reads=args.reads, seed=s)
            for s in range(args.seeds)
        ]
        print(
            f"{name:<24} {weight:>7g} {100 * statistics.median(shares):>16.1f}% "
            f"{f'[{100 * min(shares):.1f}, {100 * max(shares):.1f}]':>15}"
        )


if __name__ == "__main__":
    main()
