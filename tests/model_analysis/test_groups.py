"""Tests for model_pruning_groups: the public groups, their exact cost and removal."""

from __future__ import annotations

import pytest
import torch

from qopt.exceptions import InvalidProblemError, SolverConfigurationError, UnknownNameError
from qopt.model_analysis import count_params_and_macs, model_pruning_groups
from tests.model_analysis.models import tiny_cnn, tiny_moe


def test_cost_is_exact_after_pruning() -> None:
    torch.manual_seed(3)
    model = tiny_cnn()
    example = torch.zeros(1, 1, 8, 8)
    groups = model_pruning_groups(model, example)
    assert [(g.name, g.size, g.kind, g.layers) for g in groups] == [
        ("0", 6, "channels", ("0",)),
        ("3", 8, "channels", ("3",)),
        ("6", 12, "channels", ("6",)),
    ]
    assert repr(groups) == "ModelPruningGroups('0': 6 channels, '3': 8 channels, '6': 12 channels)"
    generator = torch.Generator().manual_seed(0)
    masks = {g.name: torch.rand(g.size, generator=generator) < 0.6 for g in groups}
    masks["0"][0] = True  # every group keeps one unit
    del masks["6"]  # a group without a mask stays whole
    counts = {name: int(mask.sum()) for name, mask in masks.items()}
    predicted = (groups.cost(counts, "params"), groups.cost(counts, "macs"))
    assert predicted < count_params_and_macs(model, example)
    groups.prune(model, masks)
    assert count_params_and_macs(model, example) == predicted
    assert (model[3].out_channels, model[6].out_features) == (counts["3"], 12)


def test_experts_keep_at_least_top_k() -> None:
    groups = model_pruning_groups(tiny_moe(), torch.zeros(4, 16), min_keep=3)
    assert [(g.name, g.kind, g.min_keep) for g in groups] == [
        ("0", "channels", 3),
        ("3.experts", "experts", 3),
    ]
    groups = model_pruning_groups(tiny_moe(), torch.zeros(4, 16))
    assert groups["3.experts"].min_keep == 2
    with pytest.raises(InvalidProblemError, match=r"'3\.experts' keeps 1 unit\(s\).*at least 2"):
        groups.prune(tiny_moe(), {"3.experts": [True] + [False] * 5})


def test_errors_name_the_argument_and_list_the_groups() -> None:
    groups = model_pruning_groups(tiny_cnn(), torch.zeros(1, 1, 8, 8))
    with pytest.raises(UnknownNameError, match=r"'9'.*\['0', '3', '6'\]") as caught:
        groups["9"]
    assert isinstance(caught.value, KeyError)
    with pytest.raises(InvalidProblemError, match=r"cost got counts for unknown groups \['9'\]"):
        groups.cost({"9": 1})
    with pytest.raises(SolverConfigurationError, match="'budget'"):
        groups.cost({}, "flops")
    with pytest.raises(InvalidProblemError, match=r"prune got masks for unknown groups"):
        groups.prune(tiny_cnn(), {"9": [True]})
    with pytest.raises(InvalidProblemError, match=r"'0' keeps 0"):
        groups.prune(tiny_cnn(), {"0": torch.zeros(6, dtype=torch.bool)})
    with pytest.raises(SolverConfigurationError, match="'min_keep'"):
        model_pruning_groups(tiny_cnn(), torch.zeros(1, 1, 8, 8), min_keep=0)
