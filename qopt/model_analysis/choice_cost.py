"""A model's parameters or MACs as a low-order polynomial in the discrete choices it is built from.

A builder maps an architecture (one value per choice: widths, depths, operations) to a torch
model. Its cost is fitted from probe builds, exactly where the cost has a low-order form:

1. the **base** architecture (every choice at its first value);
2. every **single change** from the base (``sum(n_c - 1)`` builds): a per-value delta;
3. every **pair screen**: both choices of a pair at their last values (one build per pair);
   a pair whose cost there is not the sum of its two deltas interacts (a layer between two
   chosen widths, width x depth), and its whole grid of ``(n_a - 1) (n_b - 1)`` builds gives
   a pair table;
4. **checks**: random whole architectures built and counted; if one disagrees, every pair
   not yet gridded is gridded and the checks run again.

The result, ``constant + sum_c unary[c][x_c] + sum_(a, b) pairs[a, b][x_a, x_b]``, is exact
(:attr:`ChoiceCost.exact`) when every check agrees. When no such form holds (a cost that
multiplies three choices, say channels in x channels out x kernel size), the fit is shifted
down to be no more than any cost measured, and a caller uses the measured cost of the built
candidate as the exact check.

Builds are cheap: the model is built on PyTorch's ``meta`` device (shapes, no memory, no
initialisation) and counted there (:func:`qopt.model_analysis.count_params_and_macs` runs on
meta tensors); a builder that cannot build on meta is built on the CPU instead.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from qopt.exceptions import InvalidProblemError
from qopt.model_analysis.counting import count_params_and_macs

__all__ = ["METRICS", "ChoiceCost", "build_for_counting", "fit_choice_cost", "model_cost"]

#: What a model's cost can be: its parameters, MACs of one forward, or FLOPs (2 x MACs).
METRICS = ("params", "macs", "flops")
#: Relative tolerance of an exact fit (costs are integers; float sums are exact far beyond it).
TOLERANCE = 1e-9
#: Random whole architectures built to check a fit.
CHECKS = 20
#: The most builds a fit spends gridding pairs after a failed check; beyond it, the fit is
#: declared not exact rather than grown further.
MAX_PAIR_BUILDS = 5000

Point = Mapping[str, int]


def model_cost(model: nn.Module, metric: str) -> float:
    """``metric`` (``"params"``, ``"macs"`` or ``"flops"``) of a built model.

    Parameters are counted from the model's tensors (no forward); MACs run one forward of the
    model's ``example_input_array`` (:func:`qopt.model_analysis.count_params_and_macs`), and
    FLOPs are twice the MACs.

    Raises:
        InvalidProblemError: An unknown metric, or MACs/FLOPs of a model without
            ``example_input_array``.

    Examples:
        >>> model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> model.example_input_array = torch.zeros(1, 8)
        >>> model_cost(model, "params"), model_cost(model, "flops")
        (46.0, 80.0)
    """
    if metric not in METRICS:
        raise InvalidProblemError(f"Unknown model cost {metric!r}; use one of {list(METRICS)}.")
    if metric == "params":
        return float(sum(p.numel() for p in model.parameters()))
    example = getattr(model, "example_input_array", None)
    if example is None:
        raise InvalidProblemError(
            f"The built {type(model).__name__} has no 'example_input_array', so its {metric} "
            "cannot be counted; set 'self.example_input_array = torch.zeros(<one input>)' in "
            "its __init__ (one forward of it is counted), or budget 'params' instead."
        )
    _, macs = count_params_and_macs(model, example)
    return float(macs if metric == "macs" else 2 * macs)


def build_for_counting(
    build: Callable[[dict[str, Any]], Any], architecture: Mapping[str, Any], metric: str
) -> float:
    """``metric`` of ``build(architecture)``, built on the ``meta`` device when it can be.

    On meta, tensors have shapes but no memory, so probing a large model costs nothing; a
    builder or forward that fails there (it reads data, calls ``.item()``) is built again on
    the CPU. Errors of that build propagate to the caller.

    Examples:
        >>> build_for_counting(lambda a: nn.Linear(a["w"], 2), {"w": 8}, "params")
        18.0
    """
    try:
        with torch.device("meta"):
            model = build(dict(architecture))
            if isinstance(model, nn.Module):
                return model_cost(model, metric)
    except InvalidProblemError:
        raise
    except Exception:  # anything a builder does that meta cannot: built again on the CPU
        pass
    model = build(dict(architecture))
    if not isinstance(model, nn.Module):
        raise InvalidProblemError(
            f"The builder returned {type(model).__name__} for {dict(architecture)}; it must "
            "return the torch model (an nn.Module, e.g. a LightningModule) of the architecture."
        )
    return model_cost(model, metric)


@dataclass(frozen=True)
class ChoiceCost:
    """A cost over value positions: ``constant + unary + pair tables``; see the module.

    Attributes:
        constant: The cost of the base architecture (every choice at position 0), shifted
            down when the fit is not exact so it is no more than any cost measured.
        unary: Per choice, the cost change of each value position from the base (0 at 0).
        pairs: Per interacting pair ``(a, b)``, the cost not explained by the two unary terms,
            a table ``[position of a, position of b]`` (0 in row and column 0).
        exact: Whether every check build agreed with the fit.
        builds: How many distinct architectures were built and counted.
        worst_error: The largest ``|measured - fitted|`` over the builds (0 when exact).
    """

    constant: float
    unary: dict[str, np.ndarray]
    pairs: dict[tuple[str, str], np.ndarray]
    exact: bool
    builds: int
    worst_error: float = 0.0
    measured: dict[tuple[int, ...], float] = field(default_factory=dict, repr=False)

    def predict(self, point: Point) -> float:
        """The fitted cost at value positions ``point``."""
        total = self.constant + sum(float(u[point[n]]) for n, u in self.unary.items())
        return float(total + sum(float(m[point[a], point[b]]) for (a, b), m in self.pairs.items()))


def _planned(sizes: Mapping[str, int]) -> int:
    varied = [n - 1 for n in sizes.values() if n > 1]
    return 1 + sum(varied) + math.comb(len(varied), 2)


def fit_choice_cost(
    measure: Callable[[Point], float],
    sizes: Mapping[str, int],
    *,
    checks: int = CHECKS,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> ChoiceCost:
    """Fit the cost ``measure(point)`` of value positions by probe builds; see the module.

    Args:
        measure: The cost of a point (choice name to value position), e.g. a build and count.
        sizes: Number of values of each choice.
        checks: Random whole architectures measured to check the fit.
        seed: Seed of the random checks.
        progress: Called with ``(builds done, builds planned)`` after each build; the plan is
            ``1 + sum(n_c - 1) + pairs + checks`` and grows by each gridded pair's table.

    Returns:
        A :class:`ChoiceCost`.

    Examples:
        >>> fit = fit_choice_cost(lambda p: 3 + 2 * p["a"] + p["a"] * p["b"], {"a": 3, "b": 4})
        >>> fit.exact, fit.predict({"a": 2, "b": 3}), list(fit.pairs)
        (True, 13.0, [('a', 'b')])
    """
    names = list(sizes)
    base = {n: 0 for n in names}
    varied = [n for n in names if sizes[n] > 1]
    seen: dict[tuple[int, ...], float] = {}
    plan = [_planned(sizes) + checks]

    def at(point: Point) -> float:
        key = tuple(int(point[n]) for n in names)
        if key not in seen:
            seen[key] = float(measure(point))
            if progress is not None:
                progress(len(seen), max(plan[0], len(seen)))
        return seen[key]

    f0 = at(base)
    unary = {n: np.zeros(sizes[n]) for n in varied}
    for n in varied:
        for k in range(1, sizes[n]):
            unary[n][k] = at({**base, n: k}) - f0

    def interaction(a: str, b: str, i: int, j: int) -> float:
        return at({**base, a: i, b: j}) - f0 - unary[a][i] - unary[b][j]

    pairs: dict[tuple[str, str], np.ndarray] = {}

    def grid(a: str, b: str) -> None:
        plan[0] += (sizes[a] - 1) * (sizes[b] - 1) - 1
        table = np.zeros((sizes[a], sizes[b]))
        for i in range(1, sizes[a]):
            for j in range(1, sizes[b]):
                table[i, j] = interaction(a, b, i, j)
        pairs[(a, b)] = table

    for a, b in itertools.combinations(varied, 2):
        if not _close(interaction(a, b, sizes[a] - 1, sizes[b] - 1), 0.0, f0):
            grid(a, b)
    fit = ChoiceCost(f0, unary, pairs, exact=True, builds=0)
    rng = np.random.default_rng(seed)
    for attempt in range(2):
        points = [{n: int(rng.integers(sizes[n])) for n in names} for _ in range(checks)]
        if all(_close(fit.predict(p), at(p), f0) for p in points):
            return ChoiceCost(f0, unary, pairs, exact=True, builds=len(seen), measured=seen)
        remaining = [(a, b) for a, b in itertools.combinations(varied, 2) if (a, b) not in pairs]
        more = sum((sizes[a] - 1) * (sizes[b] - 1) for a, b in remaining)
        if attempt or not remaining or more > MAX_PAIR_BUILDS:
            break
        # A pair can interact away from the corner it was screened at: grid them all.
        for a, b in remaining:
            grid(a, b)
    # No low-order form: a fit no more than any measured cost, for the caller's relaxation.
    errors = [cost - fit.predict(dict(zip(names, key, strict=True))) for key, cost in seen.items()]
    shift = min(0.0, min(errors))
    return ChoiceCost(
        f0 + shift,
        unary,
        pairs,
        exact=False,
        builds=len(seen),
        worst_error=max(abs(e) for e in errors),
        measured=seen,
    )


def _close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= TOLERANCE * max(1.0, abs(scale), abs(a), abs(b))
