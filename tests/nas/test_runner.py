from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest

from qopt.exceptions import (
    InvalidProblemError,
    RunDirectoryBusyError,
    SolverConfigurationError,
    SolverUnavailableError,
    StorageUnavailableError,
)
from qopt.nas import (
    Budget,
    Choice,
    Objective,
    PairCost,
    SearchSpace,
    export,
    nas_bench_201_space,
    run_search,
    status,
)
from qopt.nas import _runner as runner
from qopt.nas._runner import load_run
from qopt.nas._samplers import QUBO_DEFAULTS, ArchitectureCodec, trial_architecture

ROOT = Path(__file__).resolve().parents[2]


def toy_space(evaluate: str = "tests.nas._entry:build", max_params: float = 2048) -> SearchSpace:
    """Two widths whose weights between them (w1 * w2) are a quadratic budget."""
    return SearchSpace(
        [
            Choice.integers("w1", 16, 64, step=16),
            Choice("w2", "ordinal", (16, 32, 48, 64)),
            Choice("act", "categorical", ("relu", "gelu", "tanh")),
        ],
        budgets=[
            Budget(
                "params",
                max_params,
                kind="params",
                pairs=(PairCost("w1", "w2", coefficient=1.0),),
                costs={"act": {"gelu": 16}},
            )
        ],
        objectives=[Objective("loss", "minimize")],
        evaluate=evaluate,
        name="toy",
    )


