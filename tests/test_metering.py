from __future__ import annotations

import dimod
import pytest

from qopt import metering
from qopt.exceptions import NoSolveRecordError, NotReadyError, SolverConfigurationError
from qopt.metering import Meter, SolveRecord, record_of
from qopt.solvers import MeteredComposite, SimulatedAnnealingSolver, get_solver


def test_meter_estimates_cpu_energy_with_the_model_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metering, "_read_rapl_uj", lambda: None)
    monkeypatch.setenv("QOPT_CPU_WATTS_PER_CORE", "20")
    with Meter() as meter:
        sum(i * i for i in range(200_000))
    reading = meter.reading
    assert reading.wall_s > 0 and reading.cpu_s > 0
    assert reading.energy.provenance == "estimated"
    assert reading.energy.joules == pytest.approx(20 * reading.cpu_s)
    assert "20 W per busy core" in reading.energy.method


def test_meter_reads_rapl_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    counters = iter([[1_000_000, 5_000_000], [3_500_000, 5_500_000]])
    monkeypatch.setattr(metering, "_read_rapl_uj", lambda: next(counters))
    with Meter() as meter:
        pass
    assert meter.reading.energy.provenance == "measured"
    assert meter.reading.energy.joules == pytest.approx(3.0)
    assert "RAPL" in meter.reading.energy.method


def test_remote_work_is_not_measured() -> None:
    with Meter(remote=True) as meter:
        pass
    assert meter.reading.energy.provenance == "not measured"
    assert meter.reading.energy.joules is None


def test_bad_watts_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metering, "_read_rapl_uj", lambda: None)
    for bad in ("-3", "inf", "ten"):
        monkeypatch.setenv("QOPT_CPU_WATTS_PER_CORE", bad)
        with (
            pytest.raises(SolverConfigurationError, match=r"QOPT_CPU_WATTS_PER_CORE .* positive"),
            Meter(),
        ):
            pass


def test_reading_before_exit_is_an_error() -> None:
    with pytest.raises(NotReadyError, match="after the 'with' block"):
        _ = Meter().reading


def test_metered_solve_keeps_upstream_timing_and_adds_a_serializable_record() -> None:
    bqm = dimod.generators.ran_r(1, 20, seed=0)
    sampleset = get_solver("sa", seed=1).sample(bqm)
    record = record_of(sampleset)
    assert record.num_variables == 20
    assert {"preprocessing_ns", "sampling_ns", "postprocessing_ns"} <= set(record.timing)
    assert set(sampleset.info["timing"]) == set(record.timing)
    assert record.reportable and not record.mock
    assert SolveRecord.from_dict(record.to_dict()) == record
    dimod.SampleSet.from_serializable(sampleset.to_serializable())  # info stays serializable


def test_mock_children_are_never_reportable() -> None:
    child = SimulatedAnnealingSolver(seed=0)
    child.is_mock = True  # type: ignore[attr-defined]
    sampleset = MeteredComposite(child, name="mocked").sample(dimod.generators.ran_r(1, 5, seed=0))
    record = record_of(sampleset)
    assert record.mock and not record.reportable


def test_record_of_a_plain_sampleset_says_how_to_get_one() -> None:
    sampleset = dimod.ExactSolver().sample(dimod.BinaryQuadraticModel({"a": 1}, {}, 0, "BINARY"))
    with pytest.raises(NoSolveRecordError, match="get_solver") as caught:
        record_of(sampleset)
    assert isinstance(caught.value, KeyError) and str(caught.value).startswith("This SampleSet")
