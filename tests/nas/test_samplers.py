"""qopt.nas._samplers: the QUBO architecture sampler on the search core, and its options."""

from __future__ import annotations

import optuna
import pytest

from qopt.exceptions import SolverConfigurationError
from qopt.nas import nas_bench_201_space
from qopt.nas._samplers import ArchitectureCodec, QuboArchitectureSampler, make_sampler


def test_the_qubo_sampler_encodes_the_space_with_its_budget_and_no_optuna_detour() -> None:
    space = nas_bench_201_space(max_mparams=0.5)
    sampler, codec = make_sampler("qubo", space, seed=0)
    assert isinstance(sampler, QuboArchitectureSampler)
    encoded = sampler.space
    assert list(encoded.parameters) == sorted(space.choices)
    assert [c.label for c in encoded.constraints] == ["budget params"]
    # Every point the encoding calls feasible is within the real budget (a linear budget).
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial(codec.params_of(space.random_architecture(sampler.engine.rng)))
    for _ in range(12):
        trial = study.ask()
        arch = codec.suggest(trial)
        assert space.within_budget(arch)
        study.tell(trial, float(sum(space.positions(arch).values())))
    phases = [t.system_attrs.get("qopt:phase") for t in study.trials]
    assert phases[0] is None and "start" in phases and "model" in phases
    keys = [tuple(t.params.values()) for t in study.trials]
    assert len(set(keys)) == len(keys)


def test_options_are_checked_at_construction() -> None:
    codec = ArchitectureCodec(nas_bench_201_space())
    with pytest.raises(SolverConfigurationError, match=r"unknown option\(s\) \['trust_radius'\]"):
        QuboArchitectureSampler(codec, trust_radius=2)
    with pytest.raises(SolverConfigurationError, match="unknown solver_options"):
        QuboArchitectureSampler(codec, solver_options={"sweeps": 3})
    with pytest.raises(SolverConfigurationError, match="'trust_region'"):
        make_sampler("qubo", codec.space, seed=0, options={"trust_region": 0})
