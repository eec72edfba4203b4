"""Tests for load_pruned: a pruned model back from its checkpoint, cut or still masked."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from qopt.exceptions import InvalidInputError
from qopt.model_analysis import (
    PRUNING_KEY,
    PruningHooks,
    count_params_and_macs,
    load_pruned,
    model_pruning_groups,
    pruning_record,
)
from tests.model_analysis.models import tiny_cnn, tiny_moe

CASES = [
    (tiny_cnn, torch.zeros(1, 1, 8, 8), {"0": [1, 0, 1, 1, 0, 1], "6": [0, 1] * 6}),
    (tiny_moe, torch.zeros(4, 16), {"0": [1, 0] * 12, "3.experts": [1, 1, 0, 1, 0, 0]}),
]


def _trained(build):
    """A model with weights unlike a fresh build's, and its masks as tensors."""
    torch.manual_seed(0)
    model = build()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model.eval()


def _bools(groups, masks):
    """Every group's mask as a boolean tensor (a group left out keeps all its units)."""
    return {
        g.name: torch.tensor(masks.get(g.name, [True] * g.size), dtype=torch.bool) for g in groups
    }


@pytest.mark.parametrize(("build", "example", "masks"), CASES)
def test_a_cut_model_comes_back_with_its_weights(build, example, masks, tmp_path: Path) -> None:
    trained = _trained(build)
    model_pruning_groups(trained, example).prune(trained, masks)
    path = tmp_path / "cut.pt"
    torch.save(
        {"state_dict": trained.state_dict(), PRUNING_KEY: pruning_record(masks, example)}, path
    )
    loaded = load_pruned(build(), path)
    assert {k: v.shape for k, v in loaded.state_dict().items()} == {
        k: v.shape for k, v in trained.state_dict().items()
    }
    for name, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    x = torch.randn(16, *example.shape[1:])
    torch.testing.assert_close(loaded.eval()(x), trained(x), rtol=0, atol=0)


@pytest.mark.parametrize(("build", "example", "masks"), CASES)
def test_a_masked_model_comes_back_cut_computing_what_the_masked_one_did(
    build, example, masks
) -> None:
    trained = _trained(build)
    groups = model_pruning_groups(trained, example)
    x = torch.randn(16, *example.shape[1:])
    hooks = PruningHooks(groups.unit_groups, _bools(groups, masks))
    hooks.install()
    masked = trained(x)
    hooks.remove()
    assert not torch.allclose(masked, trained(x))  # the masks matter
    checkpoint = {"state_dict": trained.state_dict(), PRUNING_KEY: pruning_record(masks, example)}
    with torch.no_grad():  # as at inference time: tracing turns autograd on for itself
        loaded = load_pruned(build(), checkpoint).eval()
    counts = {name: sum(mask) for name, mask in masks.items()}
    assert count_params_and_macs(loaded, example)[0] == groups.cost(counts, "params")
    torch.testing.assert_close(loaded(x), masked)
    # The kept units' weights are the checkpoint's: cutting the trained model gives them too.
    expected = copy.deepcopy(trained)
    groups.prune(expected, masks)
    for name, value in expected.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_a_checkpoint_before_any_pruning_loads_as_is() -> None:
    trained = _trained(tiny_cnn)
    example = torch.zeros(1, 1, 8, 8)
    masks = {g.name: [True] * g.size for g in model_pruning_groups(trained, example)}
    checkpoint = {"state_dict": trained.state_dict(), PRUNING_KEY: pruning_record(masks, example)}
    loaded = load_pruned(tiny_cnn(), checkpoint)
    for name, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_a_checkpoint_without_a_record_is_of_a_model_never_pruned() -> None:
    trained = _trained(tiny_cnn)
    loaded = load_pruned(tiny_cnn(), {"state_dict": trained.state_dict()})
    for name, value in trained.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name


def test_as_on_load_checkpoint_it_hands_the_cut_weights_on() -> None:
    # Lightning loads checkpoint["state_dict"] into the model after on_load_checkpoint.
    example = torch.zeros(1, 1, 8, 8)
    trained = _trained(tiny_cnn)
    masks = {"0": [1, 0, 1, 1, 0, 1]}
    checkpoint = {"state_dict": trained.state_dict(), PRUNING_KEY: pruning_record(masks, example)}
    model = load_pruned(tiny_cnn(), checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    assert model[0].out_channels == 4
    for name, value in checkpoint["state_dict"].items():
        assert torch.equal(model.state_dict()[name], value), name


def test_a_model_being_pruned_keeps_its_size_as_a_resumed_loop_needs() -> None:
    example = torch.zeros(1, 1, 8, 8)
    trained = _trained(tiny_cnn)
    masks = {"0": [1, 0, 1, 1, 0, 1]}
    checkpoint = {"state_dict": trained.state_dict(), PRUNING_KEY: pruning_record(masks, example)}
    model = tiny_cnn()
    groups = model_pruning_groups(model, example)
    hooks = PruningHooks(groups.unit_groups, _bools(groups, {}))
    hooks.install()
    load_pruned(model, checkpoint)
    assert model[0].out_channels == 6
    for name, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    groups.prune(trained, masks)  # a cut model's checkpoint cannot resume pruning
    checkpoint["state_dict"] = trained.state_dict()
    with pytest.raises(InvalidInputError, match=r"(?s)is being pruned.*without the pruning"):
        load_pruned(model, checkpoint)
    hooks.remove()
    assert load_pruned(model, checkpoint)[0].out_channels == 4


def test_the_record_is_plain_data_that_loads_with_weights_only(tmp_path: Path) -> None:
    example = {"x": torch.ones(1, 4, requires_grad=True)}
    record = pruning_record({"a": torch.tensor([True, False])}, example, layers=("fc",))
    torch.save(record, tmp_path / "record.pt")
    loaded = torch.load(tmp_path / "record.pt", weights_only=True)
    assert loaded["masks"] == {"a": [True, False]} and loaded["layers"] == ["fc"]
    assert torch.equal(loaded["example_input"]["x"], torch.ones(1, 4))


def test_errors_say_what_is_missing_and_what_to_do() -> None:
    example = torch.zeros(1, 1, 8, 8)
    trained = tiny_cnn()
    with pytest.raises(InvalidInputError, match="with a 'state_dict'"):
        load_pruned(tiny_cnn(), {"weights": trained.state_dict()})
    masks = {"0": [1, 0, 1, 1, 0, 1]}
    model_pruning_groups(trained, example).prune(trained, masks)
    with pytest.raises(InvalidInputError, match=r"(?s)no 'qopt_pruning' record.*size mismatch"):
        load_pruned(tiny_cnn(), {"state_dict": trained.state_dict()})
    checkpoint = {"state_dict": trained.state_dict(), PRUNING_KEY: pruning_record(masks, example)}
    other = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 64, 3)
    )
    with pytest.raises(
        InvalidInputError, match=r"(?s)do not fit Sequential.*same class and arguments"
    ):
        load_pruned(other, checkpoint)
    checkpoint[PRUNING_KEY]["masks"]["fc"] = [True]
    with pytest.raises(InvalidInputError, match=r"(?s)prunes groups \['fc'\].*before pruning"):
        load_pruned(tiny_cnn(), checkpoint)
