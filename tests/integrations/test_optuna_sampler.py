"""QuboSampler: Optuna's conformance suite, then qopt's own behaviour and quality checks."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from optuna.samplers import BaseSampler  # noqa: E402
from optuna.testing.pytest_samplers import (  # noqa: E402
    BasicSamplerTestCase,
    MultiObjectiveSamplerTestCase,
    RelativeSamplerTestCase,
)
from optuna.trial import TrialState  # noqa: E402
from qopt.integrations.optuna import QuboSampler, demo_study  # noqa: E402
from qopt.integrations.optuna._demo import random_qubo_objective  # noqa: E402

from qopt.encoding import (  # noqa: E402
    ParameterConstraint,
)
from qopt.exceptions import (  # noqa: E402
    InvalidProblemError,
    ProblemTooLargeError,
    SolverConfigurationError,
    UnknownSolverError,
)

optuna.logging.set_verbosity(optuna.logging.ERROR)

#: Small settings keep the suite fast; the behaviour under test does not depend on them.
FAST = {"n_epochs": 60, "n_factors": 4}


def fast_sampler(**options: Any) -> QuboSampler:
    options.setdefault("surrogate_options", FAST)
    options.setdefault("solver_options", {"num_reads": 4, "num_sweeps": 200})
    options.setdefault("n_startup_trials", 2)
    options.setdefault("seed", 0)
    return QuboSampler(**options)


class TestBasic(BasicSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        # The suite runs 10 trials over 3 categorical choices; by default QuboSampler stops an
        # exhausted study after the 3rd, as GridSampler does (test_optuna_exhaustion.py).
        return lambda: fast_sampler(stop_when_exhausted=False)


class TestRelative(RelativeSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        return fast_sampler


class TestRelativeBocs(RelativeSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        return lambda: fast_sampler(
            surrogate="bocs", surrogate_options={"n_burn_in": 10, "n_samples": 5}
        )


class TestMultiObjective(MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self) -> Callable[[], BaseSampler]:
        return fast_sampler


def categorical_grid_objective(trial: optuna.Trial) -> float:
    a = trial.suggest_categorical("a", ["x", "y", "z"])
    b = trial.suggest_int("b", 0, 3)
    return {"x": 0.0, "y": 1.0, "z": 2.0}[a] + (b - 2) ** 2


def test_import_qopt_does_not_import_optuna() -> None:
    import subprocess

    code = "import qopt, qopt.encoding, qopt.surrogates, sys; print('optuna' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_reproducible_with_a_fixed_seed() -> None:
    def run(seed: int) -> list[dict[str, Any]]:
        study = optuna.create_study(sampler=fast_sampler(seed=seed))
        study.optimize(categorical_grid_objective, n_trials=9)
        return [t.params for t in study.trials]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_no_duplicates_until_the_finite_space_is_exhausted() -> None:
    study = optuna.create_study(sampler=fast_sampler())
    study.optimize(categorical_grid_objective, n_trials=14)
    points = [tuple(t.params.values()) for t in study.trials]
    assert len(set(points[:12])) == 12  # all 3 x 4 points before any repeat
    assert study.best_value == 0.0
    model_trials = [t for t in study.trials if t.system_attrs.get("qopt:phase") == "model"]
    assert model_trials
    last = model_trials[-1].system_attrs
    assert last["qopt:surrogate"] == "fm" and last["qopt:n_bits"] == 6
    assert {
        "qopt:predicted",
        "qopt:predicted_quantile",
        "qopt:fit_best_rank",
        "qopt:oos_top_spearman",
        "qopt:candidate",
        "qopt:fit_s",
        "qopt:solver_wall_s",
    } <= set(last)


def test_out_of_sample_diagnostics_compare_forecasts_with_outcomes() -> None:
    """Each model trial carries the forecast made before it ran and, once told, its outcome."""

    def objective(trial: optuna.Trial) -> float:
        x = [trial.suggest_int(f"x{i}", 0, 3) for i in range(3)]
        return float(sum((v - 1) ** 2 for v in x))

    study = optuna.create_study(sampler=fast_sampler(n_startup_trials=6))
    study.optimize(objective, n_trials=24)
    model = [t for t in study.trials if t.system_attrs.get("qopt:phase") == "model"]
    assert len(model) >= 10
    for t in model:
        attrs = t.system_attrs
        assert 0.0 <= attrs["qopt:predicted_quantile"] <= 1.0
        earlier = [u.value for u in study.trials if u.number < t.number]
        expected = sum(e < t.value for e in earlier) + 0.5 * sum(e == t.value for e in earlier)
        assert attrs["qopt:observed_quantile"] == pytest.approx(expected / len(earlier))
    # Trial k's out-of-sample figure uses exactly the model trials finished before it.
    last = model[-1].system_attrs
    assert last["qopt:oos_n"] == len(model) - 1
    # A surrogate that learns this separable bowl forecasts better than chance out of sample.
    assert last["qopt:oos_spearman"] > 0.2


def test_start_design_turns_every_bit_on() -> None:
    study = optuna.create_study(sampler=fast_sampler(n_startup_trials=2))
    study.optimize(lambda t: t.suggest_categorical("c", list("abcdef")) == "a", n_trials=7)
    start = [t for t in study.trials if t.system_attrs.get("qopt:phase") == "start"]
    # Trial 0 has no relative space yet (random); the design then covers every other choice.
    assert len(start) >= 5
    assert {t.params["c"] for t in study.trials[: len(start) + 1]} == set("abcdef")


def test_failed_pruned_and_nan_trials_are_not_proposed_again() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_int("x", 0, 5)
        y = trial.suggest_int("y", 0, 1)
        if x == 5:
            raise RuntimeError("out of memory")
        if x == 4:
            raise optuna.TrialPruned()
        if x == 3 and y == 1:
            return float("nan")
        return float(-x - y)

    study = optuna.create_study(sampler=fast_sampler())
    study.optimize(objective, n_trials=12, catch=(RuntimeError,))
    states = [t.state for t in study.trials]
    assert TrialState.FAIL in states and TrialState.PRUNED in states
    points = [(t.params["x"], t.params["y"]) for t in study.trials]
    # Until a trial completes there is no relative space: those trials are random (and may
    # repeat). Every later proposal is a point never tried before, failures included.
    first = next(i for i, t in enumerate(study.trials) if "qopt:phase" in t.system_attrs)
    assert first <= 3
    for i in range(first, len(points)):
        assert points[i] not in points[:i]
    assert len(set(points)) >= 11
    assert study.best_value == -3.0


def test_failures_rank_worst_in_a_maximize_study() -> None:
    # A failed or pruned trial must count as the worst value whatever the direction: a
    # maximize study once turned failures into -inf, which crashed the target transform.
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_int("x", 0, 7)
        if x in (0, 1):
            raise optuna.TrialPruned()
        if x == 2:
            raise RuntimeError("diverged")
        return float(x)

    study = optuna.create_study(direction="maximize", sampler=fast_sampler(n_startup_trials=2))
    study.optimize(objective, n_trials=8, catch=(RuntimeError,))
    assert len({t.params["x"] for t in study.trials}) >= 7
    assert study.best_value == 7.0


def test_parallel_threads_and_shared_storage_do_not_collide(tmp_path: Any) -> None:
    study = optuna.create_study(sampler=fast_sampler())
    study.optimize(categorical_grid_objective, n_trials=12, n_jobs=2)
    assert len({tuple(t.params.values()) for t in study.trials}) == 12

    # Two workers (processes in real life) sharing an RDB storage, both with the same seed:
    # running trials are pending, so the second worker does not repeat the first's proposal.
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = optuna.create_study(study_name="s", storage=storage, sampler=fast_sampler(seed=7))
    second = optuna.load_study(study_name="s", storage=storage, sampler=fast_sampler(seed=7))
    first.optimize(categorical_grid_objective, n_trials=1)  # a relative search space exists
    for _ in range(5):
        t1, t2 = first.ask(), second.ask()
        p1 = (t1.suggest_categorical("a", ["x", "y", "z"]), t1.suggest_int("b", 0, 3))
        p2 = (t2.suggest_categorical("a", ["x", "y", "z"]), t2.suggest_int("b", 0, 3))
        assert p1 != p2
        first.tell(t1, 1.0)
        second.tell(t2, 2.0)


def test_conditional_parameters_go_to_the_independent_sampler_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def objective(trial: optuna.Trial) -> float:
        kind = trial.suggest_categorical("kind", ["a", "b"])
        extra = trial.suggest_int(f"extra_{kind}", 0, 3)
        return extra + (kind == "b")

    study = optuna.create_study(sampler=fast_sampler())
    with caplog.at_level("WARNING", logger="qopt.integrations.optuna._sampler"):
        study.optimize(objective, n_trials=8)
    assert "is sampled independently using `RandomSampler` instead of `QuboSampler`" in caplog.text
    assert "warn_independent_sampling" in caplog.text
    quiet = optuna.create_study(sampler=fast_sampler(warn_independent_sampling=False))
    caplog.clear()
    with caplog.at_level("WARNING", logger="qopt.integrations.optuna._sampler"):
        quiet.optimize(objective, n_trials=5)
    assert "sampled independently" not in caplog.text


def test_multi_objective_parego() -> None:
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_int("x", 0, 7)
        y = trial.suggest_categorical("y", ["p", "q"])
        return float(x), float(7 - x + (y == "q"))

    study = optuna.create_study(directions=["minimize", "minimize"], sampler=fast_sampler())
    study.optimize(objective, n_trials=14)
    assert any(t.system_attrs.get("qopt:phase") == "model" for t in study.trials)
    front = {t.params["x"] for t in study.best_trials}
    assert len(front) >= 4 and all(t.params["y"] == "p" for t in study.best_trials)


def test_known_linear_constraints_are_never_violated() -> None:
    budget = ParameterConstraint({"w1": 1, "w2": 1, "w3": 1}, ub=96, label="width budget")

    def objective(trial: optuna.Trial) -> float:
        widths = [trial.suggest_int(f"w{i}", 8, 64, step=8) for i in (1, 2, 3)]
        return -float(sum(widths))  # wants every layer wide

    study = optuna.create_study(sampler=fast_sampler(constraints=[budget]))
    study.optimize(objective, n_trials=20)
    totals = [sum(t.params.values()) for t in study.trials]
    assert max(totals) <= 96  # the first trial (independent sampling) included
    assert study.best_value == -96.0


def test_black_box_constraints_func_is_recorded_and_steers_away() -> None:
    def objective(trial: optuna.Trial) -> float:
        return -float(trial.suggest_int("x", 0, 9))

    sampler = fast_sampler(constraints_func=lambda t: [t.params["x"] - 6.0])
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=10)
    assert all(t.constraints == {"0": t.params["x"] - 6.0} for t in study.trials)
    feasible = [t for t in study.trials if t.params["x"] <= 6]
    assert min(t.value for t in feasible) == -6.0


def test_quality_finds_the_optimum_of_a_random_qubo() -> None:
    """On a random 14-bit QUBO objective the enumerated optimum is found within 60 trials."""
    hits = 0
    seeds = (1, 3, 4, 5)
    for seed in seeds:
        Q, optimum = random_qubo_objective(14, seed=seed)

        def objective(trial: optuna.Trial, Q: np.ndarray = Q) -> float:
            x = np.array([trial.suggest_int(f"x{i}", 0, 1) for i in range(14)], dtype=float)
            return float(x @ Q @ x)

        study = optuna.create_study(sampler=QuboSampler(seed=seed))
        study.optimize(objective, n_trials=60)
        hits += math.isclose(study.best_value, optimum, abs_tol=1e-9)
    assert hits >= 3


def test_bad_options_and_spaces_raise_clear_errors() -> None:
    with pytest.raises(UnknownSolverError, match="Known solvers"):
        QuboSampler(solver="annealer9000")
    with pytest.raises(SolverConfigurationError, match="'surrogate' parameter of QuboSampler"):
        QuboSampler(surrogate="gp")
    with pytest.raises(SolverConfigurationError, match="'target_transform'"):
        QuboSampler(target_transform="log")
    with pytest.raises(SolverConfigurationError, match="FactorizationMachine does not take"):
        QuboSampler(surrogate_options={"n_burn_in": 3})
    with pytest.raises(SolverConfigurationError, match="parameter 'x' the encoding 'binary'"):
        QuboSampler(encodings={"x": "binary"})
    with pytest.raises(SolverConfigurationError, match="'n_startup_trials'"):
        QuboSampler(n_startup_trials=-1)

    def wide(trial: optuna.Trial) -> float:
        return trial.suggest_float("lr", 1e-5, 1.0, log=True) + trial.suggest_int("units", 1, 512)

    study = optuna.create_study(sampler=fast_sampler(max_bits=20))
    with pytest.raises(ProblemTooLargeError, match=r"'units' \(31 bits\).*'lr' \(15 bits\)"):
        study.optimize(wide, n_trials=3)

    # A solver with a size limit: the error names the parameters and the way out.
    study = optuna.create_study(
        sampler=fast_sampler(solver="exact", solver_options={"max_variables": 10})
    )
    with pytest.raises(ProblemTooLargeError, match=r"'units'.*solver='sa'"):
        study.optimize(wide, n_trials=6)

    infeasible = ParameterConstraint({"a": 1, "b": 1}, ub=1, label="too tight")

    def objective(trial: optuna.Trial) -> float:
        return trial.suggest_int("a", 1, 5) + trial.suggest_int("b", 1, 5)

    study = optuna.create_study(sampler=fast_sampler(constraints=[infeasible]))
    with pytest.raises(InvalidProblemError, match=r"'too tight' on parameter\(s\) 'a', 'b'"):
        study.optimize(objective, n_trials=3)


def test_bocs_surrogate_runs_a_study() -> None:
    sampler = fast_sampler(surrogate="bocs", surrogate_options={"n_burn_in": 20, "n_samples": 5})
    study = optuna.create_study(sampler=sampler)
    study.optimize(categorical_grid_objective, n_trials=10)
    assert study.trials[-1].system_attrs["qopt:surrogate"] == "bocs"


def test_demo_study_reports_both_samplers() -> None:
    result = demo_study(n_trials=10, seed=1, n_bits=8)
    assert result["optimum"] <= min(result["qubo_sampler"], result["tpe"])
    _, optimum = random_qubo_objective(8, seed=1)
    assert result["optimum"] == optimum


def test_finished_trials_are_encoded_once() -> None:
    sampler = fast_sampler()
    study = optuna.create_study(sampler=sampler)
    study.optimize(categorical_grid_objective, n_trials=8)
    (cache,) = sampler._finished.values()
    assert len(cache) == 7  # every finished trial but the last (told after the last suggest)
    assert all(point is not None for point in cache.values())


def test_local_search_perturbs_the_incumbent_once_the_model_optimum_is_taken() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = np.array([trial.suggest_int(f"x{i}", 0, 1) for i in range(8)], dtype=float)
        return float((x.sum() - 3) ** 2 + x[0] - x[7])

    study = optuna.create_study(sampler=fast_sampler(local_search=True, n_startup_trials=4))
    study.optimize(objective, n_trials=30)
    sources = [t.system_attrs.get("qopt:candidate") for t in study.trials]
    local = [t for t, s in zip(study.trials, sources, strict=True) if s == "incumbent-neighbour"]
    assert local, sources
    for t in local:
        # Within two steps of the best trial known when it was proposed.
        earlier = [u for u in study.trials if u.number < t.number]
        best = min(earlier, key=lambda u: u.value)
        distance = sum(t.params[k] != best.params[k] for k in t.params)
        assert 1 <= distance <= 2
    assert study.best_value == -1.0


def test_trust_region_proposes_the_model_best_untried_point_near_the_incumbent() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = [trial.suggest_categorical(f"x{i}", ["a", "b", "c", "d"]) for i in range(4)]
        return float(sum(v != "c" for v in x) + (x[0] == "a"))

    sampler = fast_sampler(trust_region=1, n_startup_trials=4)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=25)
    trials = study.trials
    local = [
        t for t in trials if str(t.system_attrs.get("qopt:candidate")).startswith("trust-region")
    ]
    assert len(local) >= 10
    for t in local:
        earlier = [u for u in trials if u.number < t.number]
        best = min(earlier, key=lambda u: (u.value, u.number))
        # One change away from the incumbent, never a repeat, and the solver saw the ball's
        # QUBO (16 choice bits plus the ball's slack).
        assert sum(t.params[k] != best.params[k] for k in t.params) == 1
        assert all(u.params != t.params for u in earlier)
        assert t.system_attrs["qopt:qubo_variables"] >= 16
    assert study.best_value == 0.0


def mixed_budget_objective(trial: optuna.Trial) -> float:
    """One-hot and domain-wall parameters under a known budget; optimum on the budget."""
    op = trial.suggest_categorical("op", ["conv", "pool", "skip", "none"])
    w = trial.suggest_int("w", 0, 6)
    d = trial.suggest_int("d", 1, 4)
    flag = trial.suggest_categorical("flag", [False, True])
    return float(-(w + d) - 2 * (op == "conv") + (w - 4) ** 2 / 4 - flag)


MIXED_BUDGET = ParameterConstraint({"w": 1, "d": 1, "op": {"conv": 2}}, ub=8)


def ball_distance(space: Any, a: dict[str, int], b: dict[str, int]) -> int:
    return sum(
        int(a[n] != b[n]) if p.scheme == "one-hot" else abs(a[n] - b[n])
        for n, p in space.parameters.items()
    )


@pytest.mark.parametrize("method", ["solver", "enumerate"])
def test_every_trust_region_proposal_is_in_the_ball_and_within_budget(method: str) -> None:
    sampler = fast_sampler(
        trust_region=2,
        trust_region_method=method,
        n_startup_trials=4,
        constraints=[MIXED_BUDGET],
    )
    study = optuna.create_study(sampler=sampler)
    study.optimize(mixed_budget_objective, n_trials=30)
    (space,) = sampler._spaces.values()
    local = [
        t
        for t in study.trials
        if str(t.system_attrs.get("qopt:candidate")).startswith("trust-region")
    ]
    assert len(local) >= 15
    for t in local:
        earlier = [u for u in study.trials if u.number < t.number]
        best = min(earlier, key=lambda u: (u.value, u.number))
        here, centre = (space.indices_of(_internal(x)) for x in (t.params, best.params))
        assert 1 <= ball_distance(space, here, centre) <= 2
        assert t.params["w"] + t.params["d"] + 2 * (t.params["op"] == "conv") <= 8
        assert all(u.params != t.params for u in earlier)
        if method == "solver":
            assert t.system_attrs["qopt:qubo_variables"] > space.n_bits  # the ball's slack
        else:
            assert t.system_attrs["qopt:candidate"] == "trust-region-enumerated"
    assert study.best_value == -9.0  # w=4, flag on, and op=conv with d=2 or d=4 without


def _internal(params: dict[str, Any]) -> dict[str, Any]:
    """Trial params as the encoding's parameters (categoricals by choice position)."""
    choices = {"op": ["conv", "pool", "skip", "none"], "flag": [False, True]}
    return {n: choices[n].index(v) if n in choices else v for n, v in params.items()}


