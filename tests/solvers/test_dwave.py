"""Tests for the D-Wave backends, fully offline.

Every test runs with no Leap configuration visible (no DWAVE_* variables, DWAVE_CONFIG_FILE
pointing at a file that does not exist) and with the cloud client and sockets booby-trapped,
so a test that tried the network would fail instead of waiting for a timeout. The QPU path is
exercised against Ocean's MockDWaveSampler, the hybrid path against Ocean's
MockLeapHybridSolver behind a fake cloud client.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import unittest
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import dimod
import dimod.testing
import pytest
from dwave.cloud.client import Client
from dwave.cloud.exceptions import RequestTimeout, SolverAuthenticationError
from dwave.system import LeapHybridSampler
from dwave.system.testing import MockDWaveSampler, MockLeapHybridSolver

import qopt.solvers.dwave as dwave_module
from qopt.exceptions import ProblemTooLargeError, SolverConfigurationError, SolverUnavailableError
from qopt.metering import record_of
from qopt.solvers import QoptFallbackWarning, get_solver, solver_status
from qopt.solvers.dwave import DWaveSolver, LeapHybridSolver, leap_status

_DWAVE_ENV = (
    "DWAVE_API_TOKEN",
    "DWAVE_API_CLIENT",
    "DWAVE_API_ENDPOINT",
    "DWAVE_API_REGION",
    "DWAVE_API_SOLVER",
    "DWAVE_API_PROXY",
    "DWAVE_API_HEADERS",
    "DWAVE_PROFILE",
    "DWAVE_CONFIG_FILE",
)

# The mock's fixed timing table, as dwave-system 1.36 ships it (microseconds).
MOCK_QPU_ACCESS_US = 8550.28


class NetworkAttempted(BaseException):
    """Raised by the booby traps; a BaseException so no ``except Exception`` can hide it."""


def _refuse_network(*args: Any, **kwargs: Any) -> Any:
    raise NetworkAttempted("a test attempted to reach the network")


@pytest.fixture(autouse=True)
def no_leap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Hide any real Leap configuration and forbid network access; return the missing path."""
    for name in _DWAVE_ENV:
        monkeypatch.delenv(name, raising=False)
    missing = tmp_path / "nowhere" / "dwave.conf"
    monkeypatch.setenv("DWAVE_CONFIG_FILE", str(missing))
    monkeypatch.setattr(Client, "from_config", _refuse_network)
    monkeypatch.setattr(socket.socket, "connect", _refuse_network)
    return missing


def _config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "dwave.conf"
    path.write_text(text)
    return path


def _bqm() -> dimod.BinaryQuadraticModel:
    # Frustrated triangle plus fields: a unique ground state, and a triangle needs a chain
    # on Chimera (bipartite), so embedding is exercised for real.
    return dimod.BinaryQuadraticModel(
        {"a": -1.0, "b": 0.5, "c": 0.25},
        {("a", "b"): 1.0, ("b", "c"): 1.0, ("a", "c"): 1.0},
        0,
        "SPIN",
    )


def _ground_energy(bqm: dimod.BinaryQuadraticModel) -> float:
    return float(dimod.ExactSolver().sample(bqm).first.energy)


# --- import hygiene ------------------------------------------------------------------------


