"""Quantum head against classical heads on the same features: accuracy, time and energy.

Each seed draws a stratified split (``--train`` examples to fit on, the rest to test),
standardizes the features on the training part, and fits every head on the same data:

- ``quantum[n]``: :class:`qopt.circuits.QuantumHead` with ``n`` qubits (angle encoding with
  re-uploading, ``--layers`` layers, CZ ring), trained by :func:`qopt.circuits.fit_head`;
- ``logistic``: scikit-learn's ``LogisticRegression``;
- ``linear-svc``: scikit-learn's ``LinearSVC``;
- ``mlp[n]``: scikit-learn's ``MLPClassifier`` with one hidden layer sized so that it has
  about as many trainable parameters as ``quantum[n]``.

Every fit is metered by :class:`qopt.metering.Meter` (wall and CPU seconds; joules measured
where a counter is readable, otherwise estimated, with the model named). The table gives
medians over seeds with [min, max], and a Wilcoxon signed-rank test (scipy) of each quantum
head against each classical head on the paired per-seed test accuracies.

    python benchmarks/finetune/heads.py --dataset breast-cancer --seeds 10 --qubits 4 8

Datasets that ship with scikit-learn (no network): ``breast-cancer`` (569 tumours, 30
features, 2 classes) and ``digits-3-8`` (8 x 8 images of 3s and 8s, 64 pixels).
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.stats import wilcoxon
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from qopt.bench import format_spread, machine_info, results_path, write_results
from qopt.circuits import QuantumHead, fit_head
from qopt.metering import Meter


def dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "breast-cancer":
        data = load_breast_cancer()
        return data.data, data.target
    digits = load_digits()
    keep = np.isin(digits.target, [3, 8])
    return digits.data[keep], (digits.target[keep] == 8).astype(int)


def quantum_parameters(features: int, qubits: int, layers: int, classes: int) -> int:
    head = QuantumHead(features, classes, num_qubits=qubits, layers=layers, seed=0)
    return sum(p.numel() for p in head.parameters())


def mlp_hidden(features: int, classes: int, parameters: int) -> int:
    """Hidden units of a one-hidden-layer MLP with about ``parameters`` parameters."""
    outputs = 1 if classes == 2 else classes  # scikit-learn's binary MLP has one output
    return max(1, round((parameters - outputs) / (features + 1 + outputs)))


def classical_fit(model: Any) -> Callable[..., tuple[float, Any]]:
    def fit(
        x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
    ) -> tuple[float, Any]:
        with Meter() as meter:
            model.fit(x_train, y_train)
        return float(model.score(x_test, y_test)), meter.reading

    return fit


def run_row(
    seed: int, head: str, test_accuracy: float, reading: Any, **extra: Any
) -> dict[str, Any]:
    """One fit's raw record: accuracy, wall and CPU seconds, joules with their provenance."""
    return {
        "seed": seed,
        "head": head,
        **extra,
        "test_accuracy": test_accuracy,
        "wall_s": reading.wall_s,
        "cpu_s": reading.cpu_s,
        "energy_j": reading.energy.joules,
        "energy_provenance": reading.energy.provenance,
        "energy_method": reading.energy.method,
    }


def spread(values: list[float], kind: str = "range", digits: int = 3) -> str:
    """``median [min, max]`` (``kind="range"``) or ``median [25th, 75th percentile]``
    (``kind="iqr"``) of the values that are numbers."""
    if kind == "range":
        return format_spread(values, digits)
    finite = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return "n/a"
    low, median, high = np.percentile(finite, [25, 50, 75])
    if low == high:
        return f"{median:.{digits}g}"
    return f"{median:.{digits}g} [{low:.{digits}g}, {high:.{digits}g}]"


def paired_test(
    rows: list[dict[str, Any]], head: str, other: str, key: str = "test_accuracy"
) -> dict[str, Any]:
    """Wilcoxon signed-rank test (two-sided, scipy) of ``head`` against ``other`` on the
    seeds both ran: median difference, seeds ahead / behind, p-value."""
    mine = {r["seed"]: r[key] for r in rows if r["head"] == head}
    theirs = {r["seed"]: r[key] for r in rows if r["head"] == other}
    differences = [mine[s] - theirs[s] for s in mine if s in theirs]
    return {
        "head": head,
        "other": other,
        "median_difference": statistics.median(differences),
        "ahead": sum(d > 0 for d in differences),
        "behind": sum(d < 0 for d in differences),
        "seeds": len(differences),
        "p_value": math.nan if not any(differences) else float(wilcoxon(differences).pvalue),
    }


