"""Structured pruning on scikit-learn's digits: QUBO selection against the usual selectors.

A small CNN and an MLP are trained on the 8x8 digits (1797 images, a stratified 70/30 split
per seed), then pruned to 1/s of their MACs (s = each --speedups value) and fine-tuned for the
same budget. Every arm sees one calibration epoch over the training set (gradients, no weight
update) before it prunes, then --finetune-epochs epochs of the same optimizer on the same
batches. Arms:

    qubo        QuboPruningCallback: --importance (L1 by default, BatchNorm-folded where a
                BatchNorm follows, times the L1 norm of the next layer's weights that read
                the unit: --no-path-norm for the incoming norm alone) + activation
                redundancy (--alpha), one global MAC budget
                (--balance: pull towards the uniform split, 3 by default, the callback's
                default), solved by --solver through qopt.pipeline and polished
                by 1-swap local search (--no-polish to turn off), Lightning fine-tuning;
                settings chosen on a validation split (tune.py)
    qubo-greedy the same callback and problem, but the solver is replaced by "keep every
                unit": the problem's repair then drops the unit of least objective value per
                unit of cost until the budget holds, fills, and polishes (a control arm: what
                the solver adds over a plain greedy on the same objective)
    l1          L1 filter norm, the same keep ratio in every layer (Li et al., ICLR 2017)
    taylor      first-order Taylor, global greedy ranking of layer-normalized scores
                (Molchanov et al., CVPR 2019) until the MAC budget holds
    tp-group    Torch-Pruning's MetaPruner with group L2 magnitude (Fang et al., CVPR 2023),
                uniform ratio found by bisection so the MACs meet the budget
    unstructured  Lightning's ModelPruning, global L1 unstructured at sparsity 1 - 1/s: a
                reference only; zeroed weights do not remove MACs on dense hardware

MACs are counted by qopt.model_analysis.count_params_and_macs (Linear and Conv2d
multiply-accumulates); the QUBO arm also checks that the callback's reported parameters and
MACs equal the counts of the pruned model. Prints, per model and speed-up, the median accuracy
change (pruned and fine-tuned minus the unpruned model) over seeds with [min, max], the mean
and the median MAC ratio, then QUBO against each other structured arm paired by seed (wins / ties /
losses, the median difference, a two-sided Wilcoxon signed-rank p-value), and writes every
run to benchmarks/results/pruning-<time>.json.

    python benchmarks/pruning/run.py --seeds 20                         # 20 seeds, both models
    python benchmarks/pruning/run.py --models mlp --seeds 10 --first-seed 10   # seeds 10-19
    python benchmarks/pruning/run.py --tables a.json b.json             # tables of saved runs
    python benchmarks/pruning/run.py --tables benchmarks/pruning/results/accuracy.json.gz  # published
    python benchmarks/pruning/run.py --seeds 2 --epochs 5 --finetune-epochs 2   # a quick check
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import dimod
import numpy as np
import torch
import torch_pruning as tp
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelPruning
from qopt.integrations.lightning import QuboPruningCallback
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from qopt.bench import read_results, results_path, write_results
from qopt.model_analysis import ModelPruningGroups, count_params_and_macs, model_pruning_groups
from qopt.problems.pruning import magnitude_importance, taylor_importance

REPO = Path(__file__).resolve().parents[2]
ARMS = ("qubo", "qubo-greedy", "l1", "taylor", "tp-group", "unstructured")
MODELS = ("cnn", "mlp")
EXAMPLE = {"cnn": torch.zeros(1, 1, 8, 8), "mlp": torch.zeros(1, 64)}


class KeepEverythingSampler(dimod.Sampler):
    """Answers every BQM with "keep every unit", so the pruning problem's own repair (drop the
    worst objective value per unit of cost until the budget holds, fill, polish) does all the
    selecting: a plain greedy on the QUBO's objective, the control arm for the solver."""

    @property
    def parameters(self) -> dict[str, list[str]]:
        return {}

    @property
    def properties(self) -> dict[str, Any]:
        return {}

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        return dimod.SampleSet.from_samples_bqm(dict.fromkeys(bqm.variables, 1), bqm)


def make_model(kind: str) -> nn.Sequential:
    if kind == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )
    return nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
    )


