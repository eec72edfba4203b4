"""Hostile Python API calls that once slipped through: each is now a clear QoptError.

Found by ``benchmarks/reliability/attack.py`` (its ``api`` class); the whole attack is the
wider net, these keep its findings fixed.
"""

from __future__ import annotations

import math

import dimod
import pytest

from qopt.encoding import ParameterConstraint
from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.solvers import FallbackComposite, SteepestDescentSolver, get_solver


def test_a_bad_beta_range_at_sample_time_is_a_configuration_error() -> None:
    bqm = dimod.BinaryQuadraticModel({0: -1.0, 1: 1.0}, {(0, 1): 2.0}, 0.0, "BINARY")
    solver = get_solver("sa", seed=1)
    for bad in ((0, -1), (1.0,), "hot", (math.nan, 1.0)):
        with pytest.raises(SolverConfigurationError, match="beta_range"):
            solver.sample(bqm, beta_range=bad)
    assert solver.sample(bqm, beta_range=(0.1, 2.0)).first.energy == -1.0


def test_a_fallback_composite_of_something_else_than_samplers_is_refused() -> None:
    with pytest.raises(SolverConfigurationError, match=r"'child' parameter .* dimod.Sampler"):
        FallbackComposite("x", SteepestDescentSolver(), name="x", fallback_name="steepest")  # type: ignore[arg-type]
    with pytest.raises(SolverConfigurationError, match="'fallback' parameter"):
        FallbackComposite(SteepestDescentSolver(), None, name="a", fallback_name="b")  # type: ignore[arg-type]


@pytest.mark.parametrize("bound", ["lb", "ub"])
def test_a_constraint_bound_that_is_nan_is_refused(bound: str) -> None:
    # NaN compares false with everything: the constraint would silently never bind.
    with pytest.raises(InvalidProblemError, match=f"{bound}=nan"):
        ParameterConstraint({"width": 1.0}, **{bound: math.nan})
    assert ParameterConstraint({"width": 1.0}, ub=math.inf).ub == math.inf
