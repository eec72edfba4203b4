"""Tests for trace_unit_groups: which units form a group, and the errors that name a module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.model_analysis.tracing import trace_unit_groups
from tests.model_analysis.models import Residual, tiny_cnn, tiny_moe


def test_each_layer_feeding_another_is_a_group_in_module_order() -> None:
    model = tiny_cnn()
    groups = trace_unit_groups(model, torch.zeros(1, 1, 8, 8))
    assert [(g.name, g.size) for g in groups] == [("0", 6), ("3", 8), ("6", 12)]
    first = groups[0]
    # Conv 0's channels are read by conv 3 and normalized by BatchNorm 1 on the way.
    assert [m for m, _, _ in first.consumers] == [model[3]]
    assert first.norms == {"0": model[1]}
    assert first.touched == {model[0]: ("out", 1), model[1]: ("out", 1), model[3]: ("in", 1)}
    # Flatten: each of conv 3's channels is 16 inputs of the linear layer.
    module, positions, units = groups[1].consumers[0]
    assert module is model[6] and len(positions) == 8 * 16
    assert units.tolist() == sorted(units.tolist())
    assert groups[1].touched[model[6]] == ("in", 16)


def test_layers_coupled_by_an_addition_are_one_group() -> None:
    groups = trace_unit_groups(Residual(), torch.zeros(1, 8))
    assert [(g.name, g.size, [n for n, _ in g.roots]) for g in groups] == [
        ("stem", 10, ["stem"]),
        ("left+right", 6, ["left", "right"]),
    ]


def test_moe_experts_are_a_group_and_its_d_model_is_not() -> None:
    model = tiny_moe()
    groups = trace_unit_groups(model, torch.zeros(4, 16))
    assert [(g.name, g.size, g.moe is model[3]) for g in groups] == [
        ("0", 24, False),
        ("3.experts", 6, True),
    ]
    assert groups[1].min_keep(1) == 2 and groups[0].min_keep(3) == 3
    only = trace_unit_groups(model, torch.zeros(4, 16), layers=["3"])
    assert [g.name for g in only] == ["3.experts"]


def test_errors_name_the_module() -> None:
    example = torch.zeros(1, 1, 8, 8)
    with pytest.raises(SolverConfigurationError, match=r"does not have: \['net\.9'\]"):
        trace_unit_groups(tiny_cnn(), example, ["net.9"])
    with pytest.raises(InvalidProblemError, match=r"'8' \(Linear\) has no prunable units"):
        trace_unit_groups(tiny_cnn(), example, ["8"])
    with pytest.raises(InvalidProblemError, match=r"'2' cannot be pruned.*MoE layer '3'"):
        trace_unit_groups(tiny_moe(), torch.zeros(4, 16), ["2"])
    with pytest.raises(InvalidProblemError, match="could not trace Sequential"):
        trace_unit_groups(tiny_cnn(), torch.zeros(1, 3, 5), owner="me")
    grouped = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 2, 1))
    with pytest.raises(InvalidProblemError, match=r"grouped or depthwise convolution '1'"):
        trace_unit_groups(grouped, torch.zeros(1, 1, 8, 8))
    with pytest.raises(InvalidProblemError, match="no prunable group"):
        trace_unit_groups(nn.Linear(4, 2), torch.zeros(1, 4))