def test_trust_region_method_must_be_known() -> None:
    with pytest.raises(SolverConfigurationError, match="trust_region_method"):
        QuboSampler(trust_region=2, trust_region_method="exhaustive")


def test_trust_region_falls_back_to_the_qubo_when_the_ball_is_exhausted() -> None:
    # Two binary choices: after the start every radius-1 ball is soon fully evaluated.
    def objective(trial: optuna.Trial) -> float:
        return float(sum(trial.suggest_int(f"x{i}", 0, 2) for i in range(2)))

    study = optuna.create_study(sampler=fast_sampler(trust_region=1, n_startup_trials=3))
    study.optimize(objective, n_trials=9)
    sources = [t.system_attrs.get("qopt:candidate") for t in study.trials]
    assert "trust-region" in sources
    assert any(s is not None and s.startswith(("solver", "neighbour")) for s in sources)
    assert len({tuple(t.params.values()) for t in study.trials}) == 9


@pytest.mark.parametrize("radius", [0, -1, 1.5])
def test_trust_region_must_be_a_positive_int(radius: Any) -> None:
    with pytest.raises(SolverConfigurationError, match="trust_region"):
        QuboSampler(trust_region=radius)


@pytest.mark.parametrize("patience", [0, -1, 1.5])
def test_trust_region_restart_must_be_a_positive_int(patience: Any) -> None:
    with pytest.raises(SolverConfigurationError, match="trust_region_restart"):
        QuboSampler(trust_region=2, trust_region_restart=patience)