class Classifier(LightningModule):
    """Wraps a model; learning rate 0 in epoch 0 (the calibration epoch), then ``lr``."""

    def __init__(self, net: nn.Module, example: torch.Tensor, lr: float) -> None:
        super().__init__()
        self.net = net
        self.example_input_array = example
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 0.0 if e == 0 else 1.0)
        return {"optimizer": optimizer, "lr_scheduler": schedule}


def data(
    kind: str, seed: int, batch: int, *, validation: bool = False
) -> tuple[DataLoader, DataLoader]:
    """Train and test loaders; with ``validation``, a 75/25 split of the training part
    instead (the test part is never touched: for choosing hyperparameters)."""
    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    x = x.reshape(-1, 1, 8, 8) if kind == "cnn" else x
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, digits.target, test_size=0.3, stratify=digits.target, random_state=seed
    )
    if validation:
        x_tr, x_te, y_tr, y_te = train_test_split(
            x_tr, y_tr, test_size=0.25, stratify=y_tr, random_state=seed
        )
    generator = torch.Generator().manual_seed(seed)
    train = DataLoader(
        TensorDataset(torch.as_tensor(x_tr), torch.as_tensor(y_tr)),
        batch_size=batch,
        shuffle=True,
        generator=generator,
    )
    test = DataLoader(TensorDataset(torch.as_tensor(x_te), torch.as_tensor(y_te)), batch_size=512)
    return train, test


@torch.no_grad()
def accuracy(model: nn.Module, loader: DataLoader) -> float:
    model.eval()
    right = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
    return right / len(loader.dataset)  # type: ignore[arg-type]


def fit(
    model: nn.Module,
    example: torch.Tensor,
    train: DataLoader,
    epochs: int,
    lr: float,
    callbacks: list[Any],
    seed: int,
) -> None:
    """``epochs`` epochs after one calibration epoch (lr 0), with Lightning, on CPU.

    The loader's shuffling is reseeded, so every arm sees the same batches in the same order
    (a paired comparison: without it each arm would get the order left by the arm before).
    """
    torch.manual_seed(seed)
    if train.generator is not None:
        train.generator.manual_seed(seed)
    module = Classifier(model, example, lr)
    trainer = Trainer(
        max_epochs=epochs + 1,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        num_sanity_val_steps=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, train)


def taylor_scores(
    model: nn.Module, groups: ModelPruningGroups, train: DataLoader
) -> dict[str, np.ndarray]:
    """Molchanov 2019 scores per group, averaged over one pass without weight updates."""
    scores = {g.name: np.zeros(g.size) for g in groups}
    model.train()
    for x, y in train:
        model.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        for g in groups:
            for name in g.layers:
                root = model.get_submodule(name)
                scores[g.name] += taylor_importance(
                    root.weight, root.weight.grad, bias=root.bias, bias_grad=root.bias.grad
                )
    model.zero_grad()
    return scores


def uniform_counts(groups: ModelPruningGroups, budget: float) -> dict[str, int]:
    """The largest common keep ratio whose counts meet the MAC budget."""
    best = {g.name: 1 for g in groups}
    for ratio in np.linspace(1.0, 0.0, 1001):
        counts = {g.name: max(1, int(np.floor(ratio * g.size))) for g in groups}
        if groups.cost(counts, "macs") <= budget:
            return counts
    return best


def top_masks(scores: dict[str, np.ndarray], counts: dict[str, int]) -> dict[str, np.ndarray]:
    masks = {}
    for name, score in scores.items():
        mask = np.zeros(len(score), dtype=bool)
        mask[np.argsort(-score, kind="stable")[: counts[name]]] = True
        masks[name] = mask
    return masks


def global_greedy(
    groups: ModelPruningGroups, scores: dict[str, np.ndarray], budget: float
) -> dict[str, np.ndarray]:
    """Remove the globally lowest layer-normalized score until the MACs meet the budget."""
    normalized = {n: s / (np.linalg.norm(s) or 1.0) for n, s in scores.items()}
    masks = {n: np.ones(len(s), dtype=bool) for n, s in scores.items()}
    order = sorted((float(v), n, i) for n, s in normalized.items() for i, v in enumerate(s))
    for _, name, i in order:
        counts = {n: int(m.sum()) for n, m in masks.items()}
        if groups.cost(counts, "macs") <= budget:
            break
        if counts[name] > 1:
            masks[name][i] = False
    return masks


