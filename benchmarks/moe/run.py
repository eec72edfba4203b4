"""MoE routing arms on a small causal LM: classical anchors against QUBO routing.

A 2-layer causal transformer (d=128, 8 experts per MoE feed-forward layer, about 1024 tokens a
step) is trained on (a) a mixture of 8 Markov sources over 64 symbols, whose source labels make
expert specialization measurable as NMI, and (b) byte-level text: a fixed slice of the CPython
standard library found in this Python install. Arms:

    dense     dense feed-forward layer (same hidden width as one expert)
    top1      top-k routing, no balancing
    switch    top-k + Switch auxiliary loss (Fedus et al. 2022)
    base      exact linear assignment (BASE, Lewis et al. 2021)
    sbase     Sinkhorn (S-BASE, Clark et al. 2022)
    bias      auxiliary-loss-free bias (Wang et al. 2024; DeepSeek-V3)
    qubo      QuboRoutingCallback, linear objective, mode "assign" (solves every step)
    qubo-pair QuboRoutingCallback with token-similarity pairwise terms, mode "assign"
    qubo-bias QuboRoutingCallback, mode "bias" (aux-loss-free bias moved toward the QUBO
              answer), solving every step
    qubo-bias-lazy  the same, solving every --lazy-every steps in a background thread
              (asynchronous=True: each answer moves the biases one step later), with the
              bias step scaled by --lazy-every so the biases keep their speed

Per arm and seed: validation loss with greedy routing at equal steps and at equal wall clock
(the last evaluation every arm reached within the fastest arm's total time), mean max load
violation and dropped fraction over training, specialization NMI (Markov only), router and
step time. Prints medians over seeds with [min, max] and writes every run to JSON.

Routing overhead (the goal: at most 10%) is measured from mean training-step times,
evaluation excluded: (mean step of the arm - mean step of top1) / mean step of the arm, per
seed, then the median. Mean, not median, because lazy schedules make most steps cheap and a
few expensive. Wall-clock figures depend on the machine being quiet; "CPU overhead" is the
same ratio on process CPU seconds per step (all threads), steadier on a shared machine but
blind to what overlapping buys.

    python benchmarks/moe/run.py                                   # the full grid (hours)
    python benchmarks/moe/run.py --seeds 1 --steps 5 --tokens 256  # a quick check
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sysconfig
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from qopt.bench import machine_info, read_results, results_path, write_results
from qopt.moe import MarkovMixture, MoELanguageModel

REPO = Path(__file__).resolve().parents[2]
ARMS = (
    "dense",
    "top1",
    "switch",
    "base",
    "sbase",
    "bias",
    "qubo",
    "qubo-pair",
    "qubo-bias",
    "qubo-bias-lazy",
)
DATASETS = ("markov", "stdlib")


# ----------------------------------------------------------------------------- data


def markov_data(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    mixture = MarkovMixture(num_sources=8, vocab_size=64, seed=1234)  # fixed sources
    length = args.seq_len + 1
    train, _ = mixture.sample(args.batch_size * args.steps, length, seed=seed)
    val, val_src = mixture.sample(args.val_sequences, length, seed=10_000 + seed)
    return {"vocab": 64, "train": train, "val": val, "val_labels": val_src}


def stdlib_data(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    """Bytes of the stdlib's top-level .py files, sorted by name, first ``stdlib_bytes``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    chunks, total = [], 0
    for path in sorted(root.glob("*.py")):
        data = path.read_bytes()
        chunks.append(data)
        total += len(data)
        if total >= args.stdlib_bytes:
            break
    corpus = np.frombuffer(b"".join(chunks)[: args.stdlib_bytes], dtype=np.uint8).astype(np.int64)
    split = int(0.9 * corpus.size)
    length = args.seq_len + 1
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, split - length, size=args.batch_size * args.steps)
    train = np.stack([corpus[s : s + length] for s in starts])
    val_starts = np.linspace(split, corpus.size - length - 1, args.val_sequences).astype(int)
    val = np.stack([corpus[s : s + length] for s in val_starts])
    return {
        "vocab": 256,
        "train": torch.from_numpy(train),
        "val": torch.from_numpy(val),
        "val_labels": None,
        "source": f"{root} (*.py sorted, first {args.stdlib_bytes} bytes)",
    }