def evaluated(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    study, _, _ = load_run(run_dir)
    return [
        t
        for t in study.get_trials()
        if t.state == optuna.trial.TrialState.COMPLETE
        or t.user_attrs.get("qopt_nas:status") == "error"
    ]


@pytest.mark.parametrize("sampler", ["qubo", "random", "evolution", "local", "tpe", "nsga2"])
def test_no_evaluated_architecture_is_over_a_linear_budget(sampler: str) -> None:
    space = nas_bench_201_space(max_mparams=0.5)
    summary = run_search(space, sampler=sampler, n_trials=25, seed=1)
    assert summary.n_evaluated == 25
    assert summary.n_over_budget_evaluated == 0
    assert summary.best[0]["within_budget"]
    if sampler in ("qubo", "random", "evolution", "local"):
        # The budget is known to the sampler: no proposal is over it at all.
        assert summary.n_rejected == 0


def test_quadratic_budget_is_never_exceeded_by_the_qubo_sampler(tmp_path: Path) -> None:
    space = toy_space()
    codec = ArchitectureCodec(space)
    relaxed = [c for c in codec.constraints() if "relaxed" in (c.label or "")]
    assert len(relaxed) == 1
    # The linear relaxation cuts off no architecture that meets the exact budget.
    for arch in space.iter_architectures():
        positions = space.positions(arch)
        lhs = sum(costs[positions[name]] for name, costs in relaxed[0].terms.items())  # type: ignore[index]
        if space.within_budget(arch):
            assert relaxed[0].violation(lhs) == 0.0
    summary = run_search(space, run_dir=tmp_path, sampler="qubo", n_trials=20, seed=0)
    trials = evaluated(tmp_path)
    assert len(trials) == summary.n_evaluated == 20
    assert all(space.within_budget(trial_architecture(t) or {}) for t in trials)
    assert summary.n_over_budget_evaluated == 0
    # Repairs of rejected proposals move on to architectures not yet tried: no repeats.
    keys = [json.dumps(trial_architecture(t), sort_keys=True) for t in trials]
    assert len(set(keys)) == len(keys)


def test_repairs_of_tpe_proposals_are_not_repeats(tmp_path: Path) -> None:
    space = toy_space()  # 34 of 48 architectures fit: enough to never need a repeat
    summary = run_search(space, run_dir=tmp_path, sampler="tpe", n_trials=25, seed=0)
    assert summary.n_rejected > 0  # TPE does not know the budget
    seen: set[str] = set()
    repairs = 0
    for t in sorted(evaluated(tmp_path), key=lambda t: t.number):
        key = json.dumps(trial_architecture(t), sort_keys=True)
        if "qopt_nas:repair_of" in t.user_attrs:
            repairs += 1
            assert key not in seen, t.number  # (TPE itself may repeat; a repair never does)
        seen.add(key)
    assert repairs == summary.n_rejected


def test_failing_and_nan_trials_are_recorded_and_the_search_goes_on(tmp_path: Path) -> None:
    space = toy_space("tests.nas._entry:flaky")
    summary = run_search(space, run_dir=tmp_path, sampler="random", n_trials=24, seed=0)
    assert summary.n_evaluated == 24
    assert summary.n_failed > 0 and summary.n_complete > 0
    study, _, _ = load_run(tmp_path)
    errors = [t.user_attrs["qopt_nas:error"] for t in study.trials if t.state.name == "FAIL"]
    assert any("out of memory" in e for e in errors)
    assert any("finite" in e for e in errors)  # the NaN
    assert summary.best[0]["architecture"]["w1"] not in (16, 32)


def test_resume_keeps_every_finished_trial(tmp_path: Path) -> None:
    space = toy_space()
    run_search(space, run_dir=tmp_path, sampler="evolution", n_trials=8, seed=0)
    before = {t.number: (t.params, t.values) for t in evaluated(tmp_path)}
    assert len(before) == 8
    summary = run_search(space, run_dir=tmp_path, sampler="evolution", n_trials=14, seed=0)
    after = {t.number: (t.params, t.values) for t in evaluated(tmp_path)}
    assert summary.n_evaluated == len(after) == 14
    assert all(after[n] == before[n] for n in before)
    with pytest.raises(SolverConfigurationError, match="--sampler evolution"):
        run_search(space, run_dir=tmp_path, sampler="tpe", n_trials=20)
    with pytest.raises(InvalidProblemError, match="spec differs"):
        run_search(toy_space(max_params=3000), run_dir=tmp_path, sampler="evolution", n_trials=20)


def test_a_killed_run_resumes_without_losing_finished_trials(tmp_path: Path) -> None:
    space = toy_space("tests.nas._entry:slow", max_params=4096)
    spec = tmp_path / "space.json"
    spec.write_text(json.dumps(space.to_dict()))
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "qopt.cli",
        "nas",
        str(spec),
        "--run-dir",
        str(run_dir),
        "--trials",
        "40",
        "--sampler",
        "random",
        "--seed",
        "0",
        "--no-progress",
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if (run_dir / "journal.log").exists() and len(evaluated(run_dir)) >= 5:
            break
    process.kill()
    process.wait()
    before = {t.number: (t.params, t.values) for t in evaluated(run_dir)}
    assert 5 <= len(before) < 40
    summary = run_search(space, run_dir=run_dir, sampler="random", n_trials=40, seed=0)
    after = {t.number: (t.params, t.values) for t in evaluated(run_dir)}
    assert summary.n_evaluated == len(after) == 40
    assert all(after[n] == before[n] for n in before)
    assert summary.n_interrupted <= 1  # the trial that was running at the kill
    assert status(run_dir).n_evaluated == 40


def test_a_dead_workers_trial_on_a_database_is_failed_and_its_evaluation_made_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker on a shared database is killed while it evaluates; another worker (a resume
    # here) must see its heartbeat stop, fail the trial and evaluate one more in its place.
    space = toy_space("tests.nas._entry:sleepy", max_params=4096)
    spec = tmp_path / "space.json"
    spec.write_text(json.dumps(space.to_dict()))
    run_dir = tmp_path / "run"
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    command = [sys.executable, "-m", "qopt.cli", "nas", str(spec), "--run-dir", str(run_dir)]
    command += ["--storage", url, "--trials", "40", "--sampler", "random", "--seed", "0"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    worker = subprocess.Popen([*command, "--no-progress"], cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    running: list[optuna.trial.FrozenTrial] = []
    storage = None  # one connection for the polls: fewer locks on the worker's database
    while time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.2)
        if not (run_dir / "run.json").exists():  # written once the database is made
            continue
        try:
            storage = storage or optuna.storages.RDBStorage(url)
            trials = optuna.load_study(study_name=space.name, storage=storage).trials
        except KeyError:  # the study is not created yet
            continue
        done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
        if done >= 2 and running and running[0].params:  # killed in the middle of evaluating
            break
    worker.kill()
    assert worker.wait() == -9, "the worker ended before it could be killed"
    assert len(running) == 1
    dead = running[0].number
    before = {t.number: (t.params, t.values) for t in evaluated(run_dir)}
    monkeypatch.setattr(runner, "HEARTBEAT_INTERVAL_S", 1)
    monkeypatch.setattr(runner, "GRACE_PERIOD_S", 2)
    n_trials = len(before) + 1  # one slot left: held by the dead trial until it is failed
    summary = run_search(space, run_dir=run_dir, storage=url, sampler="random", n_trials=n_trials)
    after = {t.number: (t.params, t.values) for t in evaluated(run_dir)}
    assert summary.n_evaluated == len(after) == n_trials
    assert all(after[n] == before[n] for n in before)
    assert summary.n_interrupted == 1
    stored = {t.number: t for t in optuna.load_study(study_name=space.name, storage=url).trials}
    assert stored[dead].state == optuna.trial.TrialState.FAIL
    assert not any(t.state == optuna.trial.TrialState.RUNNING for t in stored.values())
    assert status(run_dir).n_interrupted == 1


def test_a_running_trial_that_never_beat_is_failed_after_the_grace_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker that kept no heartbeats (an older qopt) died with a trial running: no
    # heartbeat will ever go stale, so the trial is failed once it is older than the grace
    # period instead of holding its slot (and the workers waiting on it) for ever.
    space = toy_space(max_params=4096)
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    run_search(space, run_dir=tmp_path, storage=url, sampler="random", n_trials=3, seed=0)
    silent = optuna.load_study(study_name=space.name, storage=url).ask()
    monkeypatch.setattr(runner, "HEARTBEAT_INTERVAL_S", 1)
    monkeypatch.setattr(runner, "GRACE_PERIOD_S", 1)
    time.sleep(1.5)
    summary = run_search(space, run_dir=tmp_path, storage=url, sampler="random", n_trials=4)
    assert summary.n_evaluated == 4 and summary.n_interrupted == 1
    stored = optuna.load_study(study_name=space.name, storage=url).trials[silent.number]
    assert stored.state == optuna.trial.TrialState.FAIL


def test_two_workers_share_one_journal_without_lost_or_duplicated_trials(tmp_path: Path) -> None:
    space = toy_space(max_params=4096)
    summary = run_search(space, run_dir=tmp_path, sampler="random", n_trials=20, workers=2, seed=0)
    study, _, _ = load_run(tmp_path)
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == max(numbers) + 1
    assert all(t.state.is_finished() for t in trials)
    assert 20 <= summary.n_evaluated <= 21  # a worker may start one trial as the other ends
    # Random search never repeats an architecture it can see; the only repeat possible is a
    # race, two trials sampled at the same moment by the two workers, so they overlap in time.
    first: dict[str, optuna.trial.FrozenTrial] = {}
    for t in sorted(trials, key=lambda t: t.number):
        key = json.dumps(trial_architecture(t), sort_keys=True)
        if key in first:
            earlier = first[key]
            assert earlier.datetime_complete is not None and t.datetime_start is not None
            assert t.datetime_start <= earlier.datetime_complete, (earlier.number, t.number)
        first.setdefault(key, t)
    best = export(tmp_path, tmp_path / "best.json")
    assert json.loads((tmp_path / "best.json").read_text()) == best


@pytest.mark.skipif(
    not os.environ.get("QOPT_TEST_POSTGRES_URL"), reason="set QOPT_TEST_POSTGRES_URL to run"
)
def test_two_workers_on_postgresql(tmp_path: Path) -> None:
    url = os.environ["QOPT_TEST_POSTGRES_URL"]
    space = toy_space(max_params=4096)
    space.name = f"toy-{os.getpid()}-{time.time_ns()}"
    summary = run_search(
        space, run_dir=tmp_path, storage=url, sampler="random", n_trials=20, workers=2, seed=0
    )
    study = optuna.load_study(study_name=space.name, storage=url)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers)) == max(numbers) + 1
    assert all(t.state.is_finished() for t in study.trials)
    assert 20 <= summary.n_evaluated <= 21
    assert status(tmp_path).n_evaluated == summary.n_evaluated


def _open_together(url: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        runner._open_storage(None, url)
        results.put("ok")
    except Exception as error:  # reported to the test, which names it
        results.put(f"{type(error).__name__}: {error}"[:300])


@pytest.mark.skipif(
    not os.environ.get("QOPT_TEST_POSTGRES_URL"), reason="set QOPT_TEST_POSTGRES_URL to run"
)
def test_runners_started_together_on_an_empty_database() -> None:
    # Runners on several machines start at once on a fresh database: all of them race to
    # create Optuna's tables and PostgreSQL enum types; the losers used to fail.
    import multiprocessing

    import sqlalchemy

    server, _, _ = os.environ["QOPT_TEST_POSTGRES_URL"].rpartition("/")
    name = f"qopt_race_{os.getpid()}_{time.time_ns()}"
    admin = sqlalchemy.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    try:
        context = multiprocessing.get_context("fork")
        barrier, results = context.Barrier(3), context.Queue()
        workers = [
            context.Process(target=_open_together, args=(f"{server}/{name}", barrier, results))
            for _ in range(3)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert [results.get(timeout=5) for _ in workers] == ["ok"] * 3
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def test_unreachable_storage_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SolverUnavailableError, match="Check that the database server runs"):
        run_search(toy_space(), storage="postgresql://user:secret@127.0.0.1:1/none", n_trials=2)


def test_bad_options() -> None:
    with pytest.raises(SolverConfigurationError, match="'sampler' parameter"):
        run_search(toy_space(), sampler="bayes")
    with pytest.raises(SolverConfigurationError, match="needs run_dir or storage"):
        run_search(toy_space(), workers=2)
    with pytest.raises(InvalidProblemError, match="cannot import module"):
        run_search(toy_space("tests.nas.missing:build"), n_trials=2)


def test_qubo_trust_region_proposals_come_from_the_ball_qubo(tmp_path: Path) -> None:
    # The architecture-search default: the annealer minimizes the surrogate over the ball of
    # radius 3 around the incumbent (a linear constraint of the QUBO, beside the budget).
    radius = QUBO_DEFAULTS["trust_region"]
    assert radius == 3
    space = nas_bench_201_space(max_mparams=0.5)
    summary = run_search(space, run_dir=tmp_path, sampler="qubo", n_trials=20, seed=0)
    assert summary.n_rejected == 0 and summary.n_over_budget_evaluated == 0
    study, _, _ = load_run(tmp_path)
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    model = [t for t in trials if t.system_attrs.get("qopt:phase") == "model"]
    assert len(model) >= 10
    used: set[int] = set()
    for t in model:
        assert str(t.system_attrs["qopt:candidate"]).startswith("trust-region")
        assert t.system_attrs["qopt:qubo_variables"] > 30  # 30 op bits plus slack
        earlier = [u for u in trials if u.number < t.number and u.values is not None]
        best = max(earlier, key=lambda u: (u.values[0], -u.number))
        changes = sum(t.params[k] != best.params[k] for k in t.params)
        assert 1 <= changes <= radius
        used.add(changes)
    assert radius in used  # the outer ring is reached, not only the radius-2 ball
    solved = [t for t in model if not t.system_attrs["qopt:trust_fallback"]]
    assert len(solved) >= len(model) // 2  # the solver, not the enumeration, did most


def test_a_refused_resume_leaves_the_run_as_it_was(tmp_path: Path) -> None:
    space = toy_space(max_params=4096)
    run_search(space, run_dir=tmp_path, sampler="evolution", n_trials=6, seed=0)
    files = {name: (tmp_path / name).read_bytes() for name in ("run.json", "spec.json")}
    smaller = toy_space(max_params=1000)  # some evaluated architectures are over this budget
    with pytest.raises(InvalidProblemError, match="spec differs"):
        run_search(smaller, run_dir=tmp_path, sampler="evolution", n_trials=8)
    with pytest.raises(SolverConfigurationError, match="--sampler evolution"):
        run_search(space, run_dir=tmp_path, sampler="tpe", n_trials=8)
    with pytest.raises(StorageUnavailableError, match="without --storage"):
        run_search(space, run_dir=tmp_path, storage=f"sqlite:///{tmp_path / 'x.db'}", n_trials=8)
    other = toy_space(max_params=4096)
    other.name = "other"
    with pytest.raises(InvalidProblemError, match="holds the search 'toy'"):
        run_search(other, run_dir=tmp_path, sampler="evolution", n_trials=8)
    assert {name: (tmp_path / name).read_bytes() for name in files} == files
    summary = status(tmp_path)
    assert (summary.sampler, summary.n_evaluated, summary.n_over_budget_evaluated) == (
        "evolution",
        6,
        0,
    )
    assert export(tmp_path)[0]["within_budget"]


def test_a_search_that_cannot_start_writes_no_run_files(tmp_path: Path) -> None:
    url = "postgresql://user:secret@127.0.0.1:1/none"
    with pytest.raises(StorageUnavailableError, match="Check that the database server runs"):
        run_search(toy_space(), run_dir=tmp_path / "run", storage=url, n_trials=2)
    with pytest.raises(InvalidProblemError, match="cannot import module"):
        run_search(toy_space("tests.nas.missing:build"), run_dir=tmp_path / "run", n_trials=2)
    assert not (tmp_path / "run" / "run.json").exists()
    assert not (tmp_path / "run" / "spec.json").exists()


def test_a_run_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StorageUnavailableError, match="Cannot create the run directory"):
        run_search(toy_space(), run_dir=tmp_path / "file", n_trials=2)


def test_a_second_runner_on_a_run_directory_is_refused_and_the_first_finishes(
    tmp_path: Path,
) -> None:
    space = toy_space("tests.nas._entry:slow", max_params=4096)
    spec = tmp_path / "space.json"
    spec.write_text(json.dumps(space.to_dict()))
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "qopt.cli", "nas", str(spec), "--run-dir", str(run_dir)]
    command += ["--trials", "30", "--sampler", "random", "--seed", "0", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    first = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
        if (run_dir / "run.json").exists() and len(evaluated(run_dir)) >= 3:
            break
    assert first.poll() is None, "the first runner ended before a second one could start"
    with pytest.raises(RunDirectoryBusyError, match="--workers N"):
        run_search(space, run_dir=run_dir, sampler="random", n_trials=30, seed=0)
    _, errors = first.communicate(timeout=120)
    assert first.returncode == 0, errors
    summary = status(run_dir)
    assert (summary.n_evaluated, summary.n_interrupted) == (30, 0)


def test_runners_on_a_database_share_a_run_directory_a_journal_runner_does_not(
    tmp_path: Path,
) -> None:
    space = toy_space(max_params=4096)
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    run_search(space, run_dir=tmp_path, storage=url, sampler="random", n_trials=2, seed=0)
    with runner._hold_run_dir(tmp_path, shared=True):  # another runner on the database
        summary = run_search(space, run_dir=tmp_path, storage=url, sampler="random", n_trials=4)
        assert summary.n_evaluated == 4
        with pytest.raises(RunDirectoryBusyError, match="in use by another qopt nas runner"):
            run_search(space, run_dir=tmp_path, sampler="random", n_trials=4)


def test_sys_exit_in_the_objective_fails_that_trial_and_the_search_goes_on() -> None:
    calls = []

    def objective(architecture: dict[str, object]) -> float:
        calls.append(architecture)
        if len(calls) in (2, 4):
            sys.exit(3)
        return float(len(calls))

    summary = run_search(
        toy_space(max_params=4096), sampler="random", n_trials=6, objective=objective
    )
    assert (summary.n_evaluated, summary.n_complete, summary.n_failed) == (6, 4, 2)
    assert summary.failures == [
        {"reason": "SystemExit", "count": 2, "trial": 1, "message": "SystemExit: 3"}
    ]


def test_ctrl_c_stops_the_search_and_fails_the_running_trial(tmp_path: Path) -> None:
    calls = []

    def objective(architecture: dict[str, object]) -> float:
        calls.append(architecture)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return float(len(calls))

    space = toy_space(max_params=4096)
    with pytest.raises(KeyboardInterrupt):
        run_search(space, run_dir=tmp_path, sampler="random", n_trials=6, objective=objective)
    summary = status(tmp_path)
    assert (summary.n_evaluated, summary.n_interrupted) == (2, 1)
    study, _, _ = load_run(tmp_path)
    assert all(t.state.is_finished() for t in study.get_trials())
    summary = run_search(space, run_dir=tmp_path, sampler="random", n_trials=6, objective=objective)
    assert (summary.n_evaluated, summary.n_interrupted) == (6, 1)


def test_failure_reasons_are_counted_most_frequent_first(tmp_path: Path) -> None:
    summary = run_search(
        toy_space("tests.nas._entry:flaky", 4096), run_dir=tmp_path, sampler="random",
        n_trials=24, seed=0,
    )  # fmt: skip
    reasons = {f["reason"]: f for f in summary.failures}
    assert set(reasons) == {"RuntimeError", "InvalidProblemError"}  # raised, and the NaN
    assert sum(f["count"] for f in summary.failures) == summary.n_failed
    assert [f["count"] for f in summary.failures] == sorted(
        (f["count"] for f in summary.failures), reverse=True
    )
    assert "out of memory" in reasons["RuntimeError"]["message"]
    assert status(tmp_path).failures == summary.failures


def test_what_a_killed_runner_leaves_in_the_journal_does_not_stall_or_break_a_resume(
    tmp_path: Path,
) -> None:
    space = toy_space(max_params=4096)
    run_search(space, run_dir=tmp_path, sampler="random", n_trials=3, seed=0)
    # Optuna's journal lock (a symlink) held by the dead runner, and half a record.
    os.symlink(tmp_path / "journal.log", tmp_path / "journal.log.lock")
    with (tmp_path / "journal.log").open("ab") as journal:
        journal.write(b'{"op_code": 4, "worker_id": "dead", "study_id": 0, "datetime_st')
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warns when it forcibly releases a stale lock
        summary = run_search(space, run_dir=tmp_path, sampler="random", n_trials=6, seed=0)
    assert summary.n_evaluated == 6
    assert status(tmp_path).n_evaluated == 6


def test_a_worker_killed_as_its_trial_starts_beating_leaves_a_trial_that_is_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker dies after the first of the two writes that start a trial's heartbeats
    # (the first heartbeat, the heartbeat mark): whichever it was, the trial must not run
    # for ever, holding its slot.
    space = toy_space(max_params=4096)
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    run_search(space, run_dir=tmp_path, storage=url, sampler="random", n_trials=2, seed=0)
    monkeypatch.setattr(runner, "HEARTBEAT_INTERVAL_S", 1)
    monkeypatch.setattr(runner, "GRACE_PERIOD_S", 1)

    class Killed(BaseException):
        pass

    record = optuna.storages.RDBStorage.record_heartbeat
    attr = optuna.storages.RDBStorage.set_trial_user_attr

    def record_then_die(self: optuna.storages.RDBStorage, trial_id: int) -> None:
        record(self, trial_id)
        raise Killed

    def set_attr(self: optuna.storages.RDBStorage, trial_id: int, key: str, value: Any) -> None:
        attr(self, trial_id, key, value)
        if key == runner._BEATING:
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(optuna.storages.RDBStorage, "record_heartbeat", record_then_die)
        patch.setattr(optuna.storages.RDBStorage, "set_trial_user_attr", set_attr)
        with pytest.raises(Killed):
            run_search(space, run_dir=tmp_path, storage=url, sampler="random", n_trials=3)
    time.sleep(1.5)
    store = runner._open_storage(None, url)
    study = optuna.load_study(study_name=space.name, storage=store)
    runner._fail_stale(study, store)
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    summary = run_search(space, run_dir=tmp_path, storage=url, sampler="random", n_trials=3)
    assert (summary.n_evaluated, summary.n_interrupted) == (3, 1)
