"""qopt.search.history: the observations, outcome quantiles and shared proposals."""

from __future__ import annotations

import math

import numpy as np

from qopt.search import History, outcome_quantile, point_key, proposal_attrs, read_proposal
from qopt.search.history import ATTR_MAX_LENGTH


def test_failures_and_pending_points_are_taken_and_restarts_remembered() -> None:
    history = History()
    history.add_complete({"x": 0}, np.array([0]), (1.0,), violation=0.5)
    history.add_failed({"x": 1}, np.array([1]), n_objectives=2, restart=True)
    history.add_pending({"x": 2}, np.array([1]), restart=True)
    assert history.taken() == {(0,), (1,), (2,)}
    assert math.isnan(history.values[1][1]) and history.violations == [0.5, 0.0]
    assert history.restarts == [False, True] and history.pending_restart
    assert point_key({"b": 2, "a": 1}) == (2, 1)  # the space's parameter order


def test_outcome_quantile_ranks_among_earlier_values_and_failures_last() -> None:
    assert outcome_quantile(0.0, [1.0, 2.0]) == 0.0
    assert outcome_quantile(3.0, [1.0, 2.0]) == 1.0
    assert outcome_quantile(float("nan"), [1.0]) == outcome_quantile(None, []) == 1.0


def test_long_proposals_are_chunked_and_read_back() -> None:
    proposal = {f"parameter_{i}": i * 0.5 for i in range(300)}
    attrs = proposal_attrs(proposal, "qopt:proposal")
    assert len(attrs) > 1 and all(len(v) <= ATTR_MAX_LENGTH for v in attrs.values())
    assert read_proposal(attrs, "qopt:proposal") == proposal
    assert read_proposal({}, "qopt:proposal") == {}
