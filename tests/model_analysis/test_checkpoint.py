"""Tests for load_pruned: a pruned model back from its checkpoint, cut or still masked."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

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

CNN_EXAMPLE = torch.zeros(1, 1, 8, 8)
CNN_MASKS = {"0": [1, 0, 1, 1, 0, 1]}
CASES = [
    (tiny_cnn, CNN_EXAMPLE, {**CNN_MASKS, "6": [0, 1] * 6}),
    (tiny_moe, torch.zeros(4, 16), {"0": [1, 0] * 12, "3.experts": [1, 1, 0, 1, 0, 0]}),
]


def _trained(build: Any) -> nn.Module:
    """A model with weights unlike a fresh build's."""
    torch.manual_seed(0)
    model = build()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model.eval()


def _checkpoint(model: nn.Module, masks: dict, example: Any = CNN_EXAMPLE) -> dict[str, Any]:
    return {"state_dict": model.state_dict(), PRUNING_KEY: pruning_record(masks, example)}


def _assert_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    assert model.state_dict().keys() == state.keys()
    for name, value in state.items():
        assert torch.equal(model.state_dict()[name], value), name


def _hooks(groups: Any, masks: dict) -> PruningHooks:
    """Hooks masking ``masks`` (a group left out keeps all its units)."""
    return PruningHooks(
        groups.unit_groups,
        {g.name: torch.tensor(masks.get(g.name, [1] * g.size), dtype=torch.bool) for g in groups},
    )


@pytest.mark.parametrize(("build", "example", "masks"), CASES)
def test_a_cut_model_comes_back_with_its_weights(build, example, masks, tmp_path: Path) -> None:
    trained = _trained(build)
    model_pruning_groups(trained, example).prune(trained, masks)
    torch.save(_checkpoint(trained, masks, example), tmp_path / "cut.pt")
    loaded = load_pruned(build(), tmp_path / "cut.pt")
    _assert_weights(loaded, trained.state_dict())
    x = torch.randn(16, *example.shape[1:])
    torch.testing.assert_close(loaded.eval()(x), trained(x), rtol=0, atol=0)


@pytest.mark.parametrize(("build", "example", "masks"), CASES)
def test_a_masked_model_comes_back_cut_computing_what_the_masked_one_did(
    build, example, masks
) -> None:
    trained = _trained(build)
    groups = model_pruning_groups(trained, example)
    x = torch.randn(16, *example.shape[1:])
    hooks = _hooks(groups, masks)
    hooks.install()
    masked = trained(x)
    hooks.remove()
    assert not torch.allclose(masked, trained(x))  # the masks matter
    with torch.no_grad():  # as at inference time: tracing turns autograd on for itself
        loaded = load_pruned(build(), _checkpoint(trained, masks, example)).eval()
    counts = {name: sum(mask) for name, mask in masks.items()}
    assert count_params_and_macs(loaded, example)[0] == groups.cost(counts, "params")
    torch.testing.assert_close(loaded(x), masked)
    # The kept units' weights are the checkpoint's: cutting the trained model gives them too.
    expected = copy.deepcopy(trained)
    groups.prune(expected, masks)
    _assert_weights(loaded, expected.state_dict())


def test_a_checkpoint_before_any_pruning_or_without_a_record_loads_as_is() -> None:
    trained = _trained(tiny_cnn)
    masks = {g.name: [True] * g.size for g in model_pruning_groups(trained, CNN_EXAMPLE)}
    _assert_weights(load_pruned(tiny_cnn(), _checkpoint(trained, masks)), trained.state_dict())
    # No record: a model never pruned.
    loaded = load_pruned(tiny_cnn(), {"state_dict": trained.state_dict()})
    _assert_weights(loaded, trained.state_dict())


def test_as_on_load_checkpoint_it_hands_the_cut_weights_on() -> None:
    # Lightning loads checkpoint["state_dict"] into the model after on_load_checkpoint.
    checkpoint = _checkpoint(_trained(tiny_cnn), CNN_MASKS)
    model = load_pruned(tiny_cnn(), checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    assert model[0].out_channels == 4
    _assert_weights(model, checkpoint["state_dict"])


def test_a_model_being_pruned_keeps_its_size_as_a_resumed_loop_needs() -> None:
    trained = _trained(tiny_cnn)
    checkpoint = _checkpoint(trained, CNN_MASKS)
    model = tiny_cnn()
    groups = model_pruning_groups(model, CNN_EXAMPLE)
    hooks = _hooks(groups, {})
    hooks.install()
    load_pruned(model, checkpoint)
    assert model[0].out_channels == 6
    _assert_weights(model, trained.state_dict())
    groups.prune(trained, CNN_MASKS)  # a cut model's checkpoint cannot resume pruning
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
    trained = tiny_cnn()
    with pytest.raises(InvalidInputError, match="with a 'state_dict'"):
        load_pruned(tiny_cnn(), {"weights": trained.state_dict()})
    model_pruning_groups(trained, CNN_EXAMPLE).prune(trained, CNN_MASKS)
    with pytest.raises(InvalidInputError, match=r"(?s)no 'qopt_pruning' record.*size mismatch"):
        load_pruned(tiny_cnn(), {"state_dict": trained.state_dict()})
    checkpoint = _checkpoint(trained, CNN_MASKS)
    other = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 64, 3)
    )
    with pytest.raises(InvalidInputError, match=r"(?s)do not fit Sequential.*before pruning"):
        load_pruned(other, checkpoint)
    with pytest.raises(InvalidInputError, match=r"(?s)must have shape.*not one already cut"):
        load_pruned(trained, checkpoint)  # the model is cut already
    checkpoint[PRUNING_KEY]["masks"]["fc"] = [True]
    with pytest.raises(InvalidInputError, match=r"(?s)prunes groups \['fc'\].*before pruning"):
        load_pruned(tiny_cnn(), checkpoint)
