"""Block-sparse attention selectors on a small character-level LM: QUBO against the classical ones.

A causal transformer (2 layers, d=64, 4 heads, 256 tokens in blocks of 8: 32 blocks, 528
causal block pairs per head) reads bytes of the CPython standard library found in this Python
install. At each attended fraction (attended block pairs over causal block pairs, diagonals
included), every selector gets the same budget of block pairs per sequence and layer:

    topk         MoBA-style: per query block its own block and the top-(k-1) others by pooled
                 query-key score, k the largest that fits the budget (exact by sorting)
    global-top   the same scores, one budget shared by all heads and query blocks (greedy
                 with no redundancy: the global top of the pooled attention mass)
    bigbird      window + global + random blocks (causal BigBird), the richest pattern that fits
    greedy       key redundancy and a shared budget, every query block keeping at least the
                 k of topk (min_blocks=even_share(...)), maximized greedily: the control for qubo
    qubo         the same objective as a QUBO (qopt.problems.attention.solve_attention) on
                 simulated annealing ("sa", 4 reads x 200 sweeps), repaired into the budget
    greedy-topk  every sequence's own top-k blocks (TopKSelector) plus one set of extra blocks
                 for the budget top-k leaves, chosen greedily on the mass top-k leaves
    qubo-topk    the same, the extra blocks chosen by the QUBO, warm-started from greedy's
                 (what QuboAttentionCallback installs beside a TopKSelector)

Part "error": a dense model is trained per seed (--dense-steps) to get real activations; on
held-out sequences, the attention output (per head, before the output projection) of each
selector is compared with dense attention: relative Frobenius error per sequence and layer,
averaged per seed; medians over seeds with [min, max]. The QUBO objective reached by greedy
and qubo is printed beside it, and the selection time per sequence and layer. The -topk
selectors take their extra blocks from the held-out batch's statistics.

Part "train": the same model trained from scratch with each selector (--steps steps, the
validation loss with the arm's own attention at the end; --eval-every N also records it
every N steps). topk selects per sequence at every step (TopKSelector, vectorized);
global-top and greedy per sequence too (selector callables on the layer, slow); bigbird is
fixed; greedy-topk and qubo-topk add QuboAttentionCallback to the top-k selector (method
"greedy" or "qubo", every --every steps); qubo-static and greedy-static use the callback
alone: one selection for all sequences from the statistics of the last --every steps,
starting from the BigBird pattern, with --window. Per-sequence greedy and global-top are
left out by default (--arms adds them): a selection per sequence and layer at every step
costs more than the step. The selection time (selectors and callback, timed in the run) over
the rest of the step gives the overhead.

    python benchmarks/attention/run.py                                     # both parts
    python benchmarks/attention/run.py --part error --seeds 2 --dense-steps 50 --sequences 2
    python benchmarks/attention/run.py --from-results benchmarks/results/attention-....json
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
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
from torch import nn

from qopt.bench import machine_info, results_path, write_results
from qopt.problems.attention import (
    attended_fraction,
    bigbird_selection,
    block_redundancy,
    block_scores,
    even_share,
    greedy_selection,
    remaining_budget,
    selection_value,
    solve_attention,
    topk_selection,
)
from qopt.sparse_attention import (
    BlockSparseAttention,
    TopKSelector,
    block_sparse_attention,
    block_statistics,
    dense_causal_attention,
)

REPO = Path(__file__).resolve().parents[2]
SELECTORS = ("topk", "global-top", "bigbird", "greedy", "qubo", "greedy-topk", "qubo-topk")
TRAIN_ARMS = (
    "dense", "topk", "global-top", "bigbird", "greedy", "greedy-static", "qubo-static",
    "greedy-topk", "qubo-topk",
)  # fmt: skip
#: Arms whose per-sequence top-k share comes from TopKSelector and the rest from the callback.
TOPK_PLUS = ("greedy-topk", "qubo-topk")
#: Per-sequence greedy (and global-top, its sort) cost a selection per sequence and layer at
#: every step, more than the step itself on CPU: not trained by default.
DEFAULT_TRAIN_ARMS = ("dense", "topk", "bigbird", "greedy-topk", "qubo-topk")


# ----------------------------------------------------------------------------- data and model


def stdlib_corpus(num_bytes: int) -> np.ndarray:
    """Bytes of the stdlib's top-level .py files, sorted by name, the first ``num_bytes``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    chunks, total = [], 0
    for path in sorted(root.glob("*.py")):
        chunks.append(path.read_bytes())
        total += len(chunks[-1])
        if total >= num_bytes:
            break
    return np.frombuffer(b"".join(chunks)[:num_bytes], dtype=np.uint8).astype(np.int64)