# ----------------------------------------------------------------------------- metrics


def nmi(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Normalized mutual information (arithmetic normalization, as scikit-learn's default)."""
    _, a = np.unique(labels, return_inverse=True)
    _, b = np.unique(clusters, return_inverse=True)
    joint = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(joint, (a, b), 1)
    joint /= joint.sum()
    pa, pb = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mi = float((joint[nz] * np.log(joint[nz] / np.outer(pa, pb)[nz])).sum())
    ha = -float((pa[pa > 0] * np.log(pa[pa > 0])).sum())
    hb = -float((pb[pb > 0] * np.log(pb[pb > 0])).sum())
    return 0.0 if ha + hb == 0 else 2 * mi / (ha + hb)


def evaluate(model: MoELanguageModel, data: dict[str, Any]) -> tuple[float, float | None]:
    model.eval()
    tokens = data["val"]
    chosen: list[np.ndarray] = []
    with torch.no_grad():
        logits = model(tokens[:, :-1])
        loss = float(
            F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
        )
        layers = model.moe_layers()
        if layers and data["val_labels"] is not None:
            scores = layers[-1].router_scores()  # last layer: the most contextual routing
            assert scores is not None
            chosen.append(scores.argmax(dim=1).numpy())
    model.train()
    score = None
    if chosen:
        labels = np.repeat(data["val_labels"].numpy(), tokens.shape[1] - 1)
        score = nmi(labels, chosen[0])
    return loss, score


# ----------------------------------------------------------------------------- one run


def run_arm(
    arm: str, dataset: str, top_k: int, factor: float, seed: int, args: argparse.Namespace
) -> dict[str, Any]:
    import lightning.pytorch as pl
    from qopt.integrations.lightning import QuboRoutingCallback

    data = markov_data(args, seed) if dataset == "markov" else stdlib_data(args, seed)
    routing = {
        "dense": "topk",
        "top1": "topk",
        "switch": "topk",
        "base": "assignment",
        "sbase": "sinkhorn",
        "bias": "bias",
        "qubo": "topk",
        "qubo-pair": "topk",
        "qubo-bias": "topk",
        "qubo-bias-lazy": "topk",
    }[arm]
    torch.manual_seed(seed)
    model = MoELanguageModel(
        data["vocab"],
        d_model=args.d_model,
        num_layers=2,
        num_heads=4,
        num_experts=args.experts,
        max_length=args.seq_len,
        dense=arm == "dense",
        top_k=top_k,
        capacity_factor=factor,
        routing=routing,
        aux_loss_weight=0.01 if arm == "switch" else 0.0,
        bias_update_rate=args.bias_update_rate,
    )
    callbacks: list[Any] = []
    if arm.startswith("qubo"):
        options = json.loads(args.solver_options)
        if args.solver in ("sa", "tabu", "steepest"):
            options.setdefault("seed", seed)
        lazy = arm == "qubo-bias-lazy"
        callbacks.append(
            QuboRoutingCallback(
                solver=args.solver,
                solver_options=options,
                mode="bias" if arm.startswith("qubo-bias") else "assign",
                every_n_steps=args.lazy_every if lazy else 1,
                asynchronous=lazy,
                group_size=args.group_size,
                pairwise="similarity" if arm == "qubo-pair" else None,
                similarity_weight=args.similarity_weight,
                # Lazy: N times fewer updates, each N times larger, so the biases keep speed.
                bias_update_rate=args.bias_update_rate * (args.lazy_every if lazy else 1),
                # The exact optimum costs a linear program per solve: kept out of the timing.
                compare_exact=False,
            )
        )

    record: dict[str, Any] = {
        "arm": arm,
        "dataset": dataset,
        "top_k": top_k,
        "capacity_factor": factor,
        "seed": seed,
        "curve": [],
    }
    steps: list[dict[str, float]] = []

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            tokens = batch[0]
            logits = self.model(tokens[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
            layers = self.model.moe_layers()
            stats = [layer.last_stats for layer in layers if layer.last_stats is not None]
            steps.append(
                {
                    "loss": float(loss.detach()),
                    "router_s": sum(layer.last_routing_s for layer in layers),
                    "max_violation": max((s.max_violation for s in stats), default=0.0),
                    "dropped_fraction": float(np.mean([s.dropped_fraction for s in stats]))
                    if stats
                    else 0.0,
                }
            )
            total: torch.Tensor = loss + self.model.aux_loss
            return total

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.AdamW(self.parameters(), lr=args.lr)

    class Clock(pl.Callback):
        """Step wall time without evaluation; evaluates every ``eval_every`` steps."""

        def __init__(self) -> None:
            self.training_s = 0.0
            self.started = 0.0
            self.cpu_started = 0.0

        def on_train_batch_start(self, *_: Any) -> None:
            self.started = time.perf_counter()
            self.cpu_started = time.process_time()

        def on_train_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
            elapsed = time.perf_counter() - self.started
            self.training_s += elapsed
            steps[-1]["step_s"] = elapsed
            # CPU seconds of the whole process (all threads, the routing thread included):
            # steadier than wall time on a shared machine.
            steps[-1]["cpu_s"] = time.process_time() - self.cpu_started
            step = trainer.global_step
            if step % args.eval_every == 0 or step == args.steps:
                loss, score = evaluate(model, data)
                record["curve"].append(
                    {"step": step, "train_s": self.training_s, "val_loss": loss, "nmi": score}
                )

    trainer = pl.Trainer(
        max_steps=args.steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[*callbacks, Clock()],
    )
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data["train"]), batch_size=args.batch_size
    )
    trainer.fit(Module(), loader)
    final = record["curve"][-1]
    record.update(
        {
            "val_loss": final["val_loss"],
            "nmi": final["nmi"],
            "train_s": final["train_s"],
            "step_s": statistics.median(s["step_s"] for s in steps),
            "mean_step_s": float(np.mean([s["step_s"] for s in steps])),
            "mean_cpu_s": float(np.mean([s["cpu_s"] for s in steps])),
            "router_s": statistics.median(s["router_s"] for s in steps),
            "max_violation": float(np.mean([s["max_violation"] for s in steps])),
            "dropped_fraction": float(np.mean([s["dropped_fraction"] for s in steps])),
            "fallbacks": callbacks[0].num_fallbacks if callbacks else 0,
        }
    )
    return record


# ----------------------------------------------------------------------------- report


def at_equal_wall_clock(runs: list[dict[str, Any]]) -> None:
    """Add ``val_loss_equal_time``: the loss at the fastest arm's total training time."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["top_k"], r["capacity_factor"], r["seed"]), []).append(r)
    for group in groups.values():
        budget = min(r["train_s"] for r in group)
        for r in group:
            reached = [c for c in r["curve"] if c["train_s"] <= budget + 1e-9]
            r["val_loss_equal_time"] = reached[-1]["val_loss"] if reached else math.nan
            r["steps_equal_time"] = reached[-1]["step"] if reached else 0


def routing_overhead(runs: list[dict[str, Any]]) -> None:
    """Add ``overhead``: (mean step - top1's mean step) / mean step, same dataset/k/cf/seed."""
    for r in runs:
        base = [
            b
            for b in runs
            if b["arm"] == "top1"
            and (b["dataset"], b["top_k"], b["capacity_factor"], b["seed"])
            == (r["dataset"], r["top_k"], r["capacity_factor"], r["seed"])
        ]
        for key, out in (("mean_step_s", "overhead"), ("mean_cpu_s", "overhead_cpu")):
            r[out] = (r[key] - base[0][key]) / r[key] if base else math.nan


def spread(values: list[float], fmt: str) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return "-"
    median = statistics.median(values)
    if len(values) == 1:
        return format(median, fmt)
    return f"{format(median, fmt)} [{format(min(values), fmt)}, {format(max(values), fmt)}]"


def report(runs: list[dict[str, Any]]) -> str:
    lines = []
    header = (
        f"{'dataset':<7} {'k':>1} {'cf':>4} {'arm':<9} {'val loss (=steps)':>24} "
        f"{'val loss (=time)':>24} {'max viol.':>18} {'dropped %':>16} {'NMI':>18} "
        f"{'router ms':>16} {'mean step ms':>18} {'overhead':>18} {'CPU overhead':>18}"
    )
    lines.append(header)
    keys = sorted({(r["dataset"], r["top_k"], r["capacity_factor"]) for r in runs})
    for dataset, k, cf in keys:
        for arm in ARMS:
            rs = [
                r
                for r in runs
                if (r["dataset"], r["top_k"], r["capacity_factor"], r["arm"])
                == (dataset, k, cf, arm)
            ]
            if not rs:
                continue
            lines.append(
                f"{dataset:<7} {k:>1} {cf:>4.2f} {arm:<9} "
                f"{spread([r['val_loss'] for r in rs], '.3f'):>24} "
                f"{spread([r['val_loss_equal_time'] for r in rs], '.3f'):>24} "
                f"{spread([r['max_violation'] for r in rs], '.3f'):>18} "
                f"{spread([100 * r['dropped_fraction'] for r in rs], '.1f'):>16} "
                f"{spread([r['nmi'] for r in rs if r['nmi'] is not None], '.3f'):>18} "
                f"{spread([1e3 * r['router_s'] for r in rs], '.1f'):>16} "
                f"{spread([1e3 * r['mean_step_s'] for r in rs], '.0f'):>18} "
                f"{spread([100 * r['overhead'] for r in rs], '.1f'):>17}% "
                f"{spread([100 * r['overhead_cpu'] for r in rs], '.1f'):>17}%"
            )
    return "\n".join(lines)


def save(out: Path, args: argparse.Namespace, runs: list[dict[str, Any]], machine: Any) -> None:
    payload = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "machine": machine,  # None until the grid is complete: write_results fills it in
        "complete": machine is not None,
        "runs": runs,
    }
    write_results(out, payload)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1"
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--top-k", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--capacity-factors", nargs="+", type=float, default=[1.0, 1.25])
    parser.add_argument("--tokens", type=int, default=1024, help="tokens per step")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--val-sequences", type=int, default=64)
    parser.add_argument("--stdlib-bytes", type=int, default=2_000_000)
    parser.add_argument("--solver", default="sa")
    parser.add_argument(
        "--solver-options",
        default="{}",
        help="JSON options for get_solver (default: the callback's, 1 read x 20 sweeps for sa)",
    )
    parser.add_argument(
        "--lazy-every", type=int, default=8, help="solve every N steps (qubo-bias-lazy)"
    )
    parser.add_argument(
        "--bias-update-rate", type=float, default=1e-3, help="bias step (bias, qubo-bias arms)"
    )
    parser.add_argument("--group-size", type=int, default=32)
    parser.add_argument("--similarity-weight", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        default=[],
        help="raw results of earlier runs (.json or .json.gz) to include (their arms are not "
        "run again; with nothing left to run, prints their tables)",
    )
    args = parser.parse_args(argv)
    args.seq_len = min(args.seq_len, args.tokens)
    args.batch_size = max(1, args.tokens // args.seq_len)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    out = args.out or results_path(REPO / "benchmarks" / "results", "moe")
    runs: list[dict[str, Any]] = []
    done: set[tuple[Any, ...]] = set()
    for path in args.merge:
        for r in read_results(path)["runs"]:
            key = (r["dataset"], r["top_k"], r["capacity_factor"], r["seed"], r["arm"])
            if key not in done:  # overlapping files: the first one listed wins
                done.add(key)
                runs.append(r)
    for dataset in args.datasets:
        for k in args.top_k:
            for cf in args.capacity_factors:
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    for arm in args.arms:
                        if arm == "dense" and (k, cf) != (args.top_k[0], args.capacity_factors[0]):
                            continue  # dense ignores k and capacity: run it once per seed
                        if (dataset, k, cf, seed, arm) in done:
                            continue  # merged from an earlier run
                        started = time.perf_counter()
                        r = run_arm(arm, dataset, k, cf, seed, args)
                        runs.append(r)
                        save(out, args, runs, None)  # partial results survive an interrupted grid
                        print(
                            f"  {dataset} k={k} cf={cf} seed={seed} {arm:<9} "
                            f"val {r['val_loss']:.3f}  {time.perf_counter() - started:.1f}s",
                            flush=True,
                        )
    at_equal_wall_clock(runs)
    routing_overhead(runs)
    machine = machine_info()
    print()
    print(report(runs))
    print(
        f"\n{machine}\nmedians over {args.seeds} seed(s) with [min, max]; "
        f"{args.batch_size} x {args.seq_len} tokens a step, {args.steps} steps"
    )
    save(out, args, runs, machine)
    print(f"raw results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