def test_trust_region_restarts_outside_the_stalled_ball_and_recentres() -> None:
    patience, radius = 4, 1
    sampler = fast_sampler(
        trust_region=radius,
        trust_region_restart=patience,
        n_startup_trials=4,
        constraints=[MIXED_BUDGET],
    )
    study = optuna.create_study(sampler=sampler)
    study.optimize(mixed_budget_objective, n_trials=40)
    (space,) = sampler._spaces.values()
    trials = study.trials
    restarts = [t.number for t in trials if t.system_attrs.get("qopt:trust_restart")]
    assert restarts, "the region never stalled for 4 trials in 40"
    point = {t.number: space.indices_of(_internal(t.params)) for t in trials}
    for t in trials:
        if t.system_attrs.get("phase") == "start" or "qopt:trust_stalled" not in t.system_attrs:
            continue
        # The region: trials from the last restart before t (all trials before the first).
        first = max((r for r in restarts if r < t.number), default=0)
        region = [u for u in trials if first <= u.number < t.number]
        centre = min(region, key=lambda u: (u.value, u.number))
        stalled = t.number - 1 - centre.number
        assert t.system_attrs["qopt:trust_stalled"] == stalled
        distance = ball_distance(space, point[t.number], point[centre.number])
        if t.number in restarts:
            # Only after `patience` trials without improvement, and outside the ball.
            assert stalled >= patience
            assert distance >= radius + 1
            assert t.system_attrs["qopt:candidate"] == "trust-region-restart"
        elif str(t.system_attrs.get("qopt:candidate")).startswith("trust-region"):
            assert 1 <= distance <= radius
        assert t.params["w"] + t.params["d"] + 2 * (t.params["op"] == "conv") <= 8
    assert len({tuple(t.params.values()) for t in trials}) == len(trials)


