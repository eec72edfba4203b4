"""Can NAS-Bench-Graph's parameter and latency columns be a QUBO budget? Fit and measure.

Fits least-squares cost models over the choice bits of NAS-Bench-Graph's space (one-hot link
pattern, one-hot operation at each of the four nodes): linear, and quadratic (every pair of
bits of different choices, which includes link pattern x operation). Prints the worst error,
the RMSE and, for a budget at the median cost, how many architectures within the budget a
constraint "model + margin <= budget" would cut off when the margin is the worst
underestimate (so that no over-budget architecture is ever proposed).

    pip install nas-bench-graph==1.4.0
    python benchmarks/nas/nbg_cost_model.py --datasets cora arxiv
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
