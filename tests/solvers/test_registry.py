from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from typing import Any, ClassVar

import dimod
import pytest

from qopt.exceptions import (
    MissingDependencyError,
    QoptError,
    SolverConfigurationError,
    UnknownSolverError,
)
from qopt.metering import record_of
from qopt.solvers import (
    FallbackComposite,
    QoptFallbackWarning,
    SimulatedAnnealingSolver,
    SolverSpec,
    _registry,
    available_solvers,
    check_solver_options,
    get_solver,
    register_solver,
    solver_status,
)


def test_unknown_name_lists_known_solvers() -> None:
    with pytest.raises(UnknownSolverError) as caught:
        get_solver("annealer")
    message = str(caught.value)
    assert "Unknown solver 'annealer'" in message
    for name in ("sa", "tabu", "exact", "dwave"):
        assert name in message
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, QoptError)


def test_close_name_gets_a_suggestion() -> None:
    with pytest.raises(UnknownSolverError, match="Did you mean 'tabu'"):
        get_solver("tabbu")


def test_unknown_option_lists_the_options() -> None:
    with pytest.raises(
        SolverConfigurationError, match="Its options are: num_reads, num_sweeps, seed"
    ):
        get_solver("sa", sweeps=10)


def test_default_solver_is_sa() -> None:
    record = record_of(get_solver().sample(dimod.BinaryQuadraticModel({"a": -1}, {}, 0, "BINARY")))
    assert record.solver == "sa" and record.solved_by == "sa" and record.fallback is None


class _Broken(dimod.Sampler):
    remote = True
    parameters: ClassVar[dict[str, Any]] = {"num_reads": []}
    properties: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        self.options = options

    def sample(self, bqm: dimod.BinaryQuadraticModel, **kwargs: Any) -> dimod.SampleSet:
        raise ConnectionError("network unreachable")