SPIKE_CHOICES = ["a", "b", "c", "d", "e", "f"]


def spike_objective(trial: optuna.Trial) -> float:
    """A smooth valley towards "ddddd" (value -0.5) and an isolated spike at "aaaaa" (value 0):
    every point within two changes of the spike is worse than it."""
    x = "".join(trial.suggest_categorical(f"x{i}", SPIKE_CHOICES) for i in range(5))
    return 0.0 if x == "aaaaa" else sum(v != "d" for v in x) - 0.5


def test_trust_region_restart_escapes_a_local_optimum_that_traps_the_plain_region() -> None:
    best = {}
    for patience in (None, 6):
        sampler = fast_sampler(
            trust_region=2, trust_region_restart=patience, n_startup_trials=6, seed=1
        )
        study = optuna.create_study(sampler=sampler)
        study.enqueue_trial({f"x{i}": "a" for i in range(5)})
        study.optimize(spike_objective, n_trials=40)
        best[patience] = study.best_value
    # The plain region stays on the spike (its 275-point ball outlasts 40 trials); the
    # restarted one leaves the ball and climbs the valley to its floor.
    assert best[None] == 0.0
    assert best[6] == -0.5


def test_unknown_keywords_and_solver_options_fail_at_construction() -> None:
    with pytest.raises(SolverConfigurationError, match=r"\['trust_radius'\].*'trust_region'"):
        QuboSampler(trust_radius=2)
    with pytest.raises(SolverConfigurationError, match=r"unknown solver_options \['sweeps'\]"):
        QuboSampler(solver="sa", solver_options={"sweeps": 10})


