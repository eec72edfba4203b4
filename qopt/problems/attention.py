"""Block-sparse attention routing as a constrained QUBO, with the classical selectors beside it.

Block-sparse attention splits a causal sequence of ``T`` tokens into ``N = T / block_size``
blocks and lets each query block attend to a few key blocks only. A **selection** is a boolean
array of shape ``(H, N, N)`` (heads, query blocks, key blocks): ``selection[h, i, j]`` is True
when query block ``i`` of head ``h`` attends key block ``j``. Every selection this module
returns is causal (no ``j > i``) and keeps each query block's own block (``j == i``, the
diagonal), which causal attention cannot do without.

The classical selectors:

- :func:`topk_selection`: per query block, the ``k`` key blocks with the highest pooled
  query-key score (MoBA: Lu et al., "MoBA: Mixture of Block Attention for Long-Context LLMs",
  2025; also NSA's selection branch). Solved exactly by sorting.
- :func:`bigbird_selection`: a fixed pattern of a sliding window, global blocks and random
  blocks (Zaheer et al., "Big Bird: Transformers for Longer Sequences", NeurIPS 2020).
- :func:`greedy_selection`: the QUBO's own objective maximized greedily under the same budget;
  the control that tells whether the annealer or the objective does the work.
- :func:`optimal_selection`: the proven optimum of that objective (a mixed-integer program on
  scipy's HiGHS), the reference any solver is measured against.

:func:`attention_problem` builds the decision as a :class:`qopt.pipeline.Formulation` and adds
what a per-query ranking cannot express:

- **a shared budget**: at most ``budget`` attended block pairs in total, over all heads and
  query blocks, so queries whose attention is spread out can take blocks that focused queries
  do not need (a hard constraint: every solution is repaired to fit);
- **redundancy**: two key blocks whose (pooled) keys are near duplicates add little over one;
  selecting both costs ``redundancy_weight * R[j, j'] * min(s_j, s_j')``, so with weight 1 a
  perfect duplicate (``R = 1``) adds nothing;
- **per-query block counts**: ``min_blocks`` and ``max_blocks`` per query block. With
  ``min_blocks=even_share(...)`` every query block keeps what top-k would give it and only the
  rest of the budget is shared; with no minimum the budget flows to query blocks whose
  pooled mass sits on few blocks and starves the others, which measured worse than top-k
  (``docs/attention.md``).

:func:`solve_attention` sends it through :func:`qopt.pipeline.solve`. Scores come from
:func:`block_scores` (the pooled attention mass each key block gets, a probability per query
block: comparable across query blocks and heads, which a shared budget needs) and redundancy
from :func:`block_redundancy`.

Examples:
    >>> import numpy as np
    >>> from qopt.problems.attention import (
    ...     block_redundancy, block_scores, check_selection, solve_attention, topk_selection)
    >>> rng = np.random.default_rng(0)
    >>> queries, keys = rng.normal(size=(2, 2, 64, 8))  # (heads, tokens, head dim) each
    >>> scores = block_scores(queries, keys, block_size=8)  # 8 blocks per head
    >>> scores.shape
    (2, 8, 8)
    >>> budget = 40  # of 2 * 36 causal block pairs; 16 are the diagonals
    >>> solution = solve_attention(scores, budget, redundancy=block_redundancy(keys, 8),
    ...                            solver="sa", seed=0)
    >>> selection = solution.value
    >>> check_selection(selection, budget=budget)
    >>> int(topk_selection(scores, 3).sum()) <= 2 * 8 * 3
    True
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import dimod
import numpy as np

from qopt._validation import check_float, check_int
from qopt.exceptions import InvalidProblemError, SolverConfigurationError, SolverUnavailableError

if TYPE_CHECKING:
    from qopt.pipeline import Formulation, Solution

__all__ = [
    "ATTENTION_SOLVER_DEFAULTS",
    "attended_fraction",
    "attention_problem",
    "bigbird_selection",
    "block_redundancy",
    "block_scores",
    "causal_block_pairs",
    "check_selection",
    "even_share",
    "greedy_selection",
    "minimum_budget",
    "optimal_selection",
    "pool_blocks",
    "remaining_budget",
    "selection_value",
    "solve_attention",
    "topk_selection",
    "window_pairs",
]

#: Options :func:`solve_attention` prefers where the backend has them and the caller set none.
ATTENTION_SOLVER_DEFAULTS: dict[str, Any] = {"num_reads": 4, "num_sweeps": 200}

BudgetEncoding = Literal["price", "penalty"]
WarmStart = Literal["greedy"] | None


# ----------------------------------------------------------------------------- inputs


def _as_float_array(value: Any, name: str, owner: str) -> np.ndarray:
    try:
        array = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, float)
    except (TypeError, ValueError) as error:
        raise InvalidProblemError(
            f"The '{name}' parameter of {owner} must be an array of numbers. Got "
            f"{type(value).__name__} instead ({error})."
        ) from error
    return array


def pool_blocks(x: Any, block_size: int, *, owner: str = "pool_blocks") -> np.ndarray:
    """Mean of each block of ``block_size`` consecutive tokens.

    Args:
        x: Shape ``(..., T, d)``: tokens along the second-to-last axis.
        block_size: Tokens per block; must divide ``T``.

    Returns:
        Shape ``(..., T / block_size, d)``.

    Raises:
        InvalidProblemError: ``T`` is not a multiple of ``block_size``, or ``x`` has fewer
            than two axes or non-finite entries.

    Examples:
        >>> import numpy as np
        >>> pool_blocks(np.arange(8.0).reshape(4, 2), 2).tolist()
        [[1.0, 2.0], [5.0, 6.0]]
    """
    array = _as_float_array(x, "x", owner)
    size = check_int(block_size, "block_size", owner, low=1)
    if array.ndim < 2:
        raise InvalidProblemError(
            f"{owner} expects tokens along the second-to-last axis: shape (..., T, d). Got "
            f"shape {array.shape} instead."
        )
    length = array.shape[-2]
    if length % size:
        raise InvalidProblemError(
            f"{owner}: the sequence length {length} is not a multiple of block_size={size}. "
            f"Pad the sequence to {math.ceil(length / size) * size} tokens or choose a "
            f"block_size that divides {length}."
        )
    if not np.isfinite(array).all():
        raise InvalidProblemError(
            f"{owner} was given non-finite queries or keys (NaN or inf); the model has "
            "probably diverged. Check its activations before selecting blocks."
        )
    shape = (*array.shape[:-2], length // size, size, array.shape[-1])
    pooled: np.ndarray = array.reshape(shape).mean(axis=-2)
    return pooled


def causal_block_pairs(num_blocks: int) -> np.ndarray:
    """The causal block mask: True where query block ``i`` may attend key block ``j <= i``.

    Examples:
        >>> causal_block_pairs(3).astype(int).tolist()
        [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    mask: np.ndarray = np.tril(np.ones((num_blocks, num_blocks), dtype=bool))
    return mask


def block_scores(queries: Any, keys: Any, block_size: int) -> np.ndarray:
    """Pooled attention mass of each causal key block, per query block: the selectors' scores.

    The mean query of block ``i`` is scored against the mean key of block ``j`` (scaled dot
    product, MoBA's gate) and the scores of each query block are turned into probabilities
    over its causal key blocks (softmax). A ranking within one query block is the same as the
    raw scores'; across query blocks and heads the probabilities are comparable, which a
    shared budget needs.

    Args:
        queries: Shape ``(..., T, d)``.
        keys: Shape ``(..., T, d)``, the same leading axes.
        block_size: Tokens per block; must divide ``T``.

    Returns:
        Shape ``(..., N, N)``; each row sums to 1 over ``j <= i``, 0 above the diagonal.

    Raises:
        InvalidProblemError: Mismatched shapes, ``T`` not a multiple of ``block_size``, or
            non-finite queries or keys.

    Examples:
        >>> import numpy as np
        >>> scores = block_scores(np.ones((4, 2)), np.ones((4, 2)), 2)
        >>> scores.tolist()
        [[1.0, 0.0], [0.5, 0.5]]
    """
    owner = "block_scores"
    q = pool_blocks(queries, block_size, owner=owner)
    k = pool_blocks(keys, block_size, owner=owner)
    if q.shape != k.shape:
        raise InvalidProblemError(
            f"{owner} needs queries and keys of the same shape. Got {q.shape} and {k.shape} "
            "after pooling."
        )
    logits = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    causal = causal_block_pairs(q.shape[-2])
    logits = np.where(causal, logits, -np.inf)
    logits -= logits.max(axis=-1, keepdims=True)
    mass = np.exp(logits)
    result: np.ndarray = mass / mass.sum(axis=-1, keepdims=True)
    return result


def block_redundancy(features: Any, block_size: int) -> np.ndarray:
    """How much two key blocks duplicate each other: cosine similarity of pooled features, in [0, 1].

    The pooled features (keys, or keys and values side by side) are centred over the blocks
    first: a component every block shares says nothing about which blocks duplicate each
    other. Negative similarities count as 0 (no redundancy); the diagonal is 1.

    Args:
        features: Shape ``(..., T, d)``, usually the keys.
        block_size: Tokens per block; must divide ``T``.

    Returns:
        Shape ``(..., N, N)``, symmetric.

    Examples:
        >>> import numpy as np
        >>> keys = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
        >>> block_redundancy(keys, 1)[0].round(2).tolist()
        [1.0, 1.0, 0.0, 1.0]
    """
    pooled = pool_blocks(features, block_size, owner="block_redundancy")
    centred = pooled - pooled.mean(axis=-2, keepdims=True)
    norms = np.linalg.norm(centred, axis=-1, keepdims=True)
    unit = centred / np.maximum(norms, 1e-12)
    similarity = np.clip(unit @ np.swapaxes(unit, -1, -2), 0.0, 1.0)
    n = pooled.shape[-2]
    similarity[..., np.arange(n), np.arange(n)] = 1.0
    result: np.ndarray = similarity
    return result


def _check_scores(scores: Any, owner: str) -> np.ndarray:
    """Scores as float ``(H, N, N)``, finite on the causal pairs (above the diagonal: ignored)."""
    values = _as_float_array(scores, "scores", owner)
    if values.ndim == 2:
        values = values[None]
    if values.ndim != 3 or values.shape[1] != values.shape[2] or values.shape[1] == 0:
        raise InvalidProblemError(
            f"The 'scores' parameter of {owner} must have shape (heads, blocks, blocks) or "
            f"(blocks, blocks): one score per query block and key block. Got shape "
            f"{values.shape} instead."
        )
    causal = causal_block_pairs(values.shape[1])
    bad = ~np.isfinite(values) & causal
    if bad.any():
        h, i, j = (int(a[0]) for a in np.nonzero(bad))
        raise InvalidProblemError(
            f"{owner} was given {int(bad.sum())} non-finite score(s) on causal block pairs "
            f"(first: head {h}, query block {i}, key block {j}). Scores must be finite where "
            "j <= i (entries above the diagonal are ignored); check the model's queries and "
            "keys, or compute scores with block_scores()."
        )
    result: np.ndarray = np.where(causal, values, 0.0)
    return result


def _check_redundancy(redundancy: Any, shape: tuple[int, ...], owner: str) -> np.ndarray | None:
    if redundancy is None:
        return None
    values = _as_float_array(redundancy, "redundancy", owner)
    try:
        values = np.broadcast_to(values, shape)
    except ValueError:
        raise InvalidProblemError(
            f"The 'redundancy' parameter of {owner} must have shape {shape} or (blocks, "
            f"blocks) = {shape[1:]}. Got shape {values.shape} instead."
        ) from None
    if not np.isfinite(values).all() or (values < 0).any():
        raise InvalidProblemError(
            f"The 'redundancy' parameter of {owner} must be finite and >= 0 (e.g. "
            "block_redundancy(keys, block_size))."
        )
    return values


# ----------------------------------------------------------------------------- selections


def minimum_budget(num_heads: int, num_blocks: int, min_blocks: int = 1) -> int:
    """The fewest attended block pairs a selection can have: ``min_blocks`` per query block.

    Query block ``i`` has only ``i + 1`` causal key blocks, so it needs ``min(min_blocks, i+1)``.

    Examples:
        >>> minimum_budget(2, 4), minimum_budget(1, 4, min_blocks=2)
        (8, 7)
    """
    per_head = int(np.minimum(min_blocks, np.arange(1, num_blocks + 1)).sum())
    return num_heads * per_head


def remaining_budget(num_heads: int, num_blocks: int, budget: int, spent: int) -> int:
    """The budget for blocks added to a per-sequence selection that attends ``spent`` pairs.

    A per-sequence selector (top-k) spends ``spent`` of ``budget`` pairs in a sequence, own
    blocks included; a selection added to it (its union, as
    :class:`~qopt.sparse_attention.BlockSparseAttention` attends) keeps the own blocks too, so
    it may have the own blocks plus what is left: ``num_heads x num_blocks + budget - spent``
    (just the own blocks when nothing is left). The union then attends at most ``budget``.

    Examples:
        >>> remaining_budget(4, 32, 264, 252)  # 12.5% of 4 x 528 pairs; top-2 spends 252
        140
        >>> remaining_budget(4, 32, 264, 300)  # nothing left: the own blocks only
        128
    """
    return num_heads * num_blocks + max(budget - spent, 0)


def even_share(num_heads: int, num_blocks: int, budget: int) -> int:
    """The most key blocks per query block that a budget gives every query block alike.

    The ``k`` of :func:`topk_selection` that fits the budget: the largest ``k`` with
    ``minimum_budget(num_heads, num_blocks, k) <= budget`` (at least 1). As ``min_blocks`` it
    guarantees every query block what top-k would give it and shares only the rest of the
    budget (``benchmarks/attention/run.py`` uses it for the greedy and QUBO selectors).

    Examples:
        >>> even_share(1, 4, 4), even_share(1, 4, 7), even_share(2, 4, 14)
        (1, 2, 2)
    """
    share = 1
    while share < num_blocks and minimum_budget(num_heads, num_blocks, share + 1) <= budget:
        share += 1
    return share


def check_selection(
    selection: Any,
    *,
    budget: int | None = None,
    min_blocks: int = 1,
    max_blocks: int | None = None,
    window: int = 1,
) -> None:
    """Raise :class:`~qopt.exceptions.InvalidProblemError` unless ``selection`` is feasible.

    Feasible: boolean ``(H, N, N)`` (or ``(N, N)``), causal, every diagonal block kept (every
    block of the ``window``: :func:`window_pairs`), at most
    ``budget`` pairs in total, between ``min_blocks`` and ``max_blocks`` per query block (as
    far as the query block's causal blocks allow).

    Examples:
        >>> import numpy as np
        >>> check_selection(np.eye(3, dtype=bool), budget=3)
        >>> check_selection(np.ones((3, 3), dtype=bool))
        Traceback (most recent call last):
        ...
        qopt.exceptions.InvalidProblemError: The selection attends 3 future block pair(s) ...
    """
    array = np.asarray(selection)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1] != array.shape[2] or array.dtype != bool:
        raise InvalidProblemError(
            "A selection must be a boolean array of shape (heads, blocks, blocks). Got "
            f"{array.dtype} of shape {array.shape} instead."
        )
    n = array.shape[1]
    future = int((array & ~causal_block_pairs(n)).sum())
    if future:
        raise InvalidProblemError(
            f"The selection attends {future} future block pair(s) (j > i); causal attention "
            "allows key blocks j <= i only."
        )
    missing = int((~array[:, np.arange(n), np.arange(n)]).sum())
    if missing:
        raise InvalidProblemError(
            f"The selection drops {missing} diagonal block(s); every query block must attend "
            "its own block."
        )
    outside = int((~array & window_pairs(n, window)).sum())
    if outside:
        raise InvalidProblemError(
            f"The selection drops {outside} block(s) of the window={window} nearest key blocks."
        )
    counts = array.sum(axis=2)
    available = np.arange(1, n + 1)
    low = np.minimum(min_blocks, available)
    high = available if max_blocks is None else np.minimum(max_blocks, available)
    if (counts < low).any() or (counts > high).any():
        raise InvalidProblemError(
            f"The selection has query blocks outside [{min_blocks}, {max_blocks}] blocks: "
            f"counts range {int(counts.min())}..{int(counts.max())}."
        )
    if budget is not None and int(array.sum()) > budget:
        raise InvalidProblemError(
            f"The selection attends {int(array.sum())} block pairs, over the budget of {budget}."
        )