def batches(
    corpus: np.ndarray, length: int, count: int, seed: int, *, held_out: bool
) -> torch.Tensor:
    """``count`` windows of ``length + 1`` bytes: the first 90% for training, the rest held out."""
    split = int(0.9 * corpus.size)
    low, high = (split, corpus.size - length - 1) if held_out else (0, split - length - 1)
    starts = np.random.default_rng(seed).integers(low, high, size=count)
    return torch.from_numpy(np.stack([corpus[s : s + length + 1] for s in starts]))


class Layer(nn.Module):
    def __init__(self, d_model: int, heads: int, block_size: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attention = BlockSparseAttention(d_model, heads, block_size)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CharLM(nn.Module):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__()
        self.embed = nn.Embedding(256, args.d_model)
        self.position = nn.Parameter(0.02 * torch.randn(args.seq_len, args.d_model))
        self.layers = nn.ModuleList(
            Layer(args.d_model, args.heads, args.block_size) for _ in range(args.layers)
        )
        self.norm = nn.LayerNorm(args.d_model)
        self.head = nn.Linear(args.d_model, 256)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.position[: tokens.shape[1]]
        for layer in self.layers:
            x = layer(x)
        logits: torch.Tensor = self.head(self.norm(x))
        return logits

    def attention_modules(self) -> list[BlockSparseAttention]:
        return [m for m in self.modules() if isinstance(m, BlockSparseAttention)]


def loss_of(model: CharLM, window: torch.Tensor) -> torch.Tensor:
    logits = model(window[:, :-1])
    return F.cross_entropy(logits.reshape(-1, 256), window[:, 1:].reshape(-1))


# ----------------------------------------------------------------------------- selectors


def budget_of(fraction: float, heads: int, blocks: int) -> int:
    return max(heads * blocks, math.floor(fraction * heads * blocks * (blocks + 1) / 2 + 1e-9))


def topk_within(scores: np.ndarray, budget: int) -> np.ndarray:
    """Top-k with the largest k whose selection fits the budget."""
    return topk_selection(scores, even_share(scores.shape[0], scores.shape[-1], budget))


@functools.lru_cache(maxsize=64)
def bigbird_within(heads: int, blocks: int, budget: int, seed: int) -> np.ndarray:
    """The BigBird pattern with the most block pairs within the budget.

    Ties go to the larger window, then to fewer global and random blocks: at the benchmark's
    budgets the sliding window alone (window 2 at 12.5%, 4 at 25%), the strongest fixed
    pattern for a small language model.
    """
    best, best_key = None, (-1, 0, 0)
    for window in range(1, blocks + 1):
        for num_global in (0, 1, 2):
            for num_random in (0, 1, 2, 3):
                pattern = bigbird_selection(
                    heads, blocks, window=window, num_global=num_global,
                    num_random=num_random, seed=seed,
                )  # fmt: skip
                size = int(pattern.sum())
                key = (size, window, -(num_global + num_random))
                if size <= budget and key > best_key:
                    best, best_key = pattern, key
    assert best is not None  # window 1 alone (the diagonal) fits every budget
    return best


def select(
    name: str,
    queries: np.ndarray,
    keys: np.ndarray,
    budget: int,
    args: argparse.Namespace,
    seed: int,
) -> np.ndarray:
    """One sequence's selection ``(H, N, N)`` from its queries and keys ``(H, T, d)``."""
    heads = queries.shape[0]
    blocks = queries.shape[1] // args.block_size
    if name == "bigbird":  # a fixed pattern: chosen once per budget and seed
        return bigbird_within(heads, blocks, budget, seed).copy()
    scores = block_scores(queries, keys, args.block_size)
    if name == "topk":
        return topk_within(scores, budget)
    if name == "global-top":
        return greedy_selection(scores, budget)
    redundancy = block_redundancy(keys, args.block_size)
    options = {
        "redundancy": redundancy,
        "redundancy_weight": args.redundancy_weight,
        # Every query block keeps what top-k gives it; the rest of the budget is shared.
        "min_blocks": even_share(heads, blocks, budget),
        "window": args.window,
    }
    if name == "greedy":
        return greedy_selection(scores, budget, **options)
    if name == "qubo":
        solution = solve_attention(
            scores, budget, solver=args.solver, solver_options={"seed": seed}, **options
        )
        return np.asarray(solution.value)
    raise ValueError(name)


def topk_plus(
    name: str, q: torch.Tensor, k: torch.Tensor, budget: int, args: argparse.Namespace, seed: int
) -> np.ndarray:
    """Every sequence's top-k share plus one fixed set of blocks for the rest of the budget.

    What ``QuboAttentionCallback`` installs beside a ``TopKSelector``: the fixed blocks are
    chosen (greedy or QUBO) on the mean attention mass the top-k blocks leave over the batch
    ``q, k`` ``(B, H, T, d)``, within the pairs top-k does not spend. Returns ``(B, H, N, N)``.
    """
    heads, blocks = q.shape[1], q.shape[2] // args.block_size
    covered = TopKSelector(even_share(heads, blocks, budget), args.block_size)(q, k)
    pooled = (t.reshape(*t.shape[:2], blocks, args.block_size, -1).mean(dim=3) for t in (q, k))
    scores, redundancy = (t.double().numpy() for t in block_statistics(*pooled, covered))
    rest = remaining_budget(heads, blocks, budget, int(covered.sum(dim=(1, 2, 3)).max()))
    options = {"redundancy": redundancy, "redundancy_weight": args.redundancy_weight}
    if name == "greedy-topk":
        fixed = greedy_selection(scores, rest, **options)
    else:
        fixed = solve_attention(
            scores, rest, solver=args.solver, solver_options={"seed": seed}, **options
        ).value
    return (covered.numpy() | fixed[None]).astype(bool)


# ----------------------------------------------------------------------------- training


class SelectionClock:
    """Seconds spent selecting blocks during training (selectors and the callback add to it)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.running = True  # off for the validation forwards


def timed_callback(clock: SelectionClock, **options: Any) -> Any:
    """A ``QuboAttentionCallback`` whose step-end work (statistics and solves) is timed."""
    from qopt.integrations.lightning import QuboAttentionCallback

    class Timed(QuboAttentionCallback):
        def on_train_batch_end(self, *hook_args: Any) -> None:
            started = time.perf_counter()
            super().on_train_batch_end(*hook_args)
            clock.seconds += time.perf_counter() - started

    return Timed(**options)


def train(
    model: CharLM, corpus: np.ndarray, args: argparse.Namespace, seed: int, steps: int,
    callbacks: list[Any] | None = None, clock: SelectionClock | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train with Lightning (the callbacks see real hooks); step and selection time, val loss."""
    import lightning.pytorch as pl

    data = batches(corpus, args.seq_len, steps * args.batch_size, seed, held_out=False)
    val = batches(corpus, args.seq_len, args.val_sequences, 10_000 + seed, held_out=True)
    times: list[float] = []
    curve: list[tuple[int, float]] = []  # (step, validation loss) every --eval-every steps

    def validation_loss() -> float:
        running = clock is not None and clock.running
        if clock is not None:
            clock.running = False  # the validation forwards' selections are not training's
        model.eval()
        with torch.no_grad():
            loss = float(
                np.mean([loss_of(model, val[i : i + 8]).item() for i in range(0, len(val), 8)])
            )
        model.train()
        if clock is not None:
            clock.running = running
        return loss

    class Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return loss_of(self.model, batch[0])

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.AdamW(self.parameters(), lr=args.lr, weight_decay=0.01)

    class Clock(pl.Callback):
        started = 0.0

        def on_train_batch_start(self, *_: Any) -> None:
            self.started = time.perf_counter()

        def on_train_batch_end(self, *_: Any) -> None:
            times.append(time.perf_counter() - self.started)

    class Evaluate(pl.Callback):  # after Clock: not part of the step time
        def on_train_batch_end(self, trainer: pl.Trainer, *_: Any) -> None:
            step = trainer.global_step
            if args.eval_every and step % args.eval_every == 0 and step < steps:
                curve.append((step, validation_loss()))

    loader: torch.utils.data.DataLoader[Any] = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(data), batch_size=args.batch_size, shuffle=False
    )
    trainer = pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        # Clock after the arm's callbacks: it times them too.
        callbacks=[*(callbacks or []), Clock(), Evaluate()],
    )
    trainer.fit(Module(), loader)
    selecting = 0.0 if clock is None else clock.seconds / steps
    if clock is not None:
        clock.running = False
    val_loss = validation_loss()
    model.eval()
    step = float(np.mean(times[1:] or times))
    # Selection's share of a step: its seconds over the rest of the step (what it adds).
    return {
        "val_loss": val_loss,
        "step_s": step,
        "select_s": selecting,
        "overhead": selecting / max(step - selecting, 1e-12),
        **({"curve": [*curve, (steps, val_loss)]} if curve else {}),
    }