def test_remote_failure_falls_back_with_one_warning_and_a_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = SolverSpec("broken-remote", _Broken, "always fails", remote=True)
    monkeypatch.setitem(_registry._REGISTERED, spec.name, spec)
    solver = get_solver("broken-remote", seed=4)
    bqm = dimod.generators.ran_r(1, 8, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampleset = solver.sample(bqm, num_reads=3)
    fallback_warnings = [w for w in caught if issubclass(w.category, QoptFallbackWarning)]
    assert len(fallback_warnings) == 1
    assert "ConnectionError: network unreachable" in str(fallback_warnings[0].message)
    record = record_of(sampleset)
    assert record.solver == "broken-remote" and record.solved_by == "sa"
    assert "network unreachable" in (record.fallback or "")
    assert record.energy_provenance == "estimated" or record.energy_provenance == "measured"
    assert len(sampleset) == 3  # num_reads reached the fallback


def test_fallback_none_raises_the_remote_error(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = SolverSpec("broken-remote", _Broken, "always fails", remote=True)
    monkeypatch.setitem(_registry._REGISTERED, spec.name, spec)
    solver = get_solver("broken-remote", fallback=None)
    with pytest.raises(ConnectionError):
        solver.sample(dimod.BinaryQuadraticModel({"a": 1}, {}, 0, "BINARY"))


def test_user_errors_are_not_hidden_by_the_fallback() -> None:
    solver = FallbackComposite(
        SimulatedAnnealingSolver(), SimulatedAnnealingSolver(), name="x", fallback_name="sa"
    )
    bqm = dimod.BinaryQuadraticModel({"a": float("nan")}, {}, 0, "BINARY")
    with pytest.raises(ValueError, match="non-finite"):
        solver.sample(bqm)


def test_fallback_must_be_local_and_not_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = SolverSpec("broken-remote", _Broken, "always fails", remote=True)
    monkeypatch.setitem(_registry._REGISTERED, spec.name, spec)
    with pytest.raises(SolverConfigurationError, match="own fallback"):
        get_solver("broken-remote", fallback="broken-remote")
    with pytest.raises(UnknownSolverError):
        get_solver("broken-remote", fallback="nope")


def test_register_solver_and_builtin_names_are_protected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "_REGISTERED", {})
    register_solver(SolverSpec("random", dimod.RandomSampler, "uniform random"))
    assert "random" in available_solvers()
    sampleset = get_solver("random").sample(dimod.BinaryQuadraticModel({"a": 1}, {}, 0, "BINARY"))
    assert record_of(sampleset).solver == "random"
    with pytest.raises(SolverConfigurationError, match="built-in"):
        register_solver(SolverSpec("sa", dimod.RandomSampler, "shadow"))


def test_entry_point_solvers_are_discovered(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    entry = importlib.metadata.EntryPoint("plugin", "dimod:RandomSampler", "qopt.solvers")
    monkeypatch.setattr(
        importlib.metadata,
        "entry_points",
        lambda group=None: [entry] if group == "qopt.solvers" else [],
    )
    _registry._entry_point_specs.cache_clear()
    monkeypatch.setattr(_registry, "_entry_point_specs", _registry._entry_point_specs)
    assert "plugin" in available_solvers()
    sampleset = get_solver("plugin").sample(dimod.BinaryQuadraticModel({"a": 1}, {}, 0, "BINARY"))
    assert len(sampleset) == 10
    _registry._entry_point_specs.cache_clear()


def test_missing_extra_is_named() -> None:
    spec = SolverSpec("needs-pkg", "qopt_nonexistent_pkg.mod:Solver", "x", extra="dwave")
    with pytest.raises(MissingDependencyError, match=r"pip install 'qopt-loop\[dwave\]'"):
        spec.load()


def test_status_of_local_solvers_is_ready() -> None:
    for name in ("sa", "tabu", "steepest", "exact"):
        status = solver_status(name)
        assert status.installed and status.ready


def _frameworks_loaded_by(code: str, frameworks: tuple[str, ...]) -> list[str]:
    """The modules of ``frameworks`` (and dwave-system) that running ``code`` imports."""
    check = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps([m for m in sys.modules if m.split('.')[0] in {frameworks!r} "
        "or m.startswith('dwave.system')]))\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def test_importing_qopt_loads_no_heavy_framework() -> None:
    code = "import qopt, qopt.solvers, qopt.metering, qopt.io, qopt.quality, qopt.cli"
    frameworks = ("lightning", "pytorch_lightning", "optuna", "qiskit", "qiskit_optimization")
    assert _frameworks_loaded_by(code, (*frameworks, "torch")) == []


def test_listing_the_solvers_imports_no_backend_framework() -> None:
    # Whether a backend is installed is looked up, not imported: importing torch, dwave-system
    # and qiskit-optimization made 'qopt solvers' take seconds. (Reading saved IBM accounts
    # still imports qiskit-ibm-runtime, and with it qiskit.)
    code = "import io\nfrom qopt.cli import main\nassert main(['solvers'], out=io.StringIO()) == 0"
    frameworks = ("lightning", "optuna", "qiskit_optimization", "torch")
    assert _frameworks_loaded_by(code, frameworks) == []


def test_status_says_a_missing_package_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = SolverSpec("needs-nothing-here", _Broken, "x", modules=("no_such_package_qopt",))
    monkeypatch.setitem(_registry._REGISTERED, spec.name, spec)
    status = solver_status(spec.name)
    assert not status.installed and not status.ready and "not installed" in status.message


class _Flaky(_Broken):
    calls = 0

    def sample(self, bqm: dimod.BinaryQuadraticModel, **kwargs: Any) -> dimod.SampleSet:
        type(self).calls += 1
        raise TimeoutError("Leap did not answer")


def test_a_failed_remote_is_not_retried_until_retry_after_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import qopt.solvers.composites as composites

    clock = [100.0]
    monkeypatch.setattr(composites.time, "monotonic", lambda: clock[0])
    spec = SolverSpec("flaky-remote", _Flaky, "times out", remote=True)
    monkeypatch.setitem(_registry._REGISTERED, spec.name, spec)
    _Flaky.calls = 0
    solver = get_solver("flaky-remote", retry_after=30)
    bqm = dimod.BinaryQuadraticModel({"a": -1}, {}, 0, "BINARY")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = record_of(solver.sample(bqm))
        clock[0] += 10
        second = record_of(solver.sample(bqm))
        clock[0] += 25
        third = record_of(solver.sample(bqm))
    assert _Flaky.calls == 2  # tried, skipped while cooling down, tried again
    assert "TimeoutError" in (first.fallback or "")
    assert (second.fallback or "").startswith("not retried: failed 10 s ago (TimeoutError")
    assert second.solved_by == "sa" and third.solved_by == "sa"
    assert sum(issubclass(w.category, QoptFallbackWarning) for w in caught) == 2


def test_retry_after_is_checked() -> None:
    with pytest.raises(
        SolverConfigurationError, match="'retry_after' parameter of FallbackComposite"
    ):
        FallbackComposite(
            SimulatedAnnealingSolver(),
            SimulatedAnnealingSolver(),
            name="x",
            fallback_name="sa",
            retry_after=-1,
        )


def test_decompose_wraps_the_backend_and_solves_beyond_its_limit() -> None:
    from qopt.problems.maxcut import maxcut_bqm, random_regular_graph

    bqm = maxcut_bqm(random_regular_graph(40, 3, seed=1))
    with pytest.raises(ValueError, match="limited to 24 variables"):
        get_solver("exact").sample(bqm)
    solver = get_solver(
        "exact", decompose={"subproblem_size": 12, "max_iterations": 200, "seed": 3}
    )
    decomposed = solver.sample(bqm)
    reference = get_solver("sa", seed=0).sample(bqm).first.energy
    assert decomposed.first.energy <= 0.97 * reference  # energies are minus the cut
    assert record_of(decomposed).solver == "exact"


@pytest.mark.parametrize("decompose", [{"foo": 1}, {"subproblem_size": 8, "sweeps": 3}])
def test_unknown_decompose_options_are_named_with_the_valid_ones(decompose: dict) -> None:
    unknown = sorted(set(decompose) - {"subproblem_size"})
    match = rf"Unknown decompose option\(s\) {re.escape(str(unknown))} .*subproblem_size"
    with pytest.raises(SolverConfigurationError, match=match):
        get_solver("sa", decompose=decompose)
    with pytest.raises(SolverConfigurationError, match=match):
        check_solver_options("sa", {"decompose": decompose}, "MyCallback")
    with pytest.raises(SolverConfigurationError, match="must be True, False or a dict"):
        get_solver("sa", decompose="yes")


def test_a_default_seed_seeds_the_decomposition_of_a_backend_without_one() -> None:
    from qopt.problems.maxcut import maxcut_bqm, random_regular_graph

    bqm = maxcut_bqm(random_regular_graph(40, 3, seed=2))
    decompose = {"subproblem_size": 10, "max_iterations": 20, "initial": "random"}

    def solve(seed: int) -> dimod.SampleSet:
        return get_solver("exact", decompose=decompose, defaults={"seed": seed}).sample(bqm)

    first, again, other = solve(1), solve(1), solve(2)
    assert first.info["decomposition"]["trace"] == again.info["decomposition"]["trace"]
    assert first.info["decomposition"]["trace"] != other.info["decomposition"]["trace"]


def test_option_names_come_from_the_backend() -> None:
    from qopt.solvers import solver_spec

    assert solver_spec("sa").option_names() == [
        "num_reads",
        "num_sweeps",
        "seed",
        "beta_range",
    ]
    assert "seed" not in (solver_spec("exact").option_names() or [])


def test_defaults_must_be_a_mapping() -> None:
    with pytest.raises(SolverConfigurationError, match="'defaults' parameter of get_solver"):
        get_solver("sa", defaults=True)  # type: ignore[arg-type]