def attended_fraction(selection: Any) -> float:
    """Attended block pairs over causal block pairs (1.0 is dense causal attention).

    Examples:
        >>> import numpy as np
        >>> attended_fraction(np.eye(4, dtype=bool))
        0.4
    """
    array = np.asarray(selection, dtype=bool)
    n = array.shape[-1]
    total = array[..., 0, 0].size * n * (n + 1) // 2
    return float(array.sum()) / total


def window_pairs(num_blocks: int, window: int = 1) -> np.ndarray:
    """The local window: True where key block ``j`` is one of the ``window`` nearest, ``i-window < j <= i``.

    The pairs a selection with ``window=w`` always attends (``w=1``: the own block only).

    Examples:
        >>> window_pairs(3, 2).astype(int).tolist()
        [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    """
    i = np.arange(num_blocks)[:, None]
    j = np.arange(num_blocks)[None, :]
    mask: np.ndarray = (j <= i) & (i - j < window)
    return mask


def _window(num_heads: int, num_blocks: int, window: int) -> np.ndarray:
    return np.broadcast_to(
        window_pairs(num_blocks, window), (num_heads, num_blocks, num_blocks)
    ).copy()


def topk_selection(scores: Any, blocks_per_query: int) -> np.ndarray:
    """Per query block, its own block and the best-scored earlier ones: ``blocks_per_query`` in all.

    MoBA's gate (top-k of pooled query-key scores, the current block always kept), solved
    exactly by sorting. Query block ``i`` has ``i + 1`` causal blocks and takes all of them
    when ``blocks_per_query > i``.

    Args:
        scores: Shape ``(H, N, N)`` or ``(N, N)``, finite where ``j <= i``.
        blocks_per_query: Key blocks per query block, own block included, >= 1.

    Returns:
        A boolean selection ``(H, N, N)``.

    Examples:
        >>> import numpy as np
        >>> scores = np.array([[1.0, 0, 0], [0.2, 0.8, 0], [0.5, 0.1, 0.4]])
        >>> topk_selection(scores, 2)[0].astype(int).tolist()
        [[1, 0, 0], [1, 1, 0], [1, 0, 1]]
    """
    owner = "topk_selection"
    values = _check_scores(scores, owner)
    k = check_int(blocks_per_query, "blocks_per_query", owner, low=1)
    n = values.shape[1]
    ranked = np.where(causal_block_pairs(n), values, -np.inf)
    ranked[:, np.arange(n), np.arange(n)] = np.inf  # the own block first
    order = np.argsort(-ranked, axis=-1, kind="stable")[..., :k]
    selection = np.zeros_like(ranked, dtype=bool)
    np.put_along_axis(selection, order, True, axis=-1)
    result: np.ndarray = selection & causal_block_pairs(n)
    return result


