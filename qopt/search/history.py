"""What a search has seen: evaluated, failed and pending points, as value indices and bits."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qopt.surrogates import predicted_quantile

__all__ = ["History", "outcome_quantile", "point_key", "proposal_attrs", "read_proposal"]

#: Longest text of one stored attribute (what an RDB storage of Optuna keeps).
ATTR_MAX_LENGTH = 2045


def point_key(indices: Mapping[str, int]) -> tuple[int, ...]:
    """A point's identity: its value indices in the space's parameter order."""
    return tuple(indices.values())


@dataclass
class History:
    """The observations of one search space, in the order they were made.

    ``points`` (value indices per parameter, as :meth:`qopt.encoding.SpaceEncoding.indices_of`
    gives them) and ``rows`` (their bits) are the observed points, completed and failed alike;
    ``values`` holds each one's objective values (NaN for a failure, which ranks worst),
    ``violations`` its black-box constraint violation (0 when feasible). Pending points
    (proposed, not yet told) are never proposed again and enter the fit as liars.

    Examples:
        >>> import numpy as np
        >>> history = History()
        >>> history.add_complete({"x": 1}, np.array([1, 0]), (0.5,))
        >>> history.add_failed({"x": 2}, np.array([1, 1]), n_objectives=1)
        >>> history.add_pending({"x": 0}, np.array([0, 0]))
        >>> sorted(history.taken())
        [(0,), (1,), (2,)]
    """

    points: list[dict[str, int]] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    values: list[tuple[float, ...]] = field(default_factory=list)
    violations: list[float] = field(default_factory=list)
    #: Per observed point: whether it was a trust-region restart proposal.
    restarts: list[bool] = field(default_factory=list)
    bad: list[dict[str, int]] = field(default_factory=list)
    pending: list[dict[str, int]] = field(default_factory=list)
    pending_rows: list[np.ndarray] = field(default_factory=list)
    pending_restart: bool = False
    #: Model proposals' forecasts (quantiles, made before they ran) and their outcomes.
    forecasts: list[float] = field(default_factory=list)
    outcomes: list[float] = field(default_factory=list)

    def taken(self) -> set[tuple[int, ...]]:
        """Keys (:func:`point_key`) of every point observed, failed or pending."""
        return {point_key(p) for p in (*self.points, *self.pending, *self.bad)}

    def add_complete(
        self,
        point: dict[str, int],
        row: np.ndarray,
        values: Sequence[float],
        *,
        violation: float = 0.0,
        restart: bool = False,
    ) -> None:
        """An evaluated point with its objective values and constraint violation."""
        self.points.append(point)
        self.rows.append(row)
        self.values.append(tuple(float(v) for v in values))
        self.violations.append(float(violation))
        self.restarts.append(restart)

    def add_failed(
        self, point: dict[str, int], row: np.ndarray, *, n_objectives: int, restart: bool = False
    ) -> None:
        """A point whose evaluation failed (or was pruned): worse than any completed one.

        Its values are NaN rather than inf: the targets map NaN to +inf after the direction's
        sign, so a failure is worst in maximized objectives too.
        """
        self.points.append(point)
        self.rows.append(row)
        self.values.append((math.nan,) * n_objectives)
        self.violations.append(0.0)
        self.bad.append(point)
        self.restarts.append(restart)

    def add_pending(self, point: dict[str, int], row: np.ndarray, *, restart: bool = False) -> None:
        """A point proposed and not yet told."""
        self.pending.append(point)
        self.pending_rows.append(row)
        if restart:
            self.pending_restart = True

    def add_forecast(self, forecast: float, outcome: float) -> None:
        """A model proposal's predicted quantile and the quantile its value then took."""
        self.forecasts.append(float(forecast))
        self.outcomes.append(float(outcome))


def outcome_quantile(value: float | None, earlier: Sequence[float]) -> float:
    """Where an observed value (to minimize) fell among the values observed before it: the
    outcome a proposal's ``predicted_quantile`` forecast; 1 for a failure (None or NaN).

    Examples:
        >>> outcome_quantile(1.5, [1.0, 2.0]), outcome_quantile(None, [1.0])
        (0.5, 1.0)
    """
    if value is None or math.isnan(value):
        return 1.0
    return predicted_quantile(float(value), np.asarray(earlier, dtype=float))


def proposal_attrs(proposal: Mapping[str, Any], key: str) -> dict[str, str]:
    """A proposal (JSON-able values) as attributes ``key:0``, ``key:1``, ... of at most
    :data:`ATTR_MAX_LENGTH` characters each: how workers sharing a storage see each other's
    pending points. :func:`read_proposal` reads it back.

    Examples:
        >>> proposal_attrs({"x": 3}, "qopt:proposal")
        {'qopt:proposal:0': '{"x": 3}'}
    """
    text = json.dumps(dict(proposal))
    return {
        f"{key}:{i // ATTR_MAX_LENGTH}": text[i : i + ATTR_MAX_LENGTH]
        for i in range(0, len(text), ATTR_MAX_LENGTH)
    }


def read_proposal(attrs: Mapping[str, Any], key: str) -> dict[str, Any]:
    """The proposal stored by :func:`proposal_attrs` in ``attrs`` (``{}`` when none).

    Examples:
        >>> read_proposal(proposal_attrs({"x": 3}, "p"), "p")
        {'x': 3}
    """
    chunks: list[str] = []
    while (chunk := attrs.get(f"{key}:{len(chunks)}")) is not None:
        chunks.append(chunk)
    return dict(json.loads("".join(chunks))) if chunks else {}