def test_import_qopt_solvers_does_not_import_dwave_system() -> None:
    code = (
        "import sys, qopt, qopt.solvers; "
        "bad = [m for m in sys.modules if m.startswith(('dwave.system', 'dwave.cloud'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- conformance ---------------------------------------------------------------------------

_MOCK_QPU = MockDWaveSampler(topology_type="pegasus")


def _mock_dwave_solver() -> DWaveSolver:
    return DWaveSolver(sampler=_MOCK_QPU, num_reads=10)


@dimod.testing.load_sampler_bqm_tests(_mock_dwave_solver)
class TestDWaveSolverConformance(unittest.TestCase):
    def test_api(self) -> None:
        dimod.testing.assert_sampler_api(_mock_dwave_solver())


class _FakeLeapClient:
    """Stands in for dwave.cloud's hybrid client: hands out a given mock solver, no network."""

    def __init__(self, solver: Any, config: dict[str, Any]) -> None:
        self.solver = solver
        self.config = config
        self.closed = False

    def get_solver(self) -> Any:
        return self.solver

    def close(self) -> None:
        self.closed = True


@contextmanager
def _fake_leap(solver: Any) -> Iterator[list[_FakeLeapClient]]:
    clients: list[_FakeLeapClient] = []

    def from_config(**config: Any) -> _FakeLeapClient:
        clients.append(_FakeLeapClient(solver, config))
        return clients[-1]

    original = Client.__dict__["from_config"]
    Client.from_config = from_config
    try:
        yield clients
    finally:
        Client.from_config = original


def _mock_hybrid_solver() -> LeapHybridSolver:
    with _fake_leap(MockLeapHybridSolver()):
        return LeapHybridSolver(sampler=LeapHybridSampler(token="fake"))


@dimod.testing.load_sampler_bqm_tests(_mock_hybrid_solver)
class TestLeapHybridSolverConformance(unittest.TestCase):
    """The real LeapHybridSampler code path, against Ocean's mock hybrid solver."""

    def test_api(self) -> None:
        dimod.testing.assert_sampler_api(_mock_hybrid_solver())
        dimod.testing.assert_sampler_api(LeapHybridSolver())


# --- the QPU path on the mock --------------------------------------------------------------


def test_mock_through_get_solver_end_to_end() -> None:
    bqm = _bqm()
    solver = get_solver("dwave", sampler=MockDWaveSampler(topology_type="pegasus"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", QoptFallbackWarning)
        sampleset = solver.sample(bqm)
    assert sampleset.first.energy == pytest.approx(_ground_energy(bqm))
    dimod.testing.assert_sampleset_energies(sampleset, bqm)
    record = record_of(sampleset)
    assert record.mock is True
    assert record.reportable is False
    assert record.solver == record.solved_by == "dwave"
    assert record.fallback is None
    assert record.qpu_access_s == pytest.approx(MOCK_QPU_ACCESS_US / 1e6)


def test_qpu_timing_passes_through_untouched() -> None:
    bqm = _bqm()
    mock = MockDWaveSampler(topology_type="pegasus")
    direct = mock.sample(dimod.BinaryQuadraticModel({30: 1.0}, {}, 0, "SPIN"), num_reads=1)
    sampleset = DWaveSolver(sampler=mock, num_reads=5).sample(bqm)
    assert sampleset.info["timing"] == direct.info["timing"]
    assert record_of(get_solver("dwave", sampler=mock).sample(bqm)).timing == direct.info["timing"]


def test_embedding_summary_records_chains_and_breaks() -> None:
    chimera = MockDWaveSampler(topology_type="chimera", topology_shape=[2, 2, 4])
    sampleset = DWaveSolver(sampler=chimera, num_reads=20, chain_strength=7.5).sample(_bqm())
    summary = sampleset.info["embedding_summary"]
    # A triangle cannot embed natively in bipartite Chimera: some variable needs a chain.
    assert summary["max_chain_length"] >= 2
    assert summary["num_qubits"] >= 4
    assert summary["chain_strength"] == 7.5
    assert 0.0 <= summary["chain_break_fraction"] <= 1.0
    assert sampleset.info["embedding_context"]["chain_strength"] == 7.5

    default = DWaveSolver(sampler=chimera).sample(_bqm()).info["embedding_summary"]
    assert default["chain_strength"] is not None and default["chain_strength"] > 0


def test_num_reads_reaches_the_qpu() -> None:
    class CountingMock(MockDWaveSampler):
        seen: ClassVar[list[dict[str, Any]]] = []

        def sample(self, bqm: Any, **kwargs: Any) -> Any:
            self.seen.append(kwargs)
            return super().sample(bqm, **kwargs)

    mock = CountingMock(topology_type="pegasus")
    DWaveSolver(sampler=mock, num_reads=7).sample(_bqm())
    DWaveSolver(sampler=mock, num_reads=7).sample(_bqm(), num_reads=3)
    assert [call["num_reads"] for call in CountingMock.seen] == [7, 3]
    assert "annealing_time" not in CountingMock.seen[0]  # unset options are not sent


def test_empty_bqm_is_answered_locally_without_a_token() -> None:
    empty = dimod.BinaryQuadraticModel("BINARY")
    for solver in (DWaveSolver(), LeapHybridSolver()):
        sampleset = solver.sample(empty)
        assert len(sampleset) == 0 and sampleset.vartype is dimod.BINARY
        assert not solver.connected


def test_qpu_ranges_are_checked_and_raised_not_fallen_back() -> None:
    mock = MockDWaveSampler(topology_type="pegasus")  # annealing_time_range [0.5, 2000]
    with pytest.raises(SolverConfigurationError, match=r"'annealing_time'.*\[0\.5, 2000\] µs"):
        DWaveSolver(sampler=mock, annealing_time=5000.0).sample(_bqm())
    with pytest.raises(SolverConfigurationError, match=r"'num_reads'.*\[1, 10000\]"):
        get_solver("dwave", sampler=mock).sample(_bqm(), num_reads=20_000)


def test_unknown_sample_parameter_is_refused() -> None:
    with pytest.raises(SolverConfigurationError, match=r"unknown parameter.*'num_sweeps'"):
        DWaveSolver(sampler=MockDWaveSampler(topology_type="pegasus")).sample(_bqm(), num_sweeps=10)


def test_problem_too_large_for_the_qpu_graph() -> None:
    tiny = MockDWaveSampler(topology_type="chimera", topology_shape=[1, 1, 4])  # 8 qubits
    solver = get_solver("dwave", sampler=tiny)
    with pytest.raises(ProblemTooLargeError, match=r"9 variables.*8 qubits.*dwave-hybrid"):
        solver.sample(dimod.generators.ran_r(1, 9, seed=0))
    # 7 variables fit by count, but a complete graph K7 does not minor-embed into K4,4.
    with pytest.raises(ProblemTooLargeError, match="no embedding"):
        solver.sample(dimod.generators.ran_r(1, 7, seed=0))


def test_remote_error_during_sampling_becomes_unavailable() -> None:
    class TimingOut(MockDWaveSampler):
        def sample(self, bqm: Any, **kwargs: Any) -> Any:
            raise RequestTimeout("SAPI did not answer")

    solver = DWaveSolver(sampler=TimingOut(topology_type="pegasus"))
    with pytest.raises(SolverUnavailableError, match="RequestTimeout: SAPI did not answer"):
        solver.sample(_bqm())


# --- no token: instant, explained fallback -------------------------------------------------


@pytest.mark.parametrize("name", ["dwave", "dwave-hybrid"])
def test_no_token_falls_back_to_sa_with_one_warning(name: str) -> None:
    bqm = _bqm()
    solver = get_solver(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampleset = solver.sample(bqm, num_reads=20)
    fallbacks = [w for w in caught if issubclass(w.category, QoptFallbackWarning)]
    assert len(fallbacks) == 1
    message = str(fallbacks[0].message)
    assert "SolverUnavailableError" in message and "DWAVE_CONFIG_FILE" in message
    assert "dwave config create" in message
    record = record_of(sampleset)
    assert record.solver == name and record.solved_by == "sa"
    assert record.fallback is not None and "DWAVE_CONFIG_FILE" in record.fallback
    assert record.mock is False and record.qpu_access_s is None
    assert sampleset.first.energy == pytest.approx(_ground_energy(bqm))


@pytest.mark.parametrize("name", ["dwave", "dwave-hybrid"])
@pytest.mark.usefixtures("empty_config")
def test_no_token_without_fallback_raises(name: str) -> None:
    with pytest.raises(SolverUnavailableError, match=r"no Leap API token.*dwave config create"):
        get_solver(name, fallback=None).sample(_bqm())


def test_solver_status_reports_not_configured() -> None:
    status = solver_status("dwave")
    assert status.installed and not status.ready
    assert "dwave config create" in status.message


# --- where the token comes from ------------------------------------------------------------


def test_leap_status_missing_explicit_config_file(no_leap: Path) -> None:
    ready, message = leap_status()
    assert not ready
    assert "DWAVE_CONFIG_FILE" in message and str(no_leap) in message
    assert "dwave config create" in message and "DWAVE_API_TOKEN" in message


def test_leap_status_config_file_without_token(tmp_path: Path, monkeypatch: Any) -> None:
    path = _config_file(tmp_path, "[prod]\nsolver = Advantage_system4.1\n")
    monkeypatch.setenv("DWAVE_CONFIG_FILE", str(path))
    ready, message = leap_status()
    assert not ready and "no Leap API token" in message and str(path) in message


def test_leap_status_token_from_config_file_profile(tmp_path: Path, monkeypatch: Any) -> None:
    path = _config_file(tmp_path, "[prod]\ntoken = DEV-abc\n[test]\nsolver = x\n")
    monkeypatch.setenv("DWAVE_CONFIG_FILE", str(path))
    assert leap_status() == (True, f"Leap token configured (from the config file {path})")
    monkeypatch.setenv("DWAVE_PROFILE", "test")  # a profile without a token
    assert leap_status()[0] is False
    monkeypatch.setenv("DWAVE_PROFILE", "staging")  # a profile that does not exist
    ready, message = leap_status()
    assert not ready and "'staging' not found" in message


@pytest.mark.usefixtures("empty_config")
def test_leap_status_token_from_environment(monkeypatch: Any) -> None:
    monkeypatch.setenv("DWAVE_API_TOKEN", "DEV-from-env")
    ready, message = leap_status()
    assert ready and "DWAVE_API_TOKEN environment variable" in message
    assert "DEV-from-env" not in message  # never echo the secret


def test_env_token_with_unreadable_config_file_is_not_ready(monkeypatch: Any) -> None:
    # dwave-cloud-client refuses to start when DWAVE_CONFIG_FILE names a missing file, even
    # with a token in the environment; the status must agree with what a solve would do.
    monkeypatch.setenv("DWAVE_API_TOKEN", "DEV-from-env")
    assert leap_status()[0] is False


def test_leap_status_auto_detects_user_config_file(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("DWAVE_CONFIG_FILE")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "user"))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "system"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    ready, message = leap_status()
    assert not ready and "no config file found" in message
    user_file = tmp_path / "user" / "dwave" / "dwave.conf"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("[defaults]\ntoken = DEV-abc\n")
    ready, message = leap_status()
    assert ready and str(user_file) in message


# --- lazy connection, with a fake QPU standing in for DWaveSampler -------------------------


class _FakeQPU(MockDWaveSampler):
    """What DWaveSampler(**config) would build, minus the network; records its config."""

    built: ClassVar[list[dict[str, Any]]] = []
    closed: ClassVar[int] = 0

    def __init__(self, **config: Any) -> None:
        type(self).built.append(config)
        super().__init__(topology_type="pegasus")

    def close(self) -> None:
        type(self).closed += 1


@pytest.fixture
def empty_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A readable config file without a token (a missing one stops Ocean before any token)."""
    path = _config_file(tmp_path, "")
    monkeypatch.setenv("DWAVE_CONFIG_FILE", str(path))
    return path


@pytest.fixture
def fake_qpu(monkeypatch: pytest.MonkeyPatch, empty_config: Path) -> type[_FakeQPU]:
    monkeypatch.setattr(_FakeQPU, "built", [])
    monkeypatch.setattr(_FakeQPU, "closed", 0)
    monkeypatch.setattr(dwave_module, "DWaveSampler", _FakeQPU)
    return _FakeQPU


def test_connects_lazily_once_with_the_ocean_options(fake_qpu: type[_FakeQPU]) -> None:
    selection = {"topology__type": "pegasus"}
    solver = DWaveSolver(token="DEV-abc", solver=selection, region="eu-central-1", num_reads=5)
    assert fake_qpu.built == [] and not solver.connected
    assert set(solver.parameters) >= {"num_reads", "annealing_time", "chain_strength"}
    assert "child_properties" not in solver.properties
    solver.sample(_bqm())
    solver.sample(_bqm())
    assert fake_qpu.built == [{"token": "DEV-abc", "solver": selection, "region": "eu-central-1"}]
    assert solver.connected and "child_properties" in solver.properties
    assert solver.remote and not solver.is_mock


def test_real_path_record_is_remote_and_reportable(
    fake_qpu: type[_FakeQPU], empty_config: Path
) -> None:
    empty_config.write_text("[p]\ntoken = DEV-x\n")
    record = record_of(get_solver("dwave").sample(_bqm()))
    assert record.solved_by == "dwave" and record.fallback is None
    assert record.mock is False and record.reportable
    assert record.energy_provenance == "not measured" and record.energy_j is None
    assert record.qpu_access_s == pytest.approx(MOCK_QPU_ACCESS_US / 1e6)
    assert fake_qpu.built == [{}]  # the config file is left for Ocean to read


def test_connection_failure_is_unavailable_and_falls_back(
    monkeypatch: Any, empty_config: Path
) -> None:
    attempts = []

    def refused(**config: Any) -> Any:
        attempts.append(config)
        raise SolverAuthenticationError("Invalid token or access denied")

    monkeypatch.setattr(dwave_module, "DWaveSampler", refused)
    with pytest.raises(SolverUnavailableError, match="SolverAuthenticationError") as info:
        DWaveSolver(token="DEV-bad").sample(_bqm())
    assert isinstance(info.value.__cause__, SolverAuthenticationError)
    assert "DEV-bad" not in str(info.value)  # never echo the secret
    with pytest.warns(QoptFallbackWarning, match="Invalid token"):
        sampleset = get_solver("dwave", token="DEV-bad").sample(_bqm())
    assert record_of(sampleset).solved_by == "sa"
    assert len(attempts) == 2  # a failed connection is retried on the next solve


def test_close_releases_only_what_the_solver_built(fake_qpu: type[_FakeQPU]) -> None:
    with DWaveSolver(token="DEV-abc") as solver:
        solver.sample(_bqm())
    assert fake_qpu.closed == 1 and not solver.connected
    injected = _FakeQPU()
    with DWaveSolver(sampler=injected) as solver:
        solver.sample(_bqm())
    assert fake_qpu.closed == 1 and solver.connected


# --- Leap hybrid ---------------------------------------------------------------------------


class _TimedHybridSolver(MockLeapHybridSolver):
    """Ocean's mock hybrid solver, plus the timing keys and size limit a real one reports."""

    properties: ClassVar[dict[str, Any]] = {
        **MockLeapHybridSolver.properties,
        "maximum_number_of_variables": 5,
    }

    def __init__(self) -> None:
        self.time_limits: list[float] = []

    def sample_bqm(self, sapi_problem_id: Any, time_limit: float) -> Any:
        self.time_limits.append(time_limit)
        future = super().sample_bqm(sapi_problem_id, time_limit)
        sampleset = future.sampleset
        sampleset.info.update(qpu_access_time=31_918, run_time=1_000_000, charge_time=1_000_000)
        return future


@pytest.mark.usefixtures("empty_config")
def test_hybrid_lazy_path_with_options_time_limit_and_timing(monkeypatch: Any) -> None:
    monkeypatch.setenv("DWAVE_API_TOKEN", "DEV-env")
    fake = _TimedHybridSolver()
    bqm = dimod.generators.ran_r(1, 4, seed=1)
    with _fake_leap(fake) as clients:
        solver = get_solver("dwave-hybrid", time_limit=3, solver="hybrid_bqm", region="na-west-1")
        assert clients == []  # nothing connects before the first solve
        sampleset = solver.sample(bqm)
        solver.sample(bqm, time_limit=4)
    assert len(clients) == 1
    assert clients[0].config["solver"] == "hybrid_bqm"
    assert clients[0].config["region"] == "na-west-1"
    assert fake.time_limits == [3.0, 4]
    assert sampleset.info["timing"]["qpu_access_time"] == 31_918
    record = record_of(sampleset)
    assert record.solved_by == "dwave-hybrid" and not record.mock
    assert record.qpu_access_s == pytest.approx(0.031918)
    assert record.energy_provenance == "not measured"


def test_hybrid_time_limit_below_minimum_and_size_limit() -> None:
    with _fake_leap(_TimedHybridSolver()):
        solver = LeapHybridSolver(sampler=LeapHybridSampler(token="DEV"), time_limit=0.5)
    assert solver.remote and not solver.is_mock
    with pytest.raises(SolverConfigurationError, match=r"'time_limit'.*at least 1 s.*Got 0\.5"):
        solver.sample(dimod.generators.ran_r(1, 3, seed=0))
    with pytest.raises(ProblemTooLargeError, match=r"6 variables.*at most 5"):
        solver.sample(dimod.generators.ran_r(1, 6, seed=0))


def test_hybrid_default_time_limit_is_the_solvers_minimum() -> None:
    fake = _TimedHybridSolver()
    with _fake_leap(fake):
        solver = LeapHybridSolver(sampler=LeapHybridSampler(token="DEV"))
    solver.sample(dimod.generators.ran_r(1, 3, seed=0))
    assert fake.time_limits == [1.0]


def test_hybrid_no_token_is_unavailable_without_network() -> None:
    with pytest.raises(SolverUnavailableError, match="LeapHybridSolver cannot connect"):
        LeapHybridSolver(time_limit=5).sample(_bqm())


# --- configuration checks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"num_reads": 0}, r"'num_reads' parameter of DWaveSolver must be an int in \[1, inf\)"),
        ({"num_reads": True}, r"'num_reads'.*Got True instead"),
        ({"annealing_time": 0}, r"'annealing_time'.*\(0, inf\)"),
        ({"annealing_time": float("nan")}, "'annealing_time'"),
        ({"chain_strength": -1.0}, r"'chain_strength'.*callable.*Got -1\.0"),
        ({"chain_strength": "strong"}, "'chain_strength'"),
        ({"solver": 3}, "'solver'.*feature-based"),
        ({"solver": ""}, "'solver'"),
        ({"token": ""}, "'token'.*non-empty str"),
        ({"config_file": 1}, "'config_file'"),
        ({"sampler": dimod.ExactSolver()}, "structured dimod sampler"),
        ({"sampler": MockDWaveSampler(), "token": "x"}, r"\['token'\].*injected sampler"),
    ],
)
def test_dwave_options_checked_at_construction(options: dict[str, Any], pattern: str) -> None:
    with pytest.raises(SolverConfigurationError, match=pattern):
        DWaveSolver(**options)


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"time_limit": 0}, r"'time_limit' parameter of LeapHybridSolver.*\(0, inf\)"),
        ({"region": 5}, "'region'"),
        ({"sampler": dimod.ExactSolver()}, "min_time_limit"),
    ],
)
def test_hybrid_options_checked_at_construction(options: dict[str, Any], pattern: str) -> None:
    with pytest.raises(SolverConfigurationError, match=pattern):
        LeapHybridSolver(**options)


def test_get_solver_rejects_unknown_option() -> None:
    with pytest.raises(SolverConfigurationError, match="num_sweeps"):
        get_solver("dwave", num_sweeps=10)
