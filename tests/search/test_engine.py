"""The proposal engine: phases, the trust-region solve and its fallback, solver settings."""

from __future__ import annotations

import itertools
from typing import Any

import dimod
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qopt.encoding import (
    CategoricalParameter,
    DenseEnergy,
    IntParameter,
    ParameterConstraint,
    SpaceEncoding,
)
from qopt.exceptions import SolverConfigurationError, UnknownSolverError
from qopt.pipeline import solve
from qopt.search import HammingBall, History, ProposalEngine, RepairedReads, point_key


class FixedSampler(dimod.Sampler):
    """Answers every BQM with one sample: the given bits, slack bits at 0."""

    def __init__(self, bits: np.ndarray) -> None:
        self.bits = bits

    @property
    def parameters(self) -> dict[str, Any]:
        return {}

    @property
    def properties(self) -> dict[str, Any]:
        return {}

    def sample(self, bqm: dimod.BinaryQuadraticModel, **kwargs: Any) -> dimod.SampleSet:
        sample = {v: int(self.bits[v]) if isinstance(v, int) else 0 for v in bqm.variables}
        return dimod.SampleSet.from_samples_bqm(sample, bqm)


def ball_distance(space: SpaceEncoding, a: dict[str, int], b: dict[str, int]) -> int:
    return sum(
        int(a[n] != b[n]) if p.scheme == "one-hot" else abs(a[n] - b[n])
        for n, p in space.parameters.items()
    )


def test_trust_region_enumerates_the_ball_when_no_read_is_untried() -> None:
    space = SpaceEncoding(
        {"op": CategoricalParameter(("a", "b", "c")), "w": IntParameter(0, 3)},
        constraints=[ParameterConstraint({"w": 1}, ub=2)],
    )
    rng = np.random.default_rng(0)
    bqm = dimod.BinaryQuadraticModel(
        {i: float(rng.normal()) for i in range(space.n_bits)}, {(0, 3): 1.5}, 0.0, "BINARY"
    )
    energy = DenseEnergy(bqm, space.n_bits)
    centre = {"op": 0, "w": 1}
    ball = HammingBall(space, centre, 2)
    anchor = ball.anchor(energy)
    assert anchor is not None
    # Every read is the centre; its repair (the anchor) and the centre are both tried.
    taken = {tuple(centre.values()), tuple(anchor.values())}
    engine = ProposalEngine(solver=FixedSampler(space.encode_indices(centre)), seed=0)
    point, source, _, attrs = engine.solve_ball(space, bqm, energy, ball, taken)
    assert source == "trust-region-enumerated" and attrs["trust_fallback"] is True
    # The fallback is the exact minimum over the untried feasible ball points.
    options = [
        {"op": o, "w": w}
        for o in range(3)
        for w in range(3)  # w <= 2: the budget
        if 1 <= ball_distance(space, {"op": o, "w": w}, centre) <= 2 and (o, w) not in taken
    ]
    best = min(options, key=lambda q: energy.of(space.encode_indices(q)))
    assert point == best
    # With every ball point tried, there is nothing to propose: the caller solves globally.
    everything = {(o, w) for o in range(3) for w in range(4)}
    assert engine.solve_ball(space, bqm, energy, ball, everything)[0] is None


def test_named_solvers_get_right_sized_sweeps_unless_told() -> None:
    def sweeps(engine: ProposalEngine) -> Any:
        return engine.solver().children[0].num_sweeps

    assert sweeps(ProposalEngine(solver="sa")) == 300
    assert sweeps(ProposalEngine(solver="sa", solver_options={"num_sweeps": 50})) == 50


def test_solver_and_options_are_checked_at_construction() -> None:
    with pytest.raises(UnknownSolverError, match="Known solvers"):
        ProposalEngine(solver="annealer9000")
    with pytest.raises(SolverConfigurationError, match=r"unknown solver_options \['num_sweep'\]"):
        ProposalEngine(solver="sa", solver_options={"num_sweep": 10})
    with pytest.raises(SolverConfigurationError, match="'surrogate' parameter of ProposalEngine"):
        ProposalEngine(surrogate="gp")
    with pytest.raises(SolverConfigurationError, match="FactorizationMachine does not take"):
        ProposalEngine(surrogate_options={"n_burn_in": 3})
    with pytest.raises(SolverConfigurationError, match="trust_region_method"):
        ProposalEngine(trust_region=2, trust_region_method="exhaustive")