def test_a_misspelled_constraint_parameter_is_named_with_the_valid_ones() -> None:
    typo = ParameterConstraint({"w1": 1, "w3": 1}, ub=10)

    def objective(trial: optuna.Trial) -> float:
        return float(trial.suggest_int("w1", 0, 8) + trial.suggest_int("w2", 0, 8))

    study = optuna.create_study(sampler=fast_sampler(constraints=[typo]))
    # The space is known once a trial has completed: the next one reports the typo.
    with pytest.raises(InvalidProblemError, match=r"\['w3'\].*The parameters are: \['w1', 'w2'\]"):
        study.optimize(objective, n_trials=3)


def test_a_constraint_on_a_single_valued_parameter_keeps_its_share() -> None:
    budget = ParameterConstraint({"a": 1, "b": 1, "fixed": 1}, ub=6)

    def objective(trial: optuna.Trial) -> float:
        fixed = trial.suggest_int("fixed", 2, 2)
        return -float(trial.suggest_int("a", 0, 5) + trial.suggest_int("b", 0, 5) + fixed)

    study = optuna.create_study(sampler=fast_sampler(constraints=[budget]))
    study.optimize(objective, n_trials=15)
    assert all(t.params["a"] + t.params["b"] <= 4 for t in study.trials[1:])
    assert study.best_value == -6.0


def test_a_misspelled_encoding_name_is_named_with_the_parameters() -> None:
    def objective(trial: optuna.Trial) -> float:
        return float(trial.suggest_int("width", 0, 8))

    study = optuna.create_study(sampler=fast_sampler(encodings={"widht": "one-hot"}))
    with pytest.raises(SolverConfigurationError, match=r"\['widht'\].*are: \['width'\]"):
        study.optimize(objective, n_trials=3)
