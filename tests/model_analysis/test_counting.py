"""Tests for count_params_and_macs: Linear, Conv2d, MoE experts, and the forward it runs."""

from __future__ import annotations

import torch
from torch import nn

from qopt.model_analysis import count_params_and_macs
from qopt.model_analysis.counting import layer_positions
from qopt.moe import MoE
from tests.model_analysis.models import tiny_cnn


def test_linear_and_conv_macs_are_weight_multiplications_per_position() -> None:
    model = tiny_cnn()
    params, macs = count_params_and_macs(model, torch.zeros(2, 1, 8, 8))
    conv1 = 2 * 8 * 8 * 6 * 1 * 9
    conv2 = 2 * 4 * 4 * 8 * 6 * 9
    fc = 2 * (128 * 12 + 12 * 3)
    assert macs == conv1 + conv2 + fc
    assert params == sum(p.numel() for p in model.parameters())


def test_a_grouped_convolution_multiplies_only_within_its_groups() -> None:
    model = nn.Conv2d(4, 8, 3, padding=1, groups=2)
    assert count_params_and_macs(model, torch.zeros(1, 4, 5, 5))[1] == 25 * 8 * 2 * 9


def test_moe_macs_count_top_k_experts_per_token() -> None:
    layer = MoE(8, 4, d_hidden=16, top_k=2)
    params, macs = count_params_and_macs(layer, torch.zeros(5, 8))
    # Router 5 tokens x 4 experts x 8, plus 2 experts per token x (8x16 + 16x8).
    assert macs == 5 * 4 * 8 + 5 * 2 * (8 * 16 + 16 * 8)
    assert params == 4 * 8 + 4 * (8 * 16 + 16 + 16 * 8 + 8)


class _TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.b = nn.Linear(5, 4)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(y)


def test_tuple_and_mapping_examples_are_positional_and_keyword_arguments() -> None:
    model = _TwoInputs()
    expected = (3 * 4 + 4 + 5 * 4 + 4, 2 * (3 * 4 + 5 * 4))
    assert count_params_and_macs(model, (torch.zeros(2, 3), torch.zeros(2, 5))) == expected
    assert count_params_and_macs(model, {"x": torch.zeros(2, 3), "y": torch.zeros(2, 5)}) == (
        expected
    )


def test_counting_leaves_the_training_flag_and_batch_norm_statistics_alone() -> None:
    model = tiny_cnn().train()
    before = model[1].running_mean.clone()
    positions = layer_positions(model, torch.randn(3, 1, 8, 8) + 5.0)
    assert model.training
    torch.testing.assert_close(model[1].running_mean, before)
    assert positions[model[0]] == 3 * 8 * 8 and positions[model[6]] == 3
