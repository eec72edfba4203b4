from __future__ import annotations

import math

import pytest

from qopt.circuits import QuantumHead
from qopt.circuits.breakeven import (
    QPUEnergyModel,
    StepCost,
    break_even,
    fit_growth,
    measure_training_step,
)
from qopt.exceptions import InvalidInputError, SolverConfigurationError


def synthetic(qubits: tuple[int, ...], joules_at: float = 1e-6) -> StepCost:
    """Joules that double per qubit exactly: ``joules_at x 2^n``."""
    joules = tuple(joules_at * 2.0**n for n in qubits)
    return StepCost(qubits, joules, joules, "estimated", "synthetic", "cpu", batch=8, layers=1)


def test_the_fit_of_exact_exponential_growth_is_exact() -> None:
    fit = fit_growth([4, 6, 8, 10], [3e-5 * 2.0**n for n in (4, 6, 8, 10)])
    assert fit.slope == pytest.approx(math.log(2), rel=1e-12)
    assert fit.intercept == pytest.approx(math.log(3e-5), rel=1e-12)
    assert fit.factor_per_qubit == pytest.approx(2.0, rel=1e-12)
    assert fit.r_squared == pytest.approx(1.0) and fit.from_qubits == 8 and fit.points == 2


def test_the_fit_leaves_out_the_flat_small_counts_unless_told() -> None:
    # Fixed overhead below 8 qubits, doubling above: the default fit sees only the doubling.
    qubits = [2, 4, 6, 8, 10, 12]
    joules = [1.0, 1.0, 1.0, 2.0**8 / 2**8, 2.0**10 / 2**8, 2.0**12 / 2**8]
    assert fit_growth(qubits, joules).factor_per_qubit == pytest.approx(2.0)
    assert fit_growth(qubits, joules, from_qubits=2).factor_per_qubit < 1.8


def test_a_qpu_of_pure_job_overhead_breaks_even_where_the_simulation_reaches_it() -> None:
    # QPU joules = 1000 W x 1 s, whatever the qubits: simulation 1e-6 x 2^n reaches it at
    # n = log2(1e9).
    qpu = QPUEnergyModel(system_watts=1000.0, shot_seconds=0.0, job_overhead_seconds=1.0)
    result = break_even(synthetic((10, 12, 14)), qpu)
    assert result.qubits == pytest.approx(math.log2(1e9), abs=1e-8)


def test_the_crossing_matches_both_curves_and_the_circuit_count_of_the_head() -> None:
    qpu = QPUEnergyModel(system_watts=2e4, shot_seconds=1e-4, job_overhead_seconds=2.0, shots=500)
    result = break_even(synthetic((10, 12, 14)), qpu)
    assert result.qubits is not None
    assert result.simulation_joules(result.qubits) == pytest.approx(
        result.qpu_joules(result.qubits), rel=1e-8
    )
    for n in (3, 7):
        head = QuantumHead(4, 2, num_qubits=n, layers=1)
        assert result.circuits_at(n) == head.circuits_per_step(8) == 8 * (1 + 2 * 3 * n)


def test_the_range_spans_every_corner_of_the_inputs_uncertainty() -> None:
    qpu = QPUEnergyModel(system_watts=1000.0, shot_seconds=0.0, job_overhead_seconds=1.0)
    result = break_even(
        synthetic((10, 12, 14)),
        qpu,
        uncertainty={"system_watts": (250.0, 4000.0), "job_overhead_seconds": (0.5, 2.0)},
    )
    assert result.low == pytest.approx(math.log2(250 * 0.5 / 1e-6), abs=1e-8)
    assert result.high == pytest.approx(math.log2(4000 * 2.0 / 1e-6), abs=1e-8)
    assert result.low < result.qubits < result.high
    table = result.table()
    assert "break-even: 29.9 qubits" in table and "26.9 .. 32.9 qubits" in table


def test_a_simulation_that_does_not_grow_never_breaks_even() -> None:
    flat = StepCost((4, 6, 8), (1.0,) * 3, (1.0, 1.0, 1.0), "estimated", "x", "cpu", 8, 1)
    qpu = QPUEnergyModel(system_watts=1000.0, shot_seconds=1e-3, job_overhead_seconds=1.0)
    result = break_even(flat, qpu)
    assert result.qubits is None and "none below 200 qubits" in result.table()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"system_watts": 0.0}, "'system_watts' parameter"),
        ({"shot_seconds": -1.0}, "'shot_seconds' parameter"),
        ({"shots": 0}, "'shots' parameter"),
        ({"shot_seconds": 0.0, "job_overhead_seconds": 0.0}, "no time uses no energy"),
    ],
)
def test_bad_qpu_inputs_are_refused(options: dict[str, float], match: str) -> None:
    values = {"system_watts": 1e3, "shot_seconds": 1e-3, "job_overhead_seconds": 1.0} | options
    with pytest.raises(SolverConfigurationError, match=match):
        QPUEnergyModel(**values)  # type: ignore[arg-type]


def test_bad_uncertainty_and_measurements_are_refused() -> None:
    qpu = QPUEnergyModel(system_watts=1e3, shot_seconds=1e-3, job_overhead_seconds=1.0)
    with pytest.raises(SolverConfigurationError, match="inputs are system_watts"):
        break_even(synthetic((4, 6)), qpu, uncertainty={"watts": (1.0, 2.0)})
    with pytest.raises(SolverConfigurationError, match="low <= high"):
        break_even(synthetic((4, 6)), qpu, uncertainty={"shots": (2000, 100)})
    with pytest.raises(InvalidInputError, match="positive, finite joules"):
        fit_growth([4, 6], [1.0, 0.0])
    with pytest.raises(InvalidInputError, match=r"needs\s+two"):
        fit_growth([4, 6, 8], [1.0, 2.0, 4.0], from_qubits=8)
    with pytest.raises(SolverConfigurationError, match="at least two qubit counts"):
        measure_training_step([4, 4])


def test_a_real_measurement_meters_one_step_per_qubit_count() -> None:
    cost = measure_training_step([5, 2, 5], batch=16, layers=1, repeats=2)
    assert cost.qubits == (2, 5) and len(cost.wall_s) == len(cost.joules) == 2
    assert all(j > 0 for j in cost.joules) and all(s > 0 for s in cost.wall_s)
    assert (cost.batch, cost.layers) == (16, 1)
    assert cost.provenance in ("measured", "estimated") and cost.method