def describe_test(test: dict[str, Any]) -> str:
    return (
        f"{test['head']} vs {test['other']}: median difference {test['median_difference']:+.3f}, "
        f"ahead on {test['ahead']}, behind on {test['behind']} of {test['seeds']} seeds, "
        f"p = {test['p_value']:.3g}"
    )


def print_table(
    rows: list[dict[str, Any]], columns: list[tuple[str, str]], kind: str = "range"
) -> None:
    """One line per head (in the order first seen): the spread of each ``(label, key)``."""
    heads = list(dict.fromkeys(r["head"] for r in rows))
    width = max(len(h) for h in heads) + 2
    print(f"{'head':<{width}}" + "".join(f"{label:>30}" for label, _ in columns))
    for head in heads:
        mine = [r for r in rows if r["head"] == head]
        print(
            f"{head:<{width}}"
            + "".join(f"{spread([r[key] for r in mine], kind):>30}" for _, key in columns)
        )


def energy_note(rows: list[dict[str, Any]]) -> str:
    methods = {r["energy_method"].split(" (")[0].split(" x ")[-1] for r in rows}
    return f"energy: {rows[0]['energy_provenance']} ({'; '.join(sorted(methods))})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset", choices=["breast-cancer", "digits-3-8"], default="breast-cancer"
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=256, help="training examples per seed")
    parser.add_argument("--qubits", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = dataset(args.dataset)
    classes = int(y.max()) + 1
    rows: list[dict[str, Any]] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, train_size=args.train, random_state=seed, stratify=y
        )
        scaler = StandardScaler().fit(x_train)
        x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
        arms: dict[str, Callable[..., tuple[float, Any]]] = {
            "logistic": classical_fit(LogisticRegression(max_iter=2000)),
            "linear-svc": classical_fit(LinearSVC(max_iter=20000, random_state=seed)),
        }
        for n in args.qubits:
            parameters = quantum_parameters(x.shape[1], n, args.layers, classes)
            hidden = mlp_hidden(x.shape[1], classes, parameters)
            arms[f"mlp[{n}]"] = classical_fit(
                MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=2000, random_state=seed)
            )

            def quantum(
                a: np.ndarray,
                b: np.ndarray,
                c: np.ndarray,
                d: np.ndarray,
                n: int = n,
                seed: int = seed,
            ) -> tuple[float, Any]:
                _, record = fit_head(
                    a,
                    b,
                    validation=(c, d),
                    num_qubits=n,
                    layers=args.layers,
                    epochs=args.epochs,
                    seed=seed,
                )
                assert record.validation_accuracy is not None
                return record.validation_accuracy, record.meter

            arms[f"quantum[{n}]"] = quantum
        if seed == args.first_seed:  # warm-up: first calls import and build caches
            for fit in arms.values():
                fit(x_train, y_train, x_test, y_test)
        for name, fit in arms.items():
            accuracy, reading = fit(x_train, y_train, x_test, y_test)
            rows.append(run_row(seed, name, accuracy, reading))
        print(
            f"seed {seed}: "
            + ", ".join(f"{r['head']} {r['test_accuracy']:.3f}" for r in rows if r["seed"] == seed),
            flush=True,
        )
    heads = list(dict.fromkeys(r["head"] for r in rows))
    print(f"\n{args.dataset}: {args.train} training examples, the rest to test; {args.seeds} seeds")
    print_table(
        rows, [("test accuracy", "test_accuracy"), ("wall s", "wall_s"), ("joules", "energy_j")]
    )
    print("\npaired Wilcoxon signed-rank tests on test accuracy (two-sided):")
    for quantum_head in (h for h in heads if h.startswith("quantum")):
        for other in (h for h in heads if not h.startswith("quantum")):
            print("  " + describe_test(paired_test(rows, quantum_head, other)))
    print(energy_note(rows))
    machine = {
        **machine_info(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    path = write_results(
        args.out or results_path("benchmarks/results", f"finetune-heads-{args.dataset}"),
        {"machine": machine, "arguments": vars(args), "runs": rows},
    )
    print(f"\nmachine: {machine}\nraw results: {path}")


if __name__ == "__main__":
    main()