def tp_group(model: nn.Module, example: torch.Tensor, budget: float) -> nn.Module:
    """Torch-Pruning's MetaPruner (group L2), uniform ratio bisected to meet the budget."""
    low, high, best = 0.0, 1.0, None
    for _ in range(14):
        ratio = (low + high) / 2
        candidate = copy.deepcopy(model)
        ignored = [m for m in candidate.modules() if isinstance(m, nn.Linear)][-1:]
        pruner = tp.pruner.MetaPruner(
            candidate,
            example,
            importance=tp.importance.GroupMagnitudeImportance(p=2),
            pruning_ratio=ratio,
            ignored_layers=ignored,
        )
        pruner.step()
        if count_params_and_macs(candidate, example)[1] <= budget:
            high, best = ratio, candidate
        else:
            low = ratio
    assert best is not None
    return best


def run_arm(
    arm: str,
    kind: str,
    base: nn.Module,
    train: DataLoader,
    test: DataLoader,
    speedup: float,
    args: argparse.Namespace,
    seed: int,
) -> dict[str, Any]:
    example = EXAMPLE[kind]
    model = copy.deepcopy(base)
    macs_before = count_params_and_macs(model, example)[1]
    budget = macs_before / speedup
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    if arm in ("qubo", "qubo-greedy"):
        callback = QuboPruningCallback(
            target_ratio=1.0 / speedup,
            importance=args.importance,
            alpha=args.alpha,
            balance=args.balance,
            polish=args.polish,
            path_norm=args.path_norm,
            epochs=[0],
            # The options are get_solver's for --solver; an instance comes configured.
            solver=args.solver if arm == "qubo" else KeepEverythingSampler(),
            solver_options={"num_reads": args.num_reads, "seed": seed} if arm == "qubo" else None,
        )
        fit(model, example, train, args.finetune_epochs, args.lr, [callback], seed)
        extra = {"kept": callback.report["kept"], "fallbacks": callback.report.get("fallbacks", 0)}
        # What the callback reports is what the pruned model really costs.
        counted = count_params_and_macs(model, example)
        reported = (callback.report["params_after"], callback.report["macs_after"])
        if counted != reported:
            raise AssertionError(f"reported params/MACs {reported} != counted {counted}")
    elif arm == "unstructured":
        pruning = ModelPruning(
            "l1_unstructured",
            amount=lambda e: 1 - 1 / speedup if e == 0 else 0.0,
            use_global_unstructured=True,
            make_pruning_permanent=True,
            verbose=0,
        )
        fit(model, example, train, args.finetune_epochs, args.lr, [pruning], seed)
        extra = {
            "zero_fraction": float(
                sum(int((p == 0).sum()) for p in model.parameters())
                / sum(p.numel() for p in model.parameters())
            )
        }
    else:
        groups = model_pruning_groups(model, example)
        if arm == "tp-group":
            model = tp_group(model, example, budget)
        else:
            if arm == "l1":
                scores = {
                    g.name: sum(
                        magnitude_importance(model.get_submodule(n).weight) for n in g.layers
                    )
                    for g in groups
                }
                masks = top_masks(scores, uniform_counts(groups, budget))
            else:
                masks = global_greedy(groups, taylor_scores(model, groups, train), budget)
            groups.prune(model, masks)
        fit(model, example, train, args.finetune_epochs, args.lr, [], seed)
    params, macs = count_params_and_macs(model, example)
    return {
        "arm": arm,
        "model": kind,
        "seed": seed,
        "speedup": speedup,
        "accuracy": accuracy(model, test),
        "macs": macs,
        "params": params,
        "macs_ratio": macs / macs_before,
        "seconds": time.perf_counter() - start,
        **extra,
    }


def by_seed(runs: list[dict[str, Any]], kind: str, speedup: float, arm: str) -> dict[int, float]:
    """Accuracy per seed of one arm on one model and speed-up."""
    return {
        r["seed"]: r["accuracy"]
        for r in runs
        if (r["model"], r["speedup"], r["arm"]) == (kind, speedup, arm)
    }


