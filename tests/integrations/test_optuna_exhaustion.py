"""QuboSampler on a space it can exhaust: it says so once and stops the study, as Optuna's
GridSampler does; warnings about conditional parameters are said once per parameter."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna")

from qopt.integrations.optuna import QuboSampler  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)
LOGGER = "qopt.integrations.optuna._sampler"


def sampler(**options: object) -> QuboSampler:
    options.setdefault("surrogate_options", {"n_epochs": 60, "n_factors": 4})
    options.setdefault("solver_options", {"num_reads": 4, "num_sweeps": 200})
    return QuboSampler(seed=0, n_startup_trials=4, **options)  # type: ignore[arg-type]


def log_float(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    return (lr - 1e-3) ** 2


def test_a_gridded_float_is_searched_once_per_grid_point_then_the_study_stops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    study = optuna.create_study(sampler=sampler(n_bins=16))
    with caplog.at_level("WARNING", logger=LOGGER):
        study.optimize(log_float, n_trials=40)
    values = [t.params["lr"] for t in study.trials]
    assert len(values) == 16  # stopped, not 40 trials with 24 repeats
    assert len(set(values)) == 16
    said = [r.getMessage() for r in caplog.records if "has tried all" in r.getMessage()]
    assert said == [
        "QuboSampler has tried all 16 points of the search space (float 'lr' on a grid of "
        "n_bins=16 points) and stops the study. For a finer search raise n_bins, or give 'lr' "
        "a step."
    ]
    # Optimizing again repeats one point and stops again, without saying it again.
    caplog.clear()
    with caplog.at_level("WARNING", logger=LOGGER):
        study.optimize(log_float, n_trials=10)
    assert len(study.trials) == 17 and "has tried all" not in caplog.text


def test_a_discrete_space_stops_when_every_point_is_tried_and_thinning_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def objective(trial: optuna.Trial) -> float:
        return trial.suggest_int("x", 0, 3) + (trial.suggest_categorical("c", ["a", "b"]) == "b")

    study = optuna.create_study(sampler=sampler())
    with caplog.at_level("WARNING", logger=LOGGER):
        study.optimize(objective, n_trials=30)
    assert len(study.trials) == 8
    assert len({tuple(t.params.values()) for t in study.trials}) == 8
    assert "tried all 8 points of the search space and stops the study." in caplog.text

    def thinned(trial: optuna.Trial) -> float:
        return float(trial.suggest_int("n", 0, 1000))

    caplog.clear()
    study = optuna.create_study(sampler=sampler(max_values=6))
    with caplog.at_level("WARNING", logger=LOGGER):
        study.optimize(thinned, n_trials=30)
    assert len(study.trials) == 6
    assert "('n' thinned to max_values=6 values)" in caplog.text
    assert "raise max_values" in caplog.text


def test_a_space_with_conditional_parameters_is_not_stopped_and_warned_once_per_parameter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def objective(trial: optuna.Trial) -> float:
        kind = trial.suggest_categorical("kind", ["svc", "knn"])
        if kind == "svc":
            return trial.suggest_float("C", 1e-3, 1e3, log=True)
        return float(trial.suggest_int("k", 1, 30))

    study = optuna.create_study(sampler=sampler())
    with caplog.at_level("WARNING", logger=LOGGER):
        study.optimize(objective, n_trials=20)
    # "kind" has two values, but each trial also varies a conditional parameter: no stop.
    assert len(study.trials) == 20 and "has tried all" not in caplog.text
    warned = [r.getMessage() for r in caplog.records if "sampled independently" in r.getMessage()]
    names = [m.split("`")[1] for m in warned]
    assert "C" in names and len(names) == len(set(names))
    assert sum("C" in t.params for t in study.trials[4:]) > 1  # it was said once, not each time


def test_ask_and_tell_on_an_exhausted_space_keeps_working() -> None:
    study = optuna.create_study(sampler=sampler())
    for _ in range(5):  # three points: the last two asks repeat one
        trial = study.ask()
        study.tell(trial, float(trial.suggest_int("x", 0, 2)))
    assert {t.params["x"] for t in study.trials} == {0, 1, 2}


def test_stop_when_exhausted_false_keeps_proposing(caplog: pytest.LogCaptureFixture) -> None:
    study = optuna.create_study(sampler=sampler(stop_when_exhausted=False))
    with caplog.at_level("WARNING", logger=LOGGER):
        study.optimize(lambda t: float(t.suggest_int("x", 0, 2)), n_trials=6)
    assert len(study.trials) == 6 and "has tried all" not in caplog.text