def timed_selector(selector: Any, clock: SelectionClock) -> Any:
    """``selector`` with its seconds added to the clock (while training)."""

    def timed(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        started = time.perf_counter()
        chosen = selector(queries, keys)
        if clock.running:
            clock.seconds += time.perf_counter() - started
        return chosen

    return timed


def per_sequence_selector(
    name: str, fraction: float, args: argparse.Namespace, seed: int, clock: SelectionClock
) -> Any:
    """A ``selector(queries, keys)`` choosing each sequence's blocks with ``select``."""

    def selector(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        started = time.perf_counter()
        q, k = queries.float().numpy(), keys.float().numpy()
        blocks = q.shape[2] // args.block_size
        budget = budget_of(fraction, q.shape[1], blocks)
        chosen = [select(name, q[b], k[b], budget, args, seed) for b in range(q.shape[0])]
        result = torch.from_numpy(np.stack(chosen))
        if clock.running:
            clock.seconds += time.perf_counter() - started
        return result

    return selector


def run_training_arm(
    arm: str, fraction: float, seed: int, corpus: np.ndarray, args: argparse.Namespace
) -> dict[str, Any]:
    torch.manual_seed(seed)
    model = CharLM(args)
    blocks = args.seq_len // args.block_size
    callbacks: list[Any] = []
    clock = SelectionClock()
    budget = budget_of(fraction, args.heads, blocks)
    for module in model.attention_modules():
        if arm in ("topk", *TOPK_PLUS):  # vectorized: every sequence's own top-k share
            share = even_share(args.heads, blocks, budget)
            module.selector = timed_selector(TopKSelector(share, args.block_size), clock)
        elif arm in ("global-top", "greedy"):
            module.selector = per_sequence_selector(arm, fraction, args, seed, clock)
        elif arm in ("bigbird", "qubo-static", "greedy-static"):
            # The static arms start from the BigBird pattern too, until their first selection:
            # dense steps before it would be a head start.
            module.set_selection(torch.from_numpy(bigbird_within(args.heads, blocks, budget, seed)))
    if arm in ("qubo-static", "greedy-static", *TOPK_PLUS):
        # With a top-k selector the callback places only the budget top-k leaves: the own
        # block is the only fixed one, no minimum per query block.
        plus = arm in TOPK_PLUS
        callbacks.append(
            timed_callback(
                clock,
                attended_fraction=fraction,
                every_n_steps=args.every,
                method="qubo" if arm.startswith("qubo") else "greedy",
                solver=args.solver,
                solver_options={"seed": seed},
                redundancy_weight=args.redundancy_weight,
                min_blocks=1 if plus else "even",
                window=1 if plus else args.window,
            )
        )
    started = time.perf_counter()
    result = train(model, corpus, args, seed, args.steps, callbacks, clock)
    fractions = [m.last_attended_fraction for m in model.attention_modules()]
    # Per callback arm: selections installed, and how many scored above greedy's.
    solves = {
        "solves": sum(c.num_solves for c in callbacks),
        "above_greedy": sum(c.num_above_greedy for c in callbacks),
    }
    return {
        "part": "train",
        "arm": arm,
        "fraction": fraction if arm != "dense" else 1.0,
        "seed": seed,
        **result,
        "attended": float(np.mean(fractions)),
        **(solves if callbacks else {}),
        "wall_s": time.perf_counter() - started,
    }


# ----------------------------------------------------------------------------- output error


def capture_qkv(model: CharLM, tokens: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """Queries, keys and values ``(B, H, T, d)`` of every attention layer on ``tokens``."""
    captured: list[tuple[torch.Tensor, ...]] = []

    def hook(module: BlockSparseAttention, inputs: tuple[torch.Tensor, ...]) -> None:
        x = inputs[0]
        batch, length, _ = x.shape
        parts = module.qkv(x).chunk(3, dim=-1)
        captured.append(
            tuple(p.reshape(batch, length, module.num_heads, -1).transpose(1, 2) for p in parts)
        )

    handles = [m.register_forward_pre_hook(hook) for m in model.attention_modules()]
    with torch.no_grad():
        model(tokens)
    for handle in handles:
        handle.remove()
    return captured


def run_error_seed(seed: int, corpus: np.ndarray, args: argparse.Namespace) -> list[dict[str, Any]]:
    torch.manual_seed(seed)
    model = CharLM(args)
    dense = train(model, corpus, args, seed, args.dense_steps)
    tokens = batches(corpus, args.seq_len, args.sequences, 20_000 + seed, held_out=True)[:, :-1]
    layers = capture_qkv(model, tokens)
    blocks = args.seq_len // args.block_size
    rows: list[dict[str, Any]] = []
    for fraction in args.fractions:
        budget = budget_of(fraction, args.heads, blocks)
        for name in SELECTORS:
            errors, values, fractions, seconds = [], [], [], []
            for q, k, v in layers:
                reference = dense_causal_attention(q, k, v)
                if name in TOPK_PLUS:  # one fixed part for the batch: time per sequence
                    started = time.perf_counter()
                    batch_selection = topk_plus(name, q, k, budget, args, seed)
                    each = (time.perf_counter() - started) / q.shape[0]
                for b in range(q.shape[0]):
                    qb, kb = q[b].numpy(), k[b].numpy()
                    started = time.perf_counter()
                    if name in TOPK_PLUS:
                        selection = batch_selection[b]
                        seconds.append(each)
                    else:
                        selection = select(name, qb, kb, budget, args, seed)
                        seconds.append(time.perf_counter() - started)
                    assert selection.sum() <= budget  # zero budget violations
                    out = block_sparse_attention(
                        q[b : b + 1], k[b : b + 1], v[b : b + 1],
                        torch.from_numpy(selection), args.block_size,
                    )  # fmt: skip
                    error = (out[0] - reference[b]).norm() / reference[b].norm()
                    errors.append(float(error))
                    fractions.append(attended_fraction(selection))
                    values.append(
                        selection_value(
                            selection,
                            block_scores(qb, kb, args.block_size),
                            redundancy=block_redundancy(kb, args.block_size),
                            redundancy_weight=args.redundancy_weight,
                        )
                    )
            rows.append(
                {
                    "part": "error",
                    "fraction": fraction,
                    "selector": name,
                    "seed": seed,
                    "relative_error": float(np.mean(errors)),
                    "objective": float(np.mean(values)),
                    "attended": float(np.mean(fractions)),
                    "select_ms": 1e3 * float(np.median(seconds)),
                    "dense_step_s": float(dense["step_s"]),
                }
            )
    return rows


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("error", "train", "all"), default="all")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--train-seeds", type=int, default=5)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds first..first+n-1 (tuning: 100 and up)"
    )
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.125, 0.25])
    parser.add_argument("--dense-steps", type=int, default=400)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument(
        "--eval-every", type=int, default=0, help="also record the validation loss every N steps"
    )
    parser.add_argument("--arms", nargs="+", choices=TRAIN_ARMS, default=list(DEFAULT_TRAIN_ARMS))
    parser.add_argument("--sequences", type=int, default=8, help="held-out sequences per seed")
    parser.add_argument("--val-sequences", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--block-size", type=int, default=8)
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--redundancy-weight", type=float, default=1.0)
    parser.add_argument(
        "--window", type=int, default=2, help="nearest key blocks greedy and qubo always keep"
    )
    parser.add_argument(
        "--every", type=int, default=50, help="steps between the callback's selections"
    )
    parser.add_argument("--solver", default="sa")
    parser.add_argument("--stdlib-bytes", type=int, default=2_000_000)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (2 thrash a shared machine)"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--from-results",
        type=Path,
        nargs="+",
        default=None,
        help="print the tables of raw results files (a later file's row replaces an earlier "
        "one of the same part, arm or selector, fraction and seed)",
    )
    parser.add_argument(
        "--tuning",
        type=Path,
        nargs="+",
        default=None,
        help="print the validation loss per seed of several raw results files, side by side",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    if args.tuning is not None:
        print(tuning_report(args.tuning))
        return 0
    if args.from_results is not None:
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        for path in args.from_results:
            saved = json.loads(path.read_text())
            for r in saved["rows"]:
                name = r.get("arm", r.get("selector"))
                merged[(r["part"], name, r["fraction"], r["seed"], r.get("layer"))] = r
        saved = json.loads(args.from_results[0].read_text())
        for key in ("sequences", "layers", "batch_size", "seq_len", "every", "steps"):
            setattr(args, key, int(saved["args"][key]))  # the run's settings, for the captions
        rows = list(merged.values())
        print(error_report(rows, args) if any(r["part"] == "error" for r in rows) else "")
        print(train_report(rows, args) if any(r["part"] == "train" for r in rows) else "")
        return 0

    corpus = stdlib_corpus(args.stdlib_bytes)
    out = args.out or results_path(REPO / "benchmarks" / "attention" / "results", "attention")
    machine = {**machine_info(), "torch_threads": args.threads}

    def save() -> None:  # after every seed and arm: partial results survive an interruption
        settings = {k: str(v) for k, v in vars(args).items()}
        write_results(out, {"args": settings, "rows": rows, "machine": machine})

    rows = []
    if args.part in ("error", "all"):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            rows += run_error_seed(seed, corpus, args)
            save()
            print(f"  error seed {seed} done", flush=True)
        print(error_report(rows, args))
    if args.part in ("train", "all"):
        # Seeds outermost: an interrupted run still has every fraction and arm of its seeds.
        for seed in range(args.first_seed, args.first_seed + args.train_seeds):
            for fraction in args.fractions:
                for arm in args.arms:
                    if arm == "dense" and fraction != args.fractions[0]:
                        continue
                    r = run_training_arm(arm, fraction, seed, corpus, args)
                    rows.append(r)
                    save()
                    print(
                        f"  train f={fraction} seed={seed} {arm:<13} val {r['val_loss']:.4f} "
                        f"step {1e3 * r['step_s']:.0f} ms",
                        flush=True,
                    )
        print(train_report(rows, args))
    print(f"\nraw results: {out}")
    return 0


def spread(values: list[float]) -> str:
    """Median [first quartile, third quartile]."""
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return f"{median:.4g} [{q1:.4g}, {q3:.4g}]" if len(values) > 1 else f"{median:.4g}"


def quartiles_table(rows: list[dict[str, Any]], group_by: list[str], columns: list[str]) -> str:
    """Median [IQR] of each column over the rows (seeds) of each group, as plain text."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in group_by), []).append(row)
    header = [*group_by, "seeds", *columns]
    lines = [
        [*(str(k) for k in key), str(len(members))]
        + [
            spread([m[c] for m in members if m.get(c) is not None])
            if any(m.get(c) is not None for m in members)
            else "n/a"
            for c in columns
        ]
        for key, members in groups.items()
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    body = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *lines]
    ]
    return "\n".join([body[0], "-" * max(len(line) for line in body), *body[1:]])


def paired(rows: list[dict[str, Any]], key: str, by: str, ours: str, other: str) -> str:
    """Per fraction: on how many seeds ``ours`` is below ``other`` in ``key``, and the tests.

    Wilcoxon signed-rank (exact for small n) and the sign test, both two-sided, on the
    per-seed differences (with n = 5 seeds neither can go below p = 0.0625), and a 95%
    bootstrap interval of the median difference: where its upper end is below a margin,
    ``ours`` is no worse than ``other`` by more than that margin.
    """
    from scipy.stats import binomtest, bootstrap, wilcoxon

    parts = []
    for fraction in sorted({r["fraction"] for r in rows if r[by] == other}):
        values = {
            (r[by], r["seed"]): r[key]
            for r in rows
            if r["fraction"] == fraction and r[by] in (ours, other)
        }
        seeds = sorted(s for (name, s) in values if name == ours and (other, s) in values)
        if not seeds:
            continue
        differences = np.array([values[(ours, s)] - values[(other, s)] for s in seeds])
        below, above = int((differences < 0).sum()), int((differences > 0).sum())
        nonzero = differences[differences != 0]
        if nonzero.size:
            w = float(wilcoxon(nonzero).pvalue)
            sign = float(binomtest(below, below + above, 0.5).pvalue)
            tests = f"Wilcoxon p={w:.3g}, sign test p={sign:.3g}"
            if len(set(differences.tolist())) > 1:
                interval = bootstrap(
                    (differences,), np.median, method="percentile", random_state=0
                ).confidence_interval
                tests += f"; 95% CI of the median [{interval.low:+.4f}, {interval.high:+.4f}]"
        else:
            tests = "all equal"
        parts.append(
            f"  {fraction}: {ours} below {other} on {below} of {len(seeds)} seeds "
            f"(above on {above}); median difference {np.median(differences):+.4f}; {tests}"
        )
    return f"{ours} - {other} ({key}), per fraction:\n" + "\n".join(parts)


def error_report(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    errors = [r for r in rows if r["part"] == "error"]
    seeds = len({r["seed"] for r in errors})
    lines = [
        "\nAttention-output relative error vs dense, per selector (median [IQR] over "
        f"{seeds} seeds; {args.sequences} held-out sequences x {args.layers} layers per seed)",
        quartiles_table(
            errors,
            ["fraction", "selector"],
            ["relative_error", "attended", "objective", "select_ms"],
        ),
        paired(errors, "relative_error", "selector", "qubo", "topk"),
        paired(errors, "relative_error", "selector", "greedy", "topk"),
        paired(errors, "relative_error", "selector", "qubo", "greedy"),
        *(
            paired(errors, "relative_error", "selector", "qubo-topk", other)
            for other in ("topk", "greedy-topk")
            if any(r["selector"] == "qubo-topk" for r in errors)
        ),
    ]
    step_times = [r["dense_step_s"] for r in errors if "dense_step_s" in r]
    if step_times:
        step_ms = 1e3 * statistics.median(step_times)
        qubo_ms = statistics.median(r["select_ms"] for r in errors if r["selector"] == "qubo")
        per_step = args.layers * qubo_ms
        lines.append(
            f"\nDense training step (batch {args.batch_size} x {args.seq_len} tokens): "
            f"{step_ms:.0f} ms. One QUBO selection for all {args.layers} layers: "
            f"{per_step:.0f} ms = {100 * per_step / step_ms:.0f}% of a step; solved every "
            f"{args.every} steps (the static schedule): "
            f"{100 * per_step / (args.every * step_ms):.1f}%. Per sequence at every step: "
            f"{100 * args.batch_size * per_step / step_ms:.0f}%."
        )
    return "\n".join(lines)


def train_report(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    trained = [r for r in rows if r["part"] == "train"]
    seeds = len({r["seed"] for r in trained})
    # Step time against the fixed pattern: the same sparse attention, no selection at all.
    fixed = {(r["fraction"], r["seed"]): r["step_s"] for r in trained if r["arm"] == "bigbird"}
    for r in trained:
        if (r["fraction"], r["seed"]) in fixed:
            r["vs_bigbird"] = r["step_s"] / fixed[(r["fraction"], r["seed"])] - 1
        r["select_ms"] = 1e3 * r.get("select_s", 0.0) if "select_s" in r else None
    arms = {r["arm"] for r in trained}
    ours = next((a for a in ("qubo-topk", "qubo-static") if a in arms), "qubo")
    others = [
        a
        for a in ("topk", "bigbird", "greedy-topk", "greedy-static", "greedy", "global-top")
        if a in arms
    ]
    return "\n".join(
        [
            f"\nValidation loss after {args.steps} steps from scratch (median [IQR] over "
            f"{seeds} seeds). Selection time per step (select_ms: the selectors' and the "
            "callback's own seconds, timed in the run) and its share of the rest of the step "
            "(overhead); step time's excess over the fixed BigBird pattern (vs_bigbird: the "
            "same sparse attention, no selection; noisy on a shared machine); callback arms: "
            "selections that scored above greedy's on the objective (above_greedy)",
            quartiles_table(
                trained,
                ["fraction", "arm"],
                ["val_loss", "attended", "step_s", "select_ms", "overhead", "vs_bigbird"]
                + (["above_greedy"] if any("above_greedy" in r for r in trained) else []),
            ),
            *(paired(trained, "val_loss", "arm", ours, other) for other in others if other != ours),
            *(  # every callback selection: how many the solver placed above greedy's
                f"{arm} at {fraction}: {sum(r['above_greedy'] for r in group)} of "
                f"{sum(r['solves'] for r in group)} selections scored above greedy's"
                for (arm, fraction), group in _by_arm(trained, "above_greedy").items()
            ),
            *(  # the control against plain top-k: what the extra blocks themselves are worth
                [paired(trained, "val_loss", "arm", "greedy-topk", "topk")]
                if {"greedy-topk", "topk"} <= arms
                else []
            ),
        ]
    )


def _by_arm(rows: list[dict[str, Any]], key: str) -> dict[tuple[str, float], list[dict[str, Any]]]:
    """The rows that have ``key``, grouped by (arm, fraction)."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in rows:
        if key in r:
            groups.setdefault((r["arm"], r["fraction"]), []).append(r)
    return groups


def tuning_report(paths: list[Path]) -> str:
    """Validation loss per seed of the training rows of several runs (tuning variants)."""
    table: dict[tuple[float, str], dict[int, float]] = {}
    for path in paths:
        saved = json.loads(path.read_text())
        settings = saved["args"]
        for r in saved["rows"]:
            if r["part"] != "train" or "curve" in r:
                continue
            label = f"{r['arm']} [{path.stem}]"  # a baseline's pattern may differ by run
            if r["arm"] in ("qubo-static", "greedy-static", "qubo", "greedy"):
                label = r["arm"] + (
                    f" window {settings.get('window', '1')}, every {settings['every']}, "
                    f"weight {settings['redundancy_weight']}"
                )
            table.setdefault((r["fraction"], label), {})[r["seed"]] = r["val_loss"]
    seeds = sorted({seed for losses in table.values() for seed in losses})
    header = ["fraction", "arm", *(f"seed {s}" for s in seeds), "mean"]
    lines = [
        [
            str(fraction),
            label,
            *(f"{losses[s]:.4f}" if s in losses else "-" for s in seeds),
            f"{np.mean(list(losses.values())):.4f}",
        ]
        for (fraction, label), losses in sorted(table.items())
    ]
    return "\n\n".join(part for part in (plain_table(header, lines), curves_report(paths)) if part)


def curves_report(paths: list[Path]) -> str:
    """Validation loss along training (rows recorded with --eval-every), one line per run."""
    runs = []
    for path in paths:
        saved = json.loads(path.read_text())
        for r in saved["rows"]:
            if "curve" in r:
                every = "" if r["arm"] in ("dense", "topk", "bigbird") else (
                    f" (every {saved['args']['every']}, window {saved['args'].get('window', 1)})"
                    if "static" in r["arm"] else f" (every {saved['args']['every']})"
                )  # fmt: skip
                runs.append((r["fraction"], f"{r['arm']}{every}", r["seed"], dict(r["curve"])))
    if not runs:
        return ""
    steps = sorted({step for *_, curve in runs for step in curve})
    header = ["fraction", "arm", "seed", *(f"step {s}" for s in steps)]
    lines = [
        [str(fraction), label, str(seed), *(f"{c[s]:.4f}" if s in c else "-" for s in steps)]
        for fraction, label, seed, c in sorted(runs, key=lambda run: run[:3])
    ]
    return plain_table(header, lines)


def plain_table(header: list[str], lines: list[list[str]]) -> str:
    """Left-aligned columns under a rule."""
    if not lines:
        return ""
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    body = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
            for line in [header, *lines]]  # fmt: skip
    return "\n".join([body[0], "-" * max(len(line) for line in body), *body[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
