"""Can NAS-Bench-Graph's parameter and latency columns be a QUBO budget? Fit and measure.

Fits least-squares cost models over the choice bits of NAS-Bench-Graph's space (one-hot link
pattern, one-hot operation at each of the four nodes): linear, and quadratic (every pair of
bits of different choices, which includes link pattern x operation). Prints the worst error,
the RMSE and, for a budget at the median cost, how many architectures within the budget a
constraint "model + margin <= budget" would cut off when the margin is the worst
underestimate (so that no over-budget architecture is ever proposed).

``--relaxations`` instead measures the lower bounds a QUBO can use as a relaxation (never
cutting off an architecture within budget): least squares shifted down by its worst
overestimate, and the tightest linear lower bound (a linear program,
``qopt.nas._tables.nbg_lower_bound``, what ``nas_bench_graph_space`` uses). For budgets at
the 25th, 50th and 75th percentile it prints the share of the *over-budget* cells each bound
excludes (the larger, the fewer proposals the runner has to reject).

    pip install nas-bench-graph==1.4.0
    python benchmarks/nas/nbg_cost_model.py --datasets cora arxiv
    python benchmarks/nas/nbg_cost_model.py --relaxations --datasets cora pubmed arxiv
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np


def table(dataset: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Choice indices (link, op0..op3) of every architecture in the table, and its costs."""
    from nas_bench_graph.architecture import Arch, gnn_list, link_list
    from nas_bench_graph.readbench import light_read

    bench = light_read(dataset)
    rows, params, latency = [], [], []
    for li, link in enumerate(link_list):
        for ops in itertools.product(range(len(gnn_list)), repeat=4):
            key = Arch(list(link), [gnn_list[o] for o in ops]).valid_hash()
            if key in bench:
                rows.append((li, *ops))
                params.append(bench[key]["para"])
                latency.append(bench[key]["latency"])
    return np.array(rows), {"params (M)": np.array(params), "latency (s)": np.array(latency)}


def features(rows: np.ndarray, quadratic: bool) -> np.ndarray:
    """Constant, one-hot bits and (if ``quadratic``) products of bits of different choices."""
    width = int(rows.max()) + 1
    bits = np.hstack([np.eye(width)[rows[:, i]] for i in range(rows.shape[1])])
    group = np.repeat(np.arange(rows.shape[1]), width)
    columns = [np.ones((len(rows), 1)), bits]
    if quadratic:
        pairs = [
            (a, b)
            for a in range(bits.shape[1])
            for b in range(a + 1, bits.shape[1])
            if group[a] != group[b]
        ]
        columns.append(np.stack([bits[:, a] * bits[:, b] for a, b in pairs], axis=1))
    return np.hstack(columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["cora", "arxiv"])
    parser.add_argument("--relaxations", action="store_true")
    args = parser.parse_args()
    if args.relaxations:
        relaxations(args.datasets)
        return
    print("| dataset | cost | model | max abs error | RMSE | range | cut off at median budget |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for dataset in args.datasets:
        rows, costs = table(dataset)
        for name, y in costs.items():
            budget = float(np.median(y))
            for label, quadratic in (("linear", False), ("quadratic", True)):
                A = features(rows, quadratic)
                w = np.linalg.lstsq(A, y, rcond=None)[0]
                error = A @ w - y
                margin = max(0.0, float(-error.min()))  # worst underestimate
                inside = y <= budget
                kept = (A @ w + margin <= budget) & inside
                print(
                    f"| {dataset} | {name} | {label} | {np.abs(error).max():.4g} | "
                    f"{np.sqrt((error**2).mean()):.3g} | {np.ptp(y):.4g} | "
                    f"{1 - kept.sum() / inside.sum():.0%} |"
                )


def relaxations(datasets: list[str]) -> None:
    """Print the share of over-budget cells each linear lower bound excludes."""
    from qopt.nas._tables import NBG_COLUMNS, nbg_column, nbg_lower_bound

    print(
        "| dataset | cost | budget (percentile) | over budget | excluded: shifted least "
        "squares | excluded: LP lower bound |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for dataset in datasets:
        for kind, column in NBG_COLUMNS.items():
            y = nbg_column(dataset, column)
            grid = np.indices(y.shape).reshape(y.ndim, -1).T
            cost = y.ravel()
            keep = np.isfinite(cost)
            A = features(grid[keep], quadratic=False)
            w = np.linalg.lstsq(A, cost[keep], rcond=None)[0]
            shifted = A @ w - float(np.max(A @ w - cost[keep]))
            constant, parts = nbg_lower_bound(dataset, kind)
            lp = constant + sum(part[grid[keep][:, i]] for i, part in enumerate(parts))
            assert np.all(shifted <= cost[keep] + 1e-12) and np.all(lp <= cost[keep])
            for q in (25, 50, 75):
                budget = float(np.percentile(cost[keep], q))
                over = cost[keep] > budget
                print(
                    f"| {dataset} | {kind} | {budget:.4g} ({q}th) | {over.mean():.0%} | "
                    f"{np.mean(shifted[over] > budget):.0%} | {np.mean(lp[over] > budget):.0%} |"
                )


if __name__ == "__main__":
    main()
