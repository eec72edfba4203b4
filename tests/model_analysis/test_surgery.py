"""Tests for remove_units: smaller layers that compute what the masked network did."""

from __future__ import annotations

import copy

import pytest
import torch

from qopt.exceptions import InvalidProblemError
from qopt.model_analysis.surgery import as_keep_mask, remove_units
from qopt.model_analysis.tracing import trace_unit_groups
from tests.model_analysis.models import tiny_cnn, tiny_moe


def test_removing_units_nothing_reads_keeps_the_function() -> None:
    torch.manual_seed(0)
    model = tiny_cnn().eval()
    example = torch.zeros(1, 1, 8, 8)
    with torch.no_grad():  # nothing reads conv 3's channels 0 and 5, nor fc 6's neuron 2
        model[6].weight.view(12, 8, 16)[:, [0, 5]] = 0.0
        model[8].weight[:, 2] = 0.0
    x = torch.randn(4, 1, 8, 8)
    before = model(x)
    pruned = copy.deepcopy(model)
    groups = trace_unit_groups(model, example)  # traced on the original, applied by name
    keep3 = [i not in (0, 5) for i in range(8)]
    remove_units(
        pruned,
        example,
        groups,
        {"0": [True] * 6, "3": keep3, "6": as_keep_mask(torch.arange(12) != 2)},
    )
    assert (pruned[3].out_channels, pruned[6].in_features, pruned[6].out_features) == (6, 96, 11)
    assert pruned[0].out_channels == 6  # an all-True mask leaves a group whole
    torch.testing.assert_close(pruned(x), before)


def test_experts_go_through_keep_experts() -> None:
    model = tiny_moe(num_experts=4)
    example = torch.zeros(4, 16)
    groups = trace_unit_groups(model, example)
    remove_units(
        model, example, groups, {"0": [True] * 24, "3.experts": [True, False, True, False]}
    )
    assert model[3].num_experts == 2 and tuple(model[3].router.weight.shape) == (2, 8)
    with pytest.raises(InvalidProblemError, match="at least top_k=2"):
        model[3].keep_experts([1])
    with pytest.raises(InvalidProblemError, match="distinct expert indices"):
        model[3].keep_experts([1, 1])
    with pytest.raises(InvalidProblemError, match="distinct expert indices"):
        model[3].keep_experts([0, 2])


def test_a_mask_of_the_wrong_length_names_its_group() -> None:
    model = tiny_cnn()
    example = torch.zeros(1, 1, 8, 8)
    groups = trace_unit_groups(model, example)
    masks = {"0": [True] * 5, "3": [True] * 8, "6": [True] * 12}
    with pytest.raises(InvalidProblemError, match=r"group '0' must have shape \(6,\)"):
        remove_units(model, example, groups, masks)
