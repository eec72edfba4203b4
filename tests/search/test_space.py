"""qopt.search.space: encoding options, constraint checks, the equal-share rule."""

from __future__ import annotations

import pytest

from qopt.encoding import CategoricalParameter, IntParameter, ParameterConstraint
from qopt.exceptions import ProblemTooLargeError, SolverConfigurationError
from qopt.search import EncodingOptions, check_constraints, share_violations


def test_encoding_options_are_checked_and_limit_the_bits() -> None:
    with pytest.raises(SolverConfigurationError, match="'encoding' parameter of me"):
        EncodingOptions(encoding="binary", owner="me")
    with pytest.raises(SolverConfigurationError, match="parameter 'x' the encoding 'gray'"):
        EncodingOptions(encodings={"x": "gray"})
    with pytest.raises(SolverConfigurationError, match="'n_bins'"):
        EncodingOptions(n_bins=1)
    options = EncodingOptions(max_bits=4)
    assert options.encode({"x": IntParameter(0, 4)}).n_bits == 4  # domain wall: 4 bits
    with pytest.raises(ProblemTooLargeError, match=r"'c' \(6 bits\)"):
        options.encode({"c": CategoricalParameter(tuple("abcdef"))})


def test_constraints_must_be_parameter_constraints() -> None:
    good = ParameterConstraint({"x": 1}, ub=2)
    assert check_constraints(None, "me") == [] and check_constraints((good,), "me") == [good]
    with pytest.raises(SolverConfigurationError, match="Got dict instead"):
        check_constraints([{"x": 1}], "me")  # type: ignore[list-item]


def test_each_unset_parameter_gets_an_equal_share_of_what_the_set_ones_leave() -> None:
    budget = ParameterConstraint({"a": 1, "b": 1, "c": 1}, ub=9)
    floor = ParameterConstraint({"a": 1}, lb=2)

    def contribution(constraint: ParameterConstraint, name: str, value: float) -> float:
        return constraint.contribution(name, value)

    # c = 3 is set: a and b share the remaining 6, so a may take up to 3 and at least 2.
    violations = share_violations("a", [0, 2, 3, 5], [budget, floor], {"c": 3}, contribution)
    assert violations.tolist() == [2.0, 0.0, 0.0, 2.0]