def test_phases_start_then_model_and_never_a_repeat() -> None:
    space = SpaceEncoding({"x": IntParameter(0, 5), "c": CategoricalParameter(("a", "b", "c"))})
    engine = ProposalEngine(seed=0, n_startup_trials=3, surrogate_options={"n_epochs": 30})
    history = History()
    phases = []
    for _ in range(12):
        proposal = engine.propose(space, history, signs=[1.0])
        assert point_key(proposal.indices) not in history.taken()
        phases.append(proposal.info["phase"])
        point = proposal.indices
        history.add_complete(point, space.encode_indices(point), (float(point["x"]),))
    assert phases[:3] == ["start"] * 3 and set(phases[3:]) == {"model"}


def test_pending_points_are_not_proposed_again() -> None:
    space = SpaceEncoding({"x": IntParameter(0, 3)})
    engine = ProposalEngine(seed=0, n_startup_trials=0, surrogate_options={"n_epochs": 30})
    history = History()
    for _ in range(4):
        point = engine.propose(space, history, signs=[1.0]).indices
        history.add_pending(point, space.encode_indices(point))
    assert sorted(point_key(p) for p in history.pending) == [(0,), (1,), (2,), (3,)]


def test_reads_are_ranked_by_the_pipeline_repair_not_repaired_again() -> None:
    space = SpaceEncoding({"x": IntParameter(0, 3), "c": CategoricalParameter(("a", "b", "c"))})
    calls: list[bytes] = []

    def fix(bits: np.ndarray) -> np.ndarray:
        calls.append(bits.tobytes())
        return space.repair(bits)

    repaired = RepairedReads(space, fix)
    objective = dimod.BinaryQuadraticModel({i: -1.0 for i in range(space.n_bits)}, {}, 0, "BINARY")
    solution = solve(space.formulation(objective, repair=repaired, penalty=0.5), "exact")
    assert space.is_valid(list(solution.sample.values()))
    n_repaired = len(calls)
    assert n_repaired == len(set(calls)) > 0  # each broken read once, by the pipeline
    rows = np.asarray(solution.sampleset.record.sample, dtype=np.int8)[:, : space.n_bits]
    for row in rows:
        fixed = repaired.of(row)
        assert space.feasible_rows(fixed[None, :])[0]
    assert len(calls) == n_repaired  # ranking the reads repaired nothing again


@settings(max_examples=8, deadline=None)
@given(
    sizes=st.lists(st.integers(2, 4), min_size=2, max_size=3),
    budget=st.integers(2, 6),
    trust_region=st.sampled_from([None, 1, 2]),
    seed=st.integers(0, 100),
)
def test_every_proposal_is_new_and_within_the_known_constraints(
    sizes: list[int], budget: int, trust_region: int | None, seed: int
) -> None:
    parameters: dict[str, Any] = {f"p{i}": IntParameter(0, n - 1) for i, n in enumerate(sizes)}
    parameters["op"] = CategoricalParameter(("a", "b", "c"))
    cost = ParameterConstraint(
        {**{n: 1 for n in parameters if n != "op"}, "op": {"a": 1}}, ub=budget
    )
    space = SpaceEncoding(parameters, constraints=[cost])
    engine = ProposalEngine(
        seed=seed,
        n_startup_trials=3,
        trust_region=trust_region,
        surrogate_options={"n_epochs": 20, "n_factors": 2},
        solver_options={"num_reads": 4, "num_sweeps": 50},
    )
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=space.n_bits)
    names = list(space.parameters)
    feasible = {
        key
        for key in itertools.product(*(range(p.n_values) for p in space.parameters.values()))
        if space.constraint_violation(dict(zip(names, key, strict=True))) <= 1e-9
    }
    history = History()
    for _ in range(10):
        point = engine.propose(space, history, signs=[1.0]).indices
        assert space.constraint_violation(point) <= 1e-9
        assert point_key(point) not in history.taken() or feasible <= history.taken()
        row = space.encode_indices(point)
        history.add_complete(point, row, (float(weights @ row),))
