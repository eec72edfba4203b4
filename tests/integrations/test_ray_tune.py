"""QuboSampler inside Ray Tune, through ``OptunaSearch(sampler=QuboSampler(...))``.

Ray's ``OptunaSearch`` runs the sampler in the Tune driver on an in-memory study of its own,
asks for a trial when Tune has a free slot and tells it when the trial ends, so several trials
are pending at once; it pickles itself, study and sampler included, into the experiment's
checkpoint, which ``Tuner.restore`` reads back. The Tuner tests run a real local Ray (two
CPUs); the others drive the same ``OptunaSearch`` through the calls Tune makes.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray")
optuna = pytest.importorskip("optuna")

import ray  # noqa: E402
from optuna.distributions import IntDistribution  # noqa: E402
from optuna.trial import TrialState  # noqa: E402
from qopt.integrations.optuna import QuboSampler  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.search.optuna import OptunaSearch  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)

#: A random QUBO over 10 bits: the objective of the Tuner test, whose optimum a quadratic
#: surrogate can learn; 1,024 points, so 30 random trials land on it 3 % of the time.
N_BITS = 10
COUPLINGS = np.triu(np.round(np.random.default_rng(7).normal(size=(N_BITS, N_BITS)), 1))


def qubo_value(bits: list[int]) -> float:
    x = np.asarray(bits, dtype=float)
    return float(x @ COUPLINGS @ x)


OPTIMUM = min(qubo_value(list(b)) for b in itertools.product((0, 1), repeat=N_BITS))


#: OptunaSearch is given a storage and a study name of ours so the tests can read its study.
STUDY = "tune"


def fast_sampler(**options: Any) -> QuboSampler:
    options.setdefault("surrogate_options", {"n_epochs": 100})
    options.setdefault("n_startup_trials", 6)
    options.setdefault("seed", 0)
    return QuboSampler(**options)


def study_of(storage: optuna.storages.BaseStorage) -> optuna.Study:
    """The study OptunaSearch built on ``storage`` (created under its study name)."""
    return optuna.load_study(study_name=STUDY, storage=storage)


@pytest.fixture(scope="module")
def local_ray() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def run_trials(
    search: OptunaSearch, objective: Any, n_trials: int, concurrent: int, prefix: str = "t"
) -> list[dict]:
    """Drive ``search`` as Tune does: keep ``concurrent`` trials pending, tell the oldest."""
    pending: dict[str, dict] = {}
    configs = []
    for number in range(n_trials):
        pending[f"{prefix}{number}"] = search.suggest(f"{prefix}{number}")
        if len(pending) == concurrent or number == n_trials - 1:
            trial_id = next(iter(pending))
            config = pending.pop(trial_id)
            search.on_trial_complete(trial_id, objective(config))
            configs.append(config)
    for trial_id, config in pending.items():
        search.on_trial_complete(trial_id, objective(config))
        configs.append(config)
    return configs


def bits_objective(config: dict) -> dict:
    return {"energy": qubo_value([config[f"b{i}"] for i in range(N_BITS)])}


def test_tuner_reaches_the_optimum_with_two_trials_at_a_time(
    local_ray: Any, tmp_path: Path
) -> None:
    def trainable(config: dict) -> dict:
        return {"energy": qubo_value([config[f"b{i}"] for i in range(N_BITS)])}

    storage = optuna.storages.InMemoryStorage()
    search = OptunaSearch(
        sampler=fast_sampler(), metric="energy", mode="min", storage=storage, study_name=STUDY
    )
    tuner = tune.Tuner(
        trainable,
        param_space={f"b{i}": tune.randint(0, 2) for i in range(N_BITS)},
        tune_config=tune.TuneConfig(
            search_alg=search, num_samples=30, max_concurrent_trials=2, reuse_actors=True
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="qubo", verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    assert results.get_best_result("energy", "min").metrics["energy"] == OPTIMUM
    configs = [tuple(sorted(r.config.items())) for r in results]
    assert len(configs) == 30
    assert len(set(configs)) == 30, "a point was evaluated twice"
    # The searcher, sampler included, was pickled into the experiment checkpoint.
    assert list((tmp_path / "qubo").glob("searcher-state-*.pkl"))
    phases = [t.system_attrs.get("qopt:phase") for t in study_of(storage).trials]
    assert phases.count("model") >= 15


def define_by_run_space(trial: optuna.Trial) -> dict:
    """A conditional space. OptunaSearch pickles it with the searcher at each experiment
    checkpoint, so it lives at module level (a local function cannot be pickled)."""
    model = trial.suggest_categorical("model", ["svc", "knn"])
    if model == "svc":
        trial.suggest_float("C", 1e-3, 1e3, log=True)
    else:
        trial.suggest_int("k", 1, 15)
    trial.suggest_int("layers", 0, 7)
    return {"epochs": 3}


def test_tuner_with_a_define_by_run_space(local_ray: Any, tmp_path: Path) -> None:
    def trainable(config: dict) -> dict:
        loss = (config["layers"] - 4) ** 2 + (0.5 if config["model"] == "knn" else 0.0)
        return {"loss": loss + config.get("k", 0) / 100}

    storage = optuna.storages.InMemoryStorage()
    search = OptunaSearch(
        define_by_run_space,
        sampler=fast_sampler(n_startup_trials=4, warn_independent_sampling=False),
        metric="loss",
        mode="min",
        storage=storage,
        study_name=STUDY,
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search, num_samples=10, max_concurrent_trials=2, reuse_actors=True
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="dbr", verbose=0),
    )
    results = tuner.fit()
    assert not results.errors
    for result in results:
        assert result.config["epochs"] == 3
        assert ("C" in result.config) == (result.config["model"] == "svc")
        assert ("k" in result.config) == (result.config["model"] == "knn")
    # The unconditional parameters were modelled; C and k went to the independent sampler.
    model_trials = [
        t for t in study_of(storage).trials if t.system_attrs.get("qopt:phase") == "model"
    ]
    assert model_trials


@pytest.mark.parametrize("trust_region", [None, 2])
def test_pending_trials_are_never_proposed_twice(trust_region: int | None) -> None:
    space = {f"b{i}": IntDistribution(0, 1) for i in range(N_BITS)}
    storage = optuna.storages.InMemoryStorage()
    search = OptunaSearch(
        space,
        sampler=fast_sampler(trust_region=trust_region),
        metric="energy",
        mode="min",
        storage=storage,
        study_name=STUDY,
    )
    configs = run_trials(search, bits_objective, n_trials=40, concurrent=4)
    assert len({tuple(sorted(c.items())) for c in configs}) == 40
    study = study_of(storage)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    # Model proposals made while three others were running saw them as pending points and
    # claimed their own in the study.
    claimed = [t for t in study.trials if "qopt:claim" in t.system_attrs]
    assert len(claimed) >= 30
    assert min(c["energy"] for c in map(bits_objective, configs)) == OPTIMUM
    if trust_region is not None:  # the model proposals came from the ball around the best
        candidates = [str(t.system_attrs.get("qopt:candidate")) for t in study.trials]
        assert sum(c.startswith("trust-region") for c in candidates) >= 15


def test_searcher_restored_from_its_checkpoint_proposes_as_if_never_stopped(
    tmp_path: Path,
) -> None:
    space = {f"b{i}": IntDistribution(0, 1) for i in range(N_BITS)}

    def searcher() -> OptunaSearch:
        return OptunaSearch(space, sampler=fast_sampler(), metric="energy", mode="min")

    straight = searcher()
    expected = run_trials(straight, bits_objective, n_trials=16, concurrent=1)

    first = searcher()
    run_trials(first, bits_objective, n_trials=10, concurrent=1)
    first.save_to_dir(str(tmp_path))  # what Tune writes at each experiment checkpoint
    restored = searcher()
    restored.restore_from_dir(str(tmp_path))  # what Tuner.restore reads
    resumed = run_trials(restored, bits_objective, n_trials=6, concurrent=1, prefix="r")
    assert resumed == expected[10:]


def test_multi_objective_search_finds_the_pareto_front() -> None:
    # Near (3, 3) and near (12, 12) on a 16 x 16 grid (the second as a negated distance to
    # maximize): the Pareto set is the band of points between them.
    space = {"x": IntDistribution(0, 15), "y": IntDistribution(0, 15)}

    def objective(config: dict) -> dict:
        x, y = config["x"], config["y"]
        return {"near": (x - 3) ** 2 + (y - 3) ** 2, "far": -((x - 12) ** 2) - (y - 12) ** 2}

    grid = [{"x": x, "y": y} for x in range(16) for y in range(16)]
    values = {(c["x"], c["y"]): (objective(c)["near"], -objective(c)["far"]) for c in grid}
    pareto = {
        p
        for p, v in values.items()
        if not any(w[0] <= v[0] and w[1] <= v[1] and w != v for w in values.values())
    }

    storage = optuna.storages.InMemoryStorage()
    search = OptunaSearch(
        space,
        sampler=fast_sampler(),
        metric=["near", "far"],
        mode=["min", "max"],
        storage=storage,
        study_name=STUDY,
    )
    run_trials(search, objective, n_trials=30, concurrent=2)
    study = study_of(storage)
    assert len(study.directions) == 2
    front = {(t.params["x"], t.params["y"]) for t in study.best_trials}
    # ParEGO's random scalarizations spread the trials along the front: on seeds 0-5, 5 to 11
    # of the 28 Pareto points in 30 trials (random search: 1 to 6).
    assert len(front & pareto) >= 5
    phases = [t.system_attrs.get("qopt:phase") for t in study.trials]
    assert phases.count("model") >= 15


def test_an_exhausted_grid_says_once_how_many_trials_to_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # OptunaSearch asks and tells: the study has no optimize loop that QuboSampler could stop.
    search = OptunaSearch(
        {"x": IntDistribution(0, 3)}, sampler=fast_sampler(), metric="loss", mode="min"
    )
    with caplog.at_level("WARNING", logger="qopt.integrations.optuna._sampler"):
        configs = run_trials(search, lambda c: {"loss": float(c["x"])}, n_trials=8, concurrent=1)
    assert {c["x"] for c in configs[:4]} == {0, 1, 2, 3}
    said = [r.getMessage() for r in caplog.records if "cannot stop this study" in r.getMessage()]
    assert len(said) == 1
    assert "num_samples=4" in said[0]
