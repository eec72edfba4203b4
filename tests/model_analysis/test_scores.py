"""Tests for the unit scores read off a traced group: folded magnitudes, path norm, Taylor,
expert redundancy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qopt.model_analysis.scores import (
    magnitude_scores,
    outgoing_norm,
    redundancy_scores,
    taylor_scores,
)
from qopt.model_analysis.tracing import trace_unit_groups
from qopt.problems.pruning import taylor_importance
from tests.model_analysis.models import tiny_cnn, tiny_moe


def test_a_batch_normalized_layer_is_scored_by_its_folded_weights() -> None:
    torch.manual_seed(0)
    model = tiny_cnn()
    with torch.no_grad():  # channel 0: the largest conv weights, but a BatchNorm gain of ~0
        model[0].weight[0] *= 10.0
        model[1].weight.uniform_(0.5, 1.5)
        model[1].weight[0] = 1e-4
        model[1].running_var.uniform_(0.5, 2.0)
    group = trace_unit_groups(model, torch.zeros(1, 1, 8, 8))[0]
    scores = magnitude_scores(group, 1)
    folded = model[0].weight.detach() * (
        model[1].weight.detach() / torch.sqrt(model[1].running_var + model[1].eps)
    ).view(-1, 1, 1, 1)
    np.testing.assert_allclose(scores, folded.abs().sum(dim=(1, 2, 3)).numpy(), rtol=1e-6)
    assert int(np.argmin(scores)) == 0
    assert int(np.argmax(model[0].weight.detach().abs().sum(dim=(1, 2, 3)))) == 0


def test_path_norm_multiplies_by_the_weights_that_read_each_unit() -> None:
    torch.manual_seed(1)
    model = tiny_cnn()
    with torch.no_grad():  # nothing reads conv 3's channel 2 (16 flattened positions)
        model[6].weight.view(12, 8, 16)[:, 2] = 0.0
    group = trace_unit_groups(model, torch.zeros(1, 1, 8, 8))[1]
    reading = model[6].weight.detach().view(12, 8, 16)
    for p in (1, 2):
        expected = (
            reading.abs().sum(dim=(0, 2)) if p == 1 else reading.pow(2).sum(dim=(0, 2)).sqrt()
        )
        np.testing.assert_allclose(outgoing_norm(group, p), expected.numpy(), rtol=1e-5)
        with_path = magnitude_scores(group, p, path_norm=True)
        assert with_path[2] == 0.0
        np.testing.assert_allclose(
            with_path, magnitude_scores(group, p) * expected.numpy(), rtol=1e-5
        )


def test_taylor_scores_come_from_the_gradients_of_the_last_backward() -> None:
    torch.manual_seed(2)
    model = tiny_moe()
    groups = trace_unit_groups(model, torch.zeros(4, 16))
    assert taylor_scores(groups[1]) is None  # no backward yet
    np.testing.assert_array_equal(taylor_scores(groups[0]), np.zeros(24))
    model(torch.randn(32, 16)).pow(2).sum().backward()
    expected = taylor_importance(
        model[0].weight, model[0].weight.grad, bias=model[0].bias, bias_grad=model[0].bias.grad
    )
    np.testing.assert_allclose(taylor_scores(groups[0]), expected)
    experts = taylor_scores(groups[1])
    weights = torch.cat(
        [
            p.detach().reshape(6, -1)
            for p in (model[3].w_in, model[3].b_in, model[3].w_out, model[3].b_out)
        ],
        dim=1,
    )
    grads = torch.cat(
        [
            p.grad.reshape(6, -1)
            for p in (model[3].w_in, model[3].b_in, model[3].w_out, model[3].b_out)
        ],
        dim=1,
    )
    np.testing.assert_allclose(experts, taylor_importance(weights, grads))


def test_experts_that_compute_the_same_function_are_redundant() -> None:
    torch.manual_seed(3)
    model = tiny_moe(num_experts=4)
    moe = model[3]
    with torch.no_grad():
        for parameter in (moe.w_in, moe.b_in, moe.w_out, moe.b_out):
            parameter[3] = parameter[1]
    group = trace_unit_groups(model, torch.zeros(4, 16))[1]
    similar = redundancy_scores(group, torch.randn(64, 8))
    assert similar.shape == (4, 4)
    assert similar[1, 3] == pytest.approx(1.0, abs=1e-5)
    assert max(similar[0, 1], similar[0, 2], similar[1, 2]) < 0.9


def test_channel_redundancy_is_the_activation_similarity() -> None:
    group = trace_unit_groups(tiny_cnn(), torch.zeros(1, 1, 8, 8))[2]
    acts = torch.randn(50, 12, 1)
    acts[:, 5] = 2.0 * acts[:, 7]
    similar = redundancy_scores(group, acts)
    assert similar[5, 7] == pytest.approx(1.0, abs=1e-5) and similar[5, 6] < 0.9
