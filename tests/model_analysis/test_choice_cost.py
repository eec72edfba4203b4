from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
from torch import nn

from qopt.exceptions import InvalidProblemError
from qopt.model_analysis.choice_cost import (
    CHECKS,
    build_for_counting,
    fit_choice_cost,
    model_cost,
)


def every_point(sizes: dict[str, int]) -> list[dict[str, int]]:
    names = list(sizes)
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(range(sizes[n]) for n in names))
    ]


def test_a_linear_cost_is_fitted_exactly_without_pairs() -> None:
    sizes = {"a": 4, "b": 3, "c": 2}
    unary = {"a": [0, 7, 3, 11], "b": [5, 0, 2], "c": [1, 9]}

    def cost(p: dict[str, int]) -> float:
        return 100 + sum(unary[n][p[n]] for n in sizes)

    fit = fit_choice_cost(cost, sizes)
    assert fit.exact and fit.pairs == {}
    assert all(fit.predict(p) == cost(p) for p in every_point(sizes))
    # base + single changes + one screen per pair, then the random checks
    assert fit.builds <= 1 + (3 + 2 + 1) + 3 + CHECKS


def test_only_the_interacting_pair_gets_a_table() -> None:
    sizes = {"width": 4, "depth": 3, "act": 3}
    widths, depths = [8, 16, 32, 64], [1, 2, 3]

    def cost(p: dict[str, int]) -> float:
        w, d = widths[p["width"]], depths[p["depth"]]
        return 8 * w + w + (d - 1) * (w * w + w) + 3 * w + 3 + 0 * p["act"]

    fit = fit_choice_cost(cost, sizes)
    assert fit.exact and list(fit.pairs) == [("width", "depth")]
    assert all(fit.predict(p) == cost(p) for p in every_point(sizes))


def test_a_pair_that_interacts_away_from_its_screen_is_found_by_the_checks() -> None:
    sizes = {"a": 3, "b": 3, "c": 2}

    def cost(p: dict[str, int]) -> float:  # a x b only at (1, 1), not at the corner (2, 2)
        return p["a"] + p["b"] + p["c"] + (50 if (p["a"], p["b"]) == (1, 1) else 0)

    fit = fit_choice_cost(cost, sizes, checks=40)
    assert fit.exact and ("a", "b") in fit.pairs
    assert all(fit.predict(p) == cost(p) for p in every_point(sizes))


def test_a_three_way_cost_is_not_exact_and_its_fit_is_below_every_build() -> None:
    sizes = {"c1": 3, "c2": 3, "k": 3}

    def cost(p: dict[str, int]) -> float:
        c1, c2, k = (4, 8, 16)[p["c1"]], (4, 8, 16)[p["c2"]], (1, 3, 5)[p["k"]]
        return 3 * c1 * k * k + c1 * c2 * k * k + c1 + c2

    fit = fit_choice_cost(cost, sizes)
    assert not fit.exact and fit.worst_error > 0
    assert all(
        fit.predict(dict(zip(sizes, key, strict=True))) <= value + 1e-9
        for key, value in fit.measured.items()
    )


def test_model_cost_counts_params_macs_and_flops() -> None:
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))
    model.example_input_array = torch.zeros(1, 8)
    assert model_cost(model, "params") == 46
    assert model_cost(model, "macs") == 40 and model_cost(model, "flops") == 80
    with pytest.raises(InvalidProblemError, match="Unknown model cost"):
        model_cost(model, "latency")
    del model.example_input_array
    with pytest.raises(InvalidProblemError, match="example_input_array"):
        model_cost(model, "macs")


def test_probe_builds_allocate_nothing() -> None:
    # 10^10 parameters (40 GB in float32): counted on the meta device, never allocated.
    def huge(architecture: dict[str, Any]) -> nn.Module:
        model = nn.Sequential(nn.Linear(architecture["w"], 100_000), nn.Linear(100_000, 2))
        model.example_input_array = torch.zeros(1, architecture["w"])
        return model

    assert build_for_counting(huge, {"w": 100_000}, "params") == 100_000 * 100_001 + 200_002
    assert build_for_counting(huge, {"w": 100_000}, "macs") == 100_000 * 100_000 + 200_000


def test_a_builder_that_meta_cannot_build_is_built_on_the_cpu() -> None:
    def reads_values(architecture: dict[str, Any]) -> nn.Module:
        model = nn.Linear(architecture["w"], 2)
        if float(model.weight.sum().item()) == float("inf"):  # .item() fails on meta
            raise AssertionError
        return model

    assert build_for_counting(reads_values, {"w": 5}, "params") == 12