def paired(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Per seed, QUBO against each other structured arm: wins/ties/losses, Wilcoxon p."""
    others = [a for a in ("qubo-greedy", "l1", "taylor", "tp-group") if a in args.arms]
    if "qubo" not in args.arms or not others:
        return
    try:
        from scipy.stats import wilcoxon
    except ImportError:  # scipy is a qopt dependency; stay usable without it all the same
        wilcoxon = None
    print(
        "\n| model | speed-up | QUBO vs | wins / ties / losses | median paired difference | "
        "Wilcoxon p (two-sided) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for kind in args.models:
        for speedup in args.speedups:
            qubo = by_seed(runs, kind, speedup, "qubo")
            for other in others:
                theirs = by_seed(runs, kind, speedup, other)
                seeds = sorted(set(qubo) & set(theirs))
                if not seeds:
                    continue  # an arm these raw results do not hold
                diffs = [100 * (qubo[s] - theirs[s]) for s in seeds]
                wins = sum(d > 1e-9 for d in diffs)
                losses = sum(d < -1e-9 for d in diffs)
                p = "n/a"
                if wilcoxon is not None and wins + losses > 0:
                    p = f"{wilcoxon(diffs, zero_method='wilcox').pvalue:.2f}"
                print(
                    f"| {kind} | {speedup:g}x | {other} | {wins} / {len(diffs) - wins - losses} "
                    f"/ {losses} | {statistics.median(diffs):+.2f} pp | {p} |"
                )


def tables(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """The per-arm table (median, mean, [min, max] accuracy change; MACs kept), then paired."""
    print(
        "\n| model | speed-up | arm | accuracy change, median [min, max] | mean | MACs kept | n |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for kind in args.models:
        for speedup in args.speedups:
            for arm in args.arms:
                chosen = [
                    r for r in runs if (r["model"], r["speedup"], r["arm"]) == (kind, speedup, arm)
                ]
                if not chosen:
                    continue
                deltas = [100 * r["delta"] for r in chosen]
                ratio = statistics.median(r["macs_ratio"] for r in chosen)
                print(
                    f"| {kind} | {speedup:g}x | {arm} | {statistics.median(deltas):+.2f} pp "
                    f"[{min(deltas):+.2f}, {max(deltas):+.2f}] | {statistics.mean(deltas):+.2f} | "
                    f"{ratio:.3f} | {len(chosen)} |"
                )
    paired(runs, args)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--speedups", type=float, nargs="+", default=[2.0, 3.0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--epochs", type=int, default=30, help="pre-training epochs")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=64)
    # Chosen on a validation split carved from the training data, never on the test split,
    # with `python benchmarks/pruning/tune.py` (see docs/benchmarks/pruning.md: balance 3 because with it
    # the objective's own greedy optimum is as good as SA's answer).
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--balance", type=float, default=3.0)
    parser.add_argument("--polish", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--path-norm", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--importance", default="l1", choices=("taylor", "l1", "l2", "fisher"))
    parser.add_argument("--solver", default="sa")
    parser.add_argument("--num-reads", type=int, default=32)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1"
    )
    parser.add_argument(
        "--tables",
        type=Path,
        nargs="+",
        default=None,
        help="print the tables of earlier raw results (several files: their runs together, "
        "e.g. seed ranges run apart) for --models/--speedups/--arms, and run nothing",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    runs: list[dict[str, Any]] = []
    if args.tables:
        for path in args.tables:
            runs.extend(read_results(path)["runs"])
        tables(runs, args)
        return
    for kind in args.models:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            train, test = data(kind, seed, args.batch)
            torch.manual_seed(seed)
            base = make_model(kind)
            fit(base, EXAMPLE[kind], train, args.epochs, args.lr, [], seed)
            base_accuracy = accuracy(base, test)
            for speedup in args.speedups:
                for arm in args.arms:
                    run = run_arm(arm, kind, base, train, test, speedup, args, seed)
                    run["base_accuracy"] = base_accuracy
                    run["delta"] = run["accuracy"] - base_accuracy
                    runs.append(run)
                    print(
                        f"{kind} seed={seed} {speedup:g}x {arm:12s} acc={run['accuracy']:.4f} "
                        f"(base {base_accuracy:.4f}) macs={run['macs_ratio']:.3f}",
                        flush=True,
                    )

    tables(runs, args)
    out = write_results(
        args.out or results_path(REPO / "benchmarks" / "results", "pruning"),
        {"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs},
    )
    print(f"\nraw results: {out}")


if __name__ == "__main__":
    main()