def bigbird_selection(
    num_heads: int,
    num_blocks: int,
    *,
    window: int = 3,
    num_global: int = 1,
    num_random: int = 1,
    seed: int | None = None,
) -> np.ndarray:
    """BigBird's fixed pattern, causal: a sliding window, global blocks, random blocks.

    Query block ``i`` attends blocks ``i - window + 1 .. i``, the first ``num_global`` blocks
    and ``num_random`` other earlier blocks drawn at random (per head and query block).

    Examples:
        >>> bigbird_selection(1, 4, window=2, num_global=1, num_random=0)[0].astype(int).tolist()
        [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 0, 1, 1]]
    """
    owner = "bigbird_selection"
    heads = check_int(num_heads, "num_heads", owner, low=1)
    n = check_int(num_blocks, "num_blocks", owner, low=1)
    window = check_int(window, "window", owner, low=1)
    num_global = check_int(num_global, "num_global", owner, low=0)
    num_random = check_int(num_random, "num_random", owner, low=0)
    i = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    pattern = (j <= i) & ((i - j < window) | (j < num_global))
    selection = np.broadcast_to(pattern, (heads, n, n)).copy()
    rng = np.random.default_rng(seed)
    if num_random:
        for h in range(heads):
            for row in range(n):
                free = np.flatnonzero(~selection[h, row, : row + 1])
                if free.size:
                    chosen = rng.choice(free, size=min(num_random, free.size), replace=False)
                    selection[h, row, chosen] = True
    return selection


