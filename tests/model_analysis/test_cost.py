"""Tests for ModelCost: the polynomial equals the count on the physically pruned model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from qopt.model_analysis import count_params_and_macs
from qopt.model_analysis.cost import ModelCost
from qopt.model_analysis.surgery import remove_units
from qopt.model_analysis.tracing import trace_unit_groups
from tests.model_analysis.models import Residual, tiny_cnn, tiny_moe

CASES = [
    (tiny_cnn, torch.zeros(1, 1, 8, 8)),
    (Residual, torch.zeros(3, 8)),
    (tiny_moe, torch.zeros(4, 16)),
]


@pytest.mark.parametrize(("build", "example"), CASES)
def test_predicted_cost_is_the_count_of_the_pruned_model(build, example) -> None:
    torch.manual_seed(0)
    model = build()
    groups = trace_unit_groups(model, example)
    cost = ModelCost(model, example, groups)
    full = {g.name: g.size for g in groups}
    assert (cost.predict("params", full), cost.predict("macs", full)) == count_params_and_macs(
        model, example
    )
    rng = np.random.default_rng(1)
    for _ in range(3):
        masks = {}
        for g in groups:
            keep = rng.random(g.size) < 0.6
            keep[rng.choice(g.size, size=g.min_keep(1), replace=False)] = True
            masks[g.name] = keep
        counts = {name: int(keep.sum()) for name, keep in masks.items()}
        pruned = copy.deepcopy(model)
        remove_units(pruned, example, trace_unit_groups(pruned, example), masks)
        assert count_params_and_macs(pruned, example) == (
            cost.predict("params", counts),
            cost.predict("macs", counts),
        )
        # The problem's cost of the same keep masks over the alive units is the same number.
        for budget in ("params", "macs"):
            alive = {g.name: np.ones(g.size, dtype=bool) for g in groups}
            assert cost.cost(budget, alive)(masks) == pytest.approx(cost.predict(budget, counts))
