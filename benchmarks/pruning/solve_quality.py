"""How close does the solver get to the pruning QUBO's optimum? (the MLP of run.py)

Trains run.py's MLP on the fit part of a seed's validation split (as tune.py does), builds
the callback's problem for 2x and 3x fewer MACs (L1 importance divided by its group mean,
redundancy from the hidden activations of 256 training samples, alpha 0.5), and prints the
QUBO objective (lower is better) of: the SA answer (--num-reads, default and 10x sweeps), the
same answer polished by 1-swap local search (polish=True), tabu, and a plain greedy
drop-and-fill from the full network (the repair step applied to "keep everything").

    python benchmarks/pruning/solve_quality.py --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import EXAMPLE, data, fit, make_model

from qopt.model_analysis import count_params_and_macs, model_pruning_groups
from qopt.pipeline import solve
from qopt.problems.pruning import (
    PruningGroup,
    activation_redundancy,
    magnitude_importance,
    pruning_problem,
)


def energy(problem: Any, masks: dict[str, Any]) -> float:
    """The QUBO objective (no constraint penalty) of keep-masks."""
    sample = {(n, i): int(v) for n, m in masks.items() for i, v in enumerate(m)}
    return float(problem.model.objective.energy(sample))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-reads", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    example = EXAMPLE["mlp"]
    train, _ = data("mlp", args.seed, 64, validation=True)
    torch.manual_seed(args.seed)
    model = make_model("mlp")
    fit(model, example, train, 30, 1e-3, [], args.seed)
    groups = model_pruning_groups(model, example)
    macs = count_params_and_macs(model, example)[1]
    x = torch.cat([batch[0] for batch in train])[:256]
    with torch.no_grad():  # hidden activations after each ReLU: what the next layer reads
        hidden = {"0": torch.relu(model[0](x))}
        hidden["2"] = torch.relu(model[2](hidden["0"]))
    names = [g.name for g in groups]
    # MACs = 64 k0 + k0 k2 + 10 k2: per-unit costs and the bilinear term.
    unit_cost = {"0": 64.0, "2": 10.0}
    for speedup in (2, 3):
        for polish in (False, True):
            problem_groups = []
            for name in names:
                score = magnitude_importance(model.get_submodule(name).weight)
                problem_groups.append(
                    PruningGroup(
                        name,
                        score / score.mean(),
                        redundancy=activation_redundancy(hidden[name]),
                        unit_cost=unit_cost[name],
                    )
                )
            problem = pruning_problem(
                problem_groups,
                budget=macs / speedup,
                interactions={("0", "2"): 1.0},
                alpha=0.5,
                fill="budget",
                polish=polish,
            )

            rows = {
                "sa": solve(problem, solver="sa", num_reads=args.num_reads, seed=args.seed).value,
                "sa, 10x sweeps": solve(
                    problem,
                    solver="sa",
                    num_reads=args.num_reads,
                    num_sweeps=10_000,
                    seed=args.seed,
                ).value,
                "tabu": solve(problem, solver="tabu", num_reads=4, seed=args.seed).value,
            }
            everything = {(g.name, i): 1 for g in problem_groups for i in range(g.num_units)}
            assert problem.repair is not None and problem.decode is not None
            rows["greedy from the full network"] = problem.decode(problem.repair(everything))
            for label, masks in rows.items():
                kept = {n: int(np.count_nonzero(m)) for n, m in masks.items()}
                assert problem.cost(masks) == groups.cost(kept, "macs") <= macs / speedup
                print(
                    f"{speedup}x polish={polish!s:5} {label:30s} objective {energy(problem, masks):8.3f} "
                    f"kept {kept}"
                )


if __name__ == "__main__":
    main()