# ----------------------------------------------------------------------------- the objective


@dataclass(frozen=True)
class _Layout:
    """Decision variables ``0..V-1``: one per causal pair ``(h, i, j <= i - window)``.

    The pairs of the window (``i - window < j <= i``) are always kept and are no variables;
    query block ``i`` has the ``sizes[i] = max(0, i - window + 1)`` key blocks ``0..sizes[i]-1``
    to choose from.
    """

    heads: np.ndarray
    rows: np.ndarray  # query block i
    cols: np.ndarray  # key block j
    row_start: np.ndarray  # per (h, i) row (index h * N + i): first variable of the row
    sizes: np.ndarray  # per query block i: how many variables its row holds
    num_heads: int
    num_blocks: int
    window: int

    @classmethod
    def of(cls, num_heads: int, num_blocks: int, window: int = 1) -> _Layout:
        # Row-major: (i, j) with j <= i - window, rows in order.
        i, j = np.tril_indices(num_blocks, -window)
        per_head = i.size
        heads = np.repeat(np.arange(num_heads), per_head)
        sizes = np.maximum(0, np.arange(num_blocks) - window + 1)
        row_start = np.concatenate([[0], np.cumsum(np.tile(sizes, num_heads))[:-1]])
        return cls(
            heads,
            np.tile(i, num_heads),
            np.tile(j, num_heads),
            row_start,
            sizes,
            num_heads,
            num_blocks,
            window,
        )

    @property
    def size(self) -> int:
        return int(self.heads.size)

    @property
    def num_fixed(self) -> int:
        """Pairs of the window, kept whatever the variables say."""
        return self.num_heads * int(window_pairs(self.num_blocks, self.window).sum())

    def selection(self, x: np.ndarray) -> np.ndarray:
        selection = _window(self.num_heads, self.num_blocks, self.window)
        chosen = np.asarray(x, dtype=bool)
        selection[self.heads[chosen], self.rows[chosen], self.cols[chosen]] = True
        return selection

    def vector(self, selection: np.ndarray) -> np.ndarray:
        result: np.ndarray = selection[self.heads, self.rows, self.cols].astype(np.int8)
        return result


