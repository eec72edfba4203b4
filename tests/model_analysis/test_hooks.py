"""Tests for PruningHooks: the masked network is the pruned one, and what it gathers."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from qopt.model_analysis.hooks import PruningHooks
from qopt.model_analysis.scores import magnitude_scores
from qopt.model_analysis.surgery import remove_units
from qopt.model_analysis.tracing import trace_unit_groups
from tests.model_analysis.models import tiny_cnn, tiny_moe


@pytest.mark.parametrize(
    ("build", "example"), [(tiny_cnn, torch.zeros(1, 1, 8, 8)), (tiny_moe, torch.zeros(4, 16))]
)
def test_the_masked_network_computes_what_the_pruned_one_does(build, example) -> None:
    torch.manual_seed(0)
    model = build().eval()
    groups = trace_unit_groups(model, example)
    generator = torch.Generator().manual_seed(1)
    masks = {g.name: torch.rand(g.size, generator=generator) < 0.5 for g in groups}
    for g in groups:
        masks[g.name][: g.min_keep(1)] = True
    x = torch.randn(64, *example.shape[1:])
    full = model(x)
    hooks = PruningHooks(groups, masks)
    hooks.install()
    masked = model(x)
    hooks.remove()
    torch.testing.assert_close(model(x), full)  # removed: the full network again
    assert not torch.allclose(masked, full)
    pruned = copy.deepcopy(model)
    remove_units(pruned, example, trace_unit_groups(pruned, example), masks)
    torch.testing.assert_close(pruned(x), masked)


def test_statistics_are_gathered_only_while_collecting_in_training() -> None:
    torch.manual_seed(2)
    model = tiny_cnn()
    groups = trace_unit_groups(model, torch.zeros(1, 1, 8, 8))
    masks = {g.name: torch.ones(g.size, dtype=torch.bool) for g in groups}
    hooks = PruningHooks(groups, masks, importance="fisher", calibration_samples=10)
    hooks.install()
    x = torch.randn(6, 1, 8, 8)
    model(x).sum().backward()
    assert hooks.statistics == {}  # not collecting
    hooks.start_epoch(collecting=True)
    with torch.no_grad():
        model(x)
    model.eval()
    model(x)
    assert hooks.statistics == {}  # no gradients, or evaluation mode
    model.train()
    for _ in range(3):
        model(x).pow(2).sum().backward()
    stats = hooks.statistics["3"]
    assert stats["count"] == 10 and sum(len(a) for a in stats["acts"]) == 10
    assert stats["fisher_n"] == 18  # every sample's gradient, beyond the calibration cap
    importance, redundancy, seen = hooks.local_scores(groups[1], alpha=0.5)
    np.testing.assert_allclose(importance, stats["fisher"] / 18)
    assert redundancy is not None and redundancy.shape == (8, 8) and seen == 10.0
    _, redundancy, seen = hooks.local_scores(groups[1], alpha=1.0)
    assert redundancy is None and seen == 0.0
    hooks.start_epoch(collecting=False)
    assert hooks.statistics == {}
    hooks.remove()


def test_taylor_is_accumulated_after_each_backward_and_magnitude_needs_none() -> None:
    torch.manual_seed(3)
    model = tiny_moe()
    groups = trace_unit_groups(model, torch.zeros(4, 16))
    masks = {g.name: torch.ones(g.size, dtype=torch.bool) for g in groups}
    hooks = PruningHooks(groups, masks, importance="taylor")
    hooks.install()
    hooks.start_epoch(collecting=True)
    for _ in range(2):
        model.zero_grad()
        model(torch.randn(8, 16)).sum().backward()
        hooks.after_backward()
    assert hooks.statistics["0"]["taylor_n"] == 2 and hooks.statistics["3.experts"]["taylor_n"] == 2
    assert hooks.statistics["3.experts"]["count"] == 16  # calibration tokens entering the MoE
    importance, _, _ = hooks.local_scores(groups[1], alpha=0.5)
    np.testing.assert_allclose(importance, hooks.statistics["3.experts"]["taylor"] / 2)
    hooks.remove()
    # No gradient seen (e.g. resumed at the pruning boundary): L1 magnitude instead.
    fresh = PruningHooks(groups, masks, importance="taylor", path_norm=False)
    np.testing.assert_array_equal(
        fresh.local_scores(groups[0], alpha=1.0)[0], magnitude_scores(groups[0], 1)
    )


@pytest.mark.parametrize("importance", ["taylor", "fisher"])
def test_statistics_saved_mid_epoch_continue_as_if_never_interrupted(importance, tmp_path) -> None:
    torch.manual_seed(0)
    model = tiny_cnn().train()
    example = torch.zeros(1, 1, 8, 8)
    groups = trace_unit_groups(model, example)
    masks = {g.name: torch.ones(g.size, dtype=torch.bool) for g in groups}
    batches = [torch.randn(6, 1, 8, 8) for _ in range(4)]

    def gather(hooks: PruningHooks, part: list[torch.Tensor]) -> None:
        for x in part:
            model(x).sum().backward()
            hooks.after_backward()
            model.zero_grad()

    whole = PruningHooks(groups, masks, importance=importance, calibration_samples=16)
    whole.install()
    whole.start_epoch(collecting=True)
    gather(whole, batches)
    whole.remove()

    first = PruningHooks(groups, masks, importance=importance, calibration_samples=16)
    first.install()
    first.start_epoch(collecting=True)
    gather(first, batches[:2])
    first.remove()
    torch.save(first.statistics_state(), tmp_path / "stats.pt")
    resumed = PruningHooks(groups, masks, importance=importance, calibration_samples=16)
    resumed.install()
    resumed.start_epoch(collecting=True)
    resumed.load_statistics_state(torch.load(tmp_path / "stats.pt", weights_only=True))
    gather(resumed, batches[2:])
    resumed.remove()
    for group in groups:
        expected = whole.local_scores(group, alpha=0.5)
        got = resumed.local_scores(group, alpha=0.5)
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)
        np.testing.assert_allclose(got[1], expected[1], rtol=1e-12)
        assert got[2] == expected[2] == 16.0