def _row_limits(
    layout: _Layout, min_blocks: int, max_blocks: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per query block, the fewest and most blocks it takes beyond its window."""
    available = layout.sizes  # causal blocks of row i outside its window
    kept = np.minimum(layout.window, np.arange(1, layout.num_blocks + 1))
    low = np.clip(min_blocks - kept, 0, available)
    high = available if max_blocks is None else np.clip(max_blocks - kept, 0, available)
    return low, high


@dataclass(frozen=True)
class _Objective:
    """The selection objective over the variables, to maximize: ``gain . x - x^T Q x``.

    ``gain`` is each block's score less its redundancy with the (always kept) window blocks;
    ``pairs`` holds ``Q`` over pairs of variables of the same query block.
    """

    layout: _Layout
    scores: np.ndarray
    gain: np.ndarray
    pair_rows: np.ndarray
    pair_cols: np.ndarray
    pair_cost: np.ndarray
    positive: np.ndarray  # max(scores, 0)
    redundancy: np.ndarray | None
    weight: float

    @classmethod
    def of(
        cls, scores: np.ndarray, redundancy: np.ndarray | None, weight: float, window: int = 1
    ) -> _Objective:
        heads, n, _ = scores.shape
        layout = _Layout.of(heads, n, window)
        h, i, j = layout.heads, layout.rows, layout.cols
        positive = np.maximum(scores, 0.0)
        gain = scores[h, i, j].copy()
        empty = np.zeros(0, dtype=np.int64)
        rows, cols, cost = [empty], [empty], [np.zeros(0)]
        if redundancy is not None and weight > 0:
            for back in range(window):  # the window's blocks i, i-1, ..., i-window+1
                kept = i - back
                gain -= (
                    weight
                    * redundancy[h, kept, j]
                    * np.minimum(positive[h, i, kept], positive[h, i, j])
                )
            for head in range(heads):
                for row in range(n):
                    size = int(layout.sizes[row])
                    if size < 2:
                        continue
                    a, b = np.triu_indices(size, 1)
                    c = (
                        weight
                        * redundancy[head, a, b]
                        * np.minimum(positive[head, row, a], positive[head, row, b])
                    )
                    keep = c > 0
                    start = layout.row_start[head * n + row]
                    rows.append(start + a[keep])
                    cols.append(start + b[keep])
                    cost.append(c[keep])
        return cls(
            layout,
            scores,
            gain,
            np.concatenate(rows),
            np.concatenate(cols),
            np.concatenate(cost),
            positive,
            redundancy,
            weight,
        )

    def bqm(self, price: float | np.ndarray = 0.0) -> dimod.BinaryQuadraticModel:
        """Minimize ``-(gain - price) . x + x^T Q x`` over integer labels ``0..V-1``."""
        return dimod.BinaryQuadraticModel.from_numpy_vectors(
            -(self.gain - price),
            (self.pair_rows, self.pair_cols, self.pair_cost),
            0.0,
            dimod.BINARY,
        )

    def energy(self, x: np.ndarray) -> float:
        """The energy of 0/1 vector ``x`` in :meth:`bqm` with no price: ``-gain . x + x^T Q x``."""
        pairs = self.pair_cost * x[self.pair_rows] * x[self.pair_cols]
        return float(-(self.gain @ x) + pairs.sum())

    def row_costs(self, head: int, row: int) -> np.ndarray:
        """``Q`` among the variables of one query block, dense ``(size, size)``."""
        size = int(self.layout.sizes[row])
        if self.redundancy is None or self.weight <= 0:
            return np.zeros((size, size))
        p = self.positive[head, row, :size]
        r = self.redundancy[head, :size, :size]
        cost = self.weight * r * np.minimum(p[:, None], p[None, :])
        np.fill_diagonal(cost, 0.0)
        return cost


def selection_value(
    selection: Any,
    scores: Any,
    *,
    redundancy: Any = None,
    redundancy_weight: float = 1.0,
) -> float:
    """The objective a selection reaches (higher is better): scores less redundancy.

    ``sum of selected scores - redundancy_weight * sum over selected pairs (j, j') of the
    same query block of R[j, j'] * min(s_j, s_j')`` (scores below 0 count as 0 in the min).

    Examples:
        >>> import numpy as np
        >>> scores = np.array([[1.0, 0.0], [0.5, 0.5]])
        >>> duplicate = np.ones((2, 2))
        >>> both = np.tril(np.ones((2, 2), dtype=bool))
        >>> selection_value(both, scores), selection_value(both, scores, redundancy=duplicate)
        (2.0, 1.5)
    """
    owner = "selection_value"
    values = _check_scores(scores, owner)
    array = np.asarray(selection, dtype=bool)
    if array.ndim == 2:
        array = array[None]
    if array.shape != values.shape:
        raise InvalidProblemError(
            f"{owner}: the selection has shape {array.shape}, the scores {values.shape}."
        )
    array = array & causal_block_pairs(values.shape[1])
    total = float(values[array].sum())
    r = _check_redundancy(redundancy, values.shape, owner)
    if r is not None:
        weight = check_float(redundancy_weight, "redundancy_weight", owner, low=0.0)
        positive = np.maximum(values, 0.0)
        low = np.minimum(positive[..., :, None], positive[..., None, :])  # (H, N, N, N)
        both = array[..., :, None] & array[..., None, :]
        upper = np.triu(np.ones(values.shape[1:], dtype=bool), 1)
        total -= weight * float((r[:, None] * low * both * upper).sum())
    return total


def _check_limits(
    heads: int, n: int, budget: Any, min_blocks: Any, max_blocks: Any, window: Any, owner: str
) -> tuple[int, int, int | None, int]:
    min_blocks = check_int(min_blocks, "min_blocks", owner, low=1)
    window = check_int(window, "window", owner, low=1)
    if max_blocks is not None:
        max_blocks = check_int(max_blocks, "max_blocks", owner, low=max(min_blocks, window))
    budget = check_int(budget, "budget", owner, low=0)
    least = minimum_budget(heads, n, max(min_blocks, window))
    if budget < least:
        raise InvalidProblemError(
            f"The 'budget' parameter of {owner} is {budget} block pairs, below the minimum of "
            f"{least}: each of the {heads} x {n} query blocks keeps its own block"
            + (f" and the {window - 1} before it (window={window})" if window > 1 else "")
            + (f" and takes at least min_blocks={min_blocks}" if min_blocks > 1 else "")
            + f". Give a budget of at least {least}"
            + (" or a smaller window." if window > 1 else ".")
        )
    return budget, min_blocks, max_blocks, window


def greedy_selection(
    scores: Any,
    budget: int,
    *,
    redundancy: Any = None,
    redundancy_weight: float = 1.0,
    min_blocks: int = 1,
    max_blocks: int | None = None,
    window: int = 1,
) -> np.ndarray:
    """Maximize the QUBO's objective greedily under the same budget and per-query limits.

    Starting from the window (the diagonal with ``window=1``), add the block whose marginal value (its score less its
    redundancy with the blocks its query block already has) is largest, while the budget
    lasts and the value is positive; query blocks below ``min_blocks`` are filled first.
    With no redundancy this is the global top of the scores under the limits: with
    ``max_blocks=k`` and an ample budget, :func:`topk_selection` for non-negative scores.

    Args:
        scores: Shape ``(H, N, N)`` or ``(N, N)``, finite where ``j <= i``.
        budget: Most attended block pairs in total, diagonals included.
        redundancy: ``(H, N, N)`` or ``(N, N)``, >= 0 (:func:`block_redundancy`), or None.
        redundancy_weight: Weight of the redundancy terms, >= 0.
        min_blocks: Fewest key blocks per query block (as far as its causal blocks allow).
        max_blocks: Most key blocks per query block, or None.
        window: Key blocks ``i - window < j <= i`` are always kept (:func:`window_pairs`).

    Returns:
        A boolean selection ``(H, N, N)`` within the budget and limits.

    Raises:
        InvalidProblemError: Non-finite scores, or a budget below :func:`minimum_budget`.

    Examples:
        >>> import numpy as np
        >>> scores = np.array([[1.0, 0, 0], [0.3, 0.7, 0], [0.6, 0.3, 0.1]])
        >>> greedy_selection(scores, 4)[0].astype(int).tolist()
        [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    """
    objective, budget, low, high = _checked_objective(
        scores, budget, redundancy, redundancy_weight, min_blocks, max_blocks, window,
        "greedy_selection",
    )  # fmt: skip
    return objective.layout.selection(_greedy(objective, budget, low, high)[0])


def _checked_objective(
    scores: Any,
    budget: Any,
    redundancy: Any,
    redundancy_weight: Any,
    min_blocks: Any,
    max_blocks: Any,
    window: Any,
    owner: str,
) -> tuple[_Objective, int, np.ndarray, np.ndarray]:
    """The checked arguments of a selector as its objective, budget and per-query limits."""
    values = _check_scores(scores, owner)
    heads, n, _ = values.shape
    budget, min_blocks, max_blocks, window = _check_limits(
        heads, n, budget, min_blocks, max_blocks, window, owner
    )
    weight = check_float(redundancy_weight, "redundancy_weight", owner, low=0.0)
    objective = _Objective.of(
        values, _check_redundancy(redundancy, values.shape, owner), weight, window
    )
    low, high = _row_limits(objective.layout, min_blocks, max_blocks)
    return objective, budget, low, high


def optimal_selection(
    scores: Any,
    budget: int,
    *,
    redundancy: Any = None,
    redundancy_weight: float = 1.0,
    min_blocks: int = 1,
    max_blocks: int | None = None,
    window: int = 1,
    time_limit: float = 60.0,
) -> np.ndarray:
    """The proven optimum of the selection objective under the budget and per-query limits.

    Solved as a mixed-integer program with scipy's HiGHS: one binary per selectable block
    pair, each redundancy term ``c x_a x_b`` (``c > 0``) replaced by a continuous ``y >=
    x_a + x_b - 1``, ``y >= 0``, and the budget and per-query limits as linear constraints.
    The reference any selector or solver can be measured against (``selection_value`` of
    the answer is the best any selection reaches); seconds for the benchmark's 4 heads x 32
    blocks, exponential in the worst case.

    Args:
        scores: As :func:`greedy_selection`; so are ``budget``, ``redundancy``,
            ``redundancy_weight``, ``min_blocks``, ``max_blocks`` and ``window``.
        time_limit: Seconds HiGHS may take, > 0.

    Returns:
        A boolean selection ``(H, N, N)``, within the budget and limits.

    Raises:
        InvalidProblemError: Non-finite scores, or a budget below :func:`minimum_budget`.
        SolverUnavailableError: HiGHS did not prove the optimum within ``time_limit``.

    Examples:
        >>> import numpy as np
        >>> scores = np.array([[1.0, 0, 0], [0.3, 0.7, 0], [0.6, 0.3, 0.1]])
        >>> optimal_selection(scores, 4)[0].astype(int).tolist()
        [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    owner = "optimal_selection"
    objective, budget, low, high = _checked_objective(
        scores, budget, redundancy, redundancy_weight, min_blocks, max_blocks, window, owner
    )
    limit = check_float(time_limit, "time_limit", owner, low=0.0, low_inclusive=False)
    layout = objective.layout
    heads, n = layout.num_heads, layout.num_blocks
    v, m = layout.size, objective.pair_cost.size
    if v == 0:
        return layout.selection(np.zeros(0, dtype=np.int8))
    pair, variables = np.arange(m), np.arange(v)
    linking = coo_matrix(  # y - x_a - x_b >= -1
        (
            np.r_[np.ones(m), -np.ones(m), -np.ones(m)],
            (np.r_[pair, pair, pair], np.r_[v + pair, objective.pair_rows, objective.pair_cols]),
        ),
        shape=(m, v + m),
    )
    row_of = layout.heads * n + layout.rows
    counts = coo_matrix(  # the budget (row 0), then each query block's count
        (
            np.ones(2 * v),
            (np.r_[np.zeros(v, dtype=np.int64), 1 + row_of], np.r_[variables, variables]),
        ),
        shape=(1 + heads * n, v + m),
    )
    free = budget - layout.num_fixed
    result = milp(
        np.r_[-objective.gain, objective.pair_cost],
        constraints=[
            LinearConstraint(linking, -1.0, np.inf),
            LinearConstraint(
                counts, np.r_[0, np.tile(low, heads)], np.r_[free, np.tile(high, heads)]
            ),
        ],
        integrality=np.r_[np.ones(v), np.zeros(m)],
        bounds=Bounds(0, 1),
        options={"time_limit": limit},
    )
    if result.status != 0 or result.x is None:
        raise SolverUnavailableError(
            f"{owner}: HiGHS did not prove the optimum within time_limit={limit} s "
            f"({result.message}). Raise time_limit, or use greedy_selection."
        )
    return layout.selection(np.round(result.x[:v]).astype(np.int8))


def _greedy(
    objective: _Objective, budget: int, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Greedy ascent: the 0/1 vector, each variable's final marginal value, the budget's price.

    The price (a Lagrange estimate) is the midpoint between the last value added and the best
    value left when the budget ran out; 0 when the budget did not bind. A variable's marginal
    value is its gain less its redundancy with the other selected blocks of its query block.
    """
    layout = objective.layout
    n = layout.num_blocks
    x = np.zeros(layout.size, dtype=np.int8)
    marginal = objective.gain.copy()
    row_of = layout.heads * n + layout.rows
    counts = np.zeros(layout.num_heads * n, dtype=np.int64)
    row_low = np.tile(low, layout.num_heads)
    row_high = np.tile(high, layout.num_heads)
    free = budget - layout.num_fixed
    separable = objective.redundancy is None or objective.weight <= 0
    if separable and not (low > 0).any() and (high >= layout.sizes).all():
        # No pairs, no per-query limits: the greedy ascent is a sort (same ties: lowest index).
        order = np.argsort(-marginal, kind="stable")
        positive = int((marginal > 0).sum())
        x[order[: min(free, positive)]] = 1
        if free >= positive or free <= 0:
            return x, marginal, 0.0
        return x, marginal, 0.5 * float(marginal[order[free - 1]] + marginal[order[free]])

    def take(v: int) -> None:
        x[v] = 1
        r = int(row_of[v])
        counts[r] += 1
        head, row = int(layout.heads[v]), int(layout.rows[v])
        start = int(layout.row_start[r])
        size = int(layout.sizes[row])
        marginal[start : start + size] -= objective.row_costs(head, row)[int(layout.cols[v])]

    # Query blocks below their minimum first (the budget covers every minimum).
    for r in np.flatnonzero(row_low > 0):
        start = int(layout.row_start[r])
        size = int(layout.sizes[r % n])
        for _ in range(int(row_low[r])):
            window = np.where(x[start : start + size] == 0, marginal[start : start + size], -np.inf)
            take(start + int(np.argmax(window)))
            free -= 1
    last = math.inf
    while free > 0:
        open_ = (x == 0) & (counts[row_of] < row_high[row_of])
        candidates = np.where(open_, marginal, -np.inf)
        v = int(np.argmax(candidates))
        if not candidates[v] > 0:
            return x, marginal, 0.0
        last = float(candidates[v])
        take(v)
        free -= 1
    open_ = (x == 0) & (counts[row_of] < row_high[row_of])
    left = float(np.max(np.where(open_, marginal, -np.inf), initial=-np.inf))
    if not math.isfinite(last) or left <= 0:
        return x, marginal, 0.0
    return x, marginal, 0.5 * (last + left)


def _prices(
    objective: _Objective,
    x: np.ndarray,
    marginal: np.ndarray,
    price: float,
    low: np.ndarray,
    high: np.ndarray,
) -> np.ndarray:
    """Per variable, the price of selecting it: the budget's, or its query block's own.

    A query block whose own limit binds in the greedy solution (its minimum kept blocks worth
    less than the budget's price, or its maximum left out blocks worth more) is priced at its
    own threshold, the midpoint between its worst selected and best unselected block: that
    makes the greedy solution a local minimum of the priced QUBO with no penalty terms.
    """
    layout = objective.layout
    n = layout.num_blocks
    prices = np.full(layout.size, price)
    for r in range(layout.num_heads * n):
        row = r % n
        size = int(layout.sizes[row])
        if size == 0:
            continue
        start = int(layout.row_start[r])
        chosen = x[start : start + size] == 1
        kept = marginal[start : start + size][chosen]
        left = marginal[start : start + size][~chosen]
        worst = float(kept.min()) if kept.size else math.inf
        best = float(left.max()) if left.size else -math.inf
        at_min = kept.size == low[row] > 0 and worst < price
        at_max = kept.size == high[row] < size and best > price
        if at_min or at_max:
            if math.isfinite(worst) and math.isfinite(best):
                own = 0.5 * (worst + best)
            else:  # every block kept, or none: any price beyond the one side
                own = worst - 1.0 if math.isfinite(worst) else best + 1.0
            prices[start : start + size] = own
    return prices


# ----------------------------------------------------------------------------- repair


def _repair_vector(
    objective: _Objective, x: np.ndarray, budget: int, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """Make one 0/1 vector feasible: per-query limits first, then the budget.

    Query blocks above ``max_blocks`` drop their lowest-valued blocks, those below
    ``min_blocks`` add their highest-valued ones; then, while over budget, the block of lowest
    marginal value among query blocks above their minimum is dropped.
    """
    layout = objective.layout
    n = layout.num_blocks
    x = np.array(x, dtype=np.int8, copy=True)
    value = np.empty(layout.size)
    for r in range(layout.num_heads * n):
        row = r % n
        size = int(layout.sizes[row])
        if size == 0:
            continue
        start = int(layout.row_start[r])
        part = x[start : start + size]
        head = r // n
        costs = objective.row_costs(head, row)

        gain = objective.gain[start : start + size]
        # Value of each block given the chosen others (the costs' diagonal is 0).
        while part.sum() > high[row]:
            m = np.where(part == 1, gain - costs @ part, np.inf)
            part[int(np.argmin(m))] = 0
        while part.sum() < low[row]:
            m = np.where(part == 0, gain - costs @ part, -np.inf)
            part[int(np.argmax(m))] = 1
        value[start : start + size] = gain - costs @ part
    over = int(x.sum()) - (budget - layout.num_fixed)
    if over > 0:
        row_of = layout.heads * n + layout.rows
        counts = np.bincount(row_of, weights=x, minlength=layout.num_heads * n).astype(np.int64)
        spare = counts - np.tile(low, layout.num_heads)
        for v in np.argsort(np.where(x == 1, value, np.inf), kind="stable"):
            if over == 0:
                break
            r = int(row_of[v])
            if x[v] and spare[r] > 0:
                x[v] = 0
                spare[r] -= 1
                over -= 1
    return x


# ----------------------------------------------------------------------------- the QUBO


def attention_problem(
    scores: Any,
    budget: int,
    *,
    redundancy: Any = None,
    redundancy_weight: float = 1.0,
    min_blocks: int = 1,
    max_blocks: int | None = None,
    window: int = 1,
    budget_encoding: BudgetEncoding = "price",
    penalty: float | Literal["auto"] = "auto",
) -> Formulation[np.ndarray]:
    """Block selection under a shared budget as a :class:`qopt.pipeline.Formulation`.

    One binary per causal block pair outside the window, ``(h, i, j <= i - window)`` (integer
    labels, head by head, query block by query block); the window's pairs (with
    ``window=1`` the diagonal, the own block) are always kept and are no variables. The
    objective (minimized) is the negated :func:`selection_value`: ``-s_hij`` per block plus
    ``redundancy_weight * R[h, j, j'] * min(s_hij, s_hij')`` per pair of blocks of the same
    query block (the window's blocks included, as linear terms). Constraints: at most
    ``budget`` attended pairs in total (diagonals included), and ``min_blocks``..``max_blocks``
    per query block where that can bind; the formulation's ``feasible_rows`` and
    ``repair_rows`` check and enforce them, and the ``"penalty"`` encoding also registers them
    on the model (for its penalties; registering 100-odd row constraints cost more than the
    annealing itself at the benchmark's size, so the ``"price"`` encoding leaves them off).

    The budget reaches the solver in one of two encodings:

    - ``"price"`` (default): Lagrange prices instead of penalties. Each selected block pays the
      budget's shadow price in :func:`greedy_selection` (midpoint of the last value it added
      and the best value left), or, in a query block whose own limit binds there, that query
      block's threshold (midpoint of its worst kept and best left-out block). The QUBO stays
      as sparse as the redundancy terms (pairs within a query block) and has no slack bits;
      the greedy selection is one of its local minima. A squared budget penalty would couple
      every pair of variables of every head: a dense clique over all of them.
    - ``"penalty"``: squared penalties with slack bits (:mod:`qopt.constraints`, weight
      ``penalty``) for the budget and the per-query limits, so that the QUBO's minimum is the
      constrained optimum (with ``"auto"``); dense, for small problems or to solve the exact
      constrained QUBO on other hardware.

    The decoder returns the boolean
    selection ``(H, N, N)``; the repair (per-query limits, then dropping the lowest-valued
    blocks while over budget) makes every sample feasible, so every solution is within the
    budget.

    Args:
        scores: Shape ``(H, N, N)`` or ``(N, N)``: what each block pair is worth, finite where
            ``j <= i`` (e.g. :func:`block_scores`, the pooled attention mass).
        budget: Most attended block pairs in total, diagonals included; at least
            :func:`minimum_budget`.
        redundancy: ``(H, N, N)`` or ``(N, N)``, >= 0 (:func:`block_redundancy`), or None.
        redundancy_weight: Weight of the redundancy terms, >= 0.
        min_blocks: Fewest key blocks per query block (own block included), >= 1.
        max_blocks: Most key blocks per query block, or None.
        window: The ``window`` nearest key blocks of each query block, ``i - window < j <= i``,
            are always kept (BigBird's sliding window; :func:`window_pairs`), >= 1; the QUBO
            chooses among the blocks before them.
        budget_encoding: ``"price"`` or ``"penalty"``.
        penalty: Weight of the squared penalties of the ``"penalty"`` encoding (``"auto"``:
            provable, see :mod:`qopt.constraints`); the ``"price"`` encoding has none.

    Raises:
        InvalidProblemError: Non-finite scores, a budget below the minimum, or a single block
            per sequence (nothing to select).
        SolverConfigurationError: An argument out of range.

    Examples:
        >>> import numpy as np
        >>> from qopt.pipeline import solve
        >>> scores = np.array([[1.0, 0, 0], [0.3, 0.7, 0], [0.6, 0.3, 0.1]])
        >>> problem = attention_problem(scores, 4, budget_encoding="penalty")
        >>> solve(problem, "exact").value[0].astype(int).tolist()
        [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    """
    return _formulation(
        scores,
        budget,
        redundancy=redundancy,
        redundancy_weight=redundancy_weight,
        min_blocks=min_blocks,
        max_blocks=max_blocks,
        window=window,
        budget_encoding=budget_encoding,
        penalty=penalty,
        owner="attention_problem",
    )[0]


def _formulation(
    scores: Any,
    budget: int,
    *,
    redundancy: Any,
    redundancy_weight: float,
    min_blocks: int,
    max_blocks: int | None,
    window: int,
    budget_encoding: BudgetEncoding,
    penalty: float | Literal["auto"],
    owner: str,
) -> tuple[Formulation[np.ndarray], _Objective, np.ndarray]:
    """:func:`attention_problem`'s formulation, its objective and the greedy 0/1 vector."""
    from qopt.constraints import ConstrainedQUBO
    from qopt.pipeline import Formulation

    if budget_encoding not in ("price", "penalty"):
        raise SolverConfigurationError(
            f"The 'budget_encoding' parameter of {owner} must be 'price' or 'penalty'. Got "
            f"{budget_encoding!r} instead."
        )
    objective, budget, low, high = _checked_objective(
        scores, budget, redundancy, redundancy_weight, min_blocks, max_blocks, window, owner
    )
    layout = objective.layout
    heads, n, window = layout.num_heads, layout.num_blocks, layout.window
    if n < 2:
        raise InvalidProblemError(
            f"{owner}: one block per sequence leaves nothing to select (the own block is always "
            "kept). Use a smaller block_size or a longer sequence."
        )
    if window >= n:
        raise InvalidProblemError(
            f"{owner}: window={window} keeps every causal block of {n}, leaving nothing to "
            f"select. Use a window below {n}."
        )
    free = budget - layout.num_fixed

    def add_row_limits(model: ConstrainedQUBO) -> None:
        for r in range(heads * n):
            row = r % n
            size = int(layout.sizes[row])
            if size == 0 or (low[row] <= 0 and high[row] >= size):
                continue
            start = int(layout.row_start[r])
            terms: dict[Hashable, float] = {v: 1.0 for v in range(start, start + size)}
            bounds = {"lb": float(low[row])} if low[row] > 0 else {}
            if high[row] < size:
                bounds["ub"] = float(high[row])
            model.add_inequality(terms, label=f"head {r // n} query block {row}", **bounds)

    model = ConstrainedQUBO(objective.bqm())
    if budget_encoding == "penalty":
        add_row_limits(model)
        if free < layout.size:
            every: dict[Hashable, float] = {v: 1.0 for v in range(layout.size)}
            model.add_inequality(every, ub=float(free), label="budget")

    greedy, marginal, price = _greedy(objective, budget, low, high)
    bqm: dimod.BinaryQuadraticModel | None = None
    if budget_encoding == "price":
        bqm = objective.bqm(_prices(objective, greedy, marginal, price, low, high))

    row_of = layout.heads * n + layout.rows
    row_low = np.tile(low, heads)
    row_high = np.tile(high, heads)

    def feasible_rows(samples: np.ndarray) -> np.ndarray:
        counts = np.zeros((samples.shape[0], heads * n), dtype=np.int64)
        np.add.at(counts.T, row_of, samples.T.astype(np.int64))
        within = ((counts >= row_low) & (counts <= row_high)).all(axis=1)
        result: np.ndarray = within & (samples.sum(axis=1) <= free)
        return result

    def repair_rows(samples: np.ndarray) -> np.ndarray:
        return np.stack([_repair_vector(objective, s, budget, low, high) for s in samples])

    def decode(sample: Mapping[Hashable, int]) -> np.ndarray:
        x = np.fromiter((sample[v] for v in range(layout.size)), dtype=np.int8, count=layout.size)
        return layout.selection(x)

    formulation = Formulation(
        model,
        decode=decode,
        penalty=penalty,
        bqm=bqm,
        feasible_rows=feasible_rows,
        repair_rows=repair_rows,
    )
    return formulation, objective, greedy


def solve_attention(
    scores: Any,
    budget: int,
    *,
    redundancy: Any = None,
    redundancy_weight: float = 1.0,
    min_blocks: int = 1,
    max_blocks: int | None = None,
    window: int = 1,
    budget_encoding: BudgetEncoding = "price",
    penalty: float | Literal["auto"] = "auto",
    warm_start: WarmStart = "greedy",
    solver: str | dimod.Sampler = "sa",
    solver_options: Mapping[str, Any] | None = None,
    **sample_params: Any,
) -> Solution[np.ndarray]:
    """Select blocks with a QUBO solver: :func:`attention_problem` through :func:`qopt.pipeline.solve`.

    With ``warm_start="greedy"`` (the default) the answer is never worse on the objective
    than :func:`greedy_selection`'s: the greedy selection is handed to the solver as its
    initial state where the solver takes ``initial_states`` and the BQM has no slack bits
    (the ``"price"`` encoding; :class:`~qopt.solvers.SimulatedAnnealingSolver` then anneals
    only the cold end of its schedule, refining it), and it is returned instead of the
    solver's answer when its objective is better. The objective here is close to separable
    (redundancy only couples blocks of the same query block), and greedy often reaches the
    optimum itself (``docs/benchmarks/attention.md`` gives how often): then the solver adds
    time, not quality. ``warm_start=None`` gives the solver's own answer.

    Args:
        scores: As :func:`attention_problem`; so are ``budget``, ``redundancy``,
            ``redundancy_weight``, ``min_blocks``, ``max_blocks``, ``window``,
            ``budget_encoding`` and ``penalty``.
        warm_start: ``"greedy"`` or ``None`` (see above).
        solver: A registry name (``qopt solvers``) or a :class:`dimod.Sampler`.
        solver_options: Options of :func:`qopt.solvers.get_solver` for a named solver; where
            the backend has them and they are not set, ``num_reads=4`` and ``num_sweeps=200``
            (:data:`ATTENTION_SOLVER_DEFAULTS`).
        **sample_params: Passed to the solver's ``sample`` (``seed``, ...).

    Returns:
        The pipeline's :class:`~qopt.pipeline.Solution`: ``value`` is the boolean selection
        ``(H, N, N)``, feasible and within the budget (repaired if need be). When the warm
        start won, ``sample`` and ``objective`` are its own and ``repaired`` is False.

    Raises:
        SolverConfigurationError: ``warm_start`` is not ``"greedy"`` or ``None``, or a
            solver option is invalid.

    Examples:
        >>> import numpy as np
        >>> scores = np.array([[1.0, 0, 0], [0.3, 0.7, 0], [0.6, 0.3, 0.1]])
        >>> solve_attention(scores, 4, seed=0).value[0].astype(int).tolist()
        [[1, 0, 0], [0, 1, 0], [1, 0, 1]]
    """
    from qopt.pipeline import solve
    from qopt.solvers import resolve_solver

    owner = "solve_attention()"
    if warm_start not in ("greedy", None):
        raise SolverConfigurationError(
            f"The 'warm_start' parameter of {owner} must be 'greedy' or None. Got "
            f"{warm_start!r} instead."
        )
    problem, objective, greedy = _formulation(
        scores,
        budget,
        redundancy=redundancy,
        redundancy_weight=redundancy_weight,
        min_blocks=min_blocks,
        max_blocks=max_blocks,
        window=window,
        budget_encoding=budget_encoding,
        penalty=penalty,
        owner=owner,
    )
    sampler = resolve_solver(
        solver, solver_options, defaults=ATTENTION_SOLVER_DEFAULTS, owner=owner
    )
    if (
        warm_start == "greedy"
        and budget_encoding == "price"  # the BQM's variables are 0..V-1 in order, no slack
        and "initial_states" not in sample_params
        and "initial_states" in sampler.parameters
    ):
        sample_params["initial_states"] = greedy[None, :]
    solution = solve(problem, sampler, **sample_params)
    if warm_start == "greedy":
        energy = objective.energy(greedy)
        if energy < solution.objective - 1e-9 * max(1.0, abs(energy)):
            solution = replace(
                solution,
                value=objective.layout.selection(greedy),
                sample={v: int(greedy[v]) for v in range(greedy.size)},
                objective=energy,
                feasible=True,
                repaired=False,
            )
    return solution
