"""The search runner: an Optuna study in a run directory (or a database), resumable, parallel.

Imported lazily by :mod:`qopt.nas`; imports Optuna at top level.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import math
import multiprocessing
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import sqlalchemy
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from qopt.exceptions import (
    FileFormatError,
    InvalidInputError,
    InvalidProblemError,
    RunDirectoryBusyError,
    SolverConfigurationError,
    SolverUnavailableError,
    StorageUnavailableError,
)
from qopt.nas._objectives import import_entry, objective_values, resolve_evaluator
from qopt.nas._samplers import ARCH_ATTR, SAMPLERS, make_sampler, trial_architecture
from qopt.nas._spec import Choice, SearchSpace, Training

__all__ = [
    "STATUS_ATTR",
    "RunSummary",
    "SearchJob",
    "StorageUnavailableError",
    "export",
    "export_model",
    "load_model",
    "load_run",
    "make_pruner",
    "open_study",
    "run_search",
    "run_worker",
    "status",
    "summarize",
    "trial_record",
]

#: User attribute of a trial's verdict when it is not simply complete: "rejected" (over budget,
#: never evaluated), "error" (the evaluation raised or returned NaN), "pruned", "taken" (a
#: queued architecture another worker holds, never evaluated here), or "interrupted" (its
#: worker died before a verdict; also any FAIL without this attribute).
STATUS_ATTR = "qopt_nas:status"
_JOURNAL = "journal.log"
#: File in a run directory that its runner holds locked (see ``_hold_run_dir``).
_RUNNER_LOCK = "runner.lock"
#: On a database storage each running trial records a heartbeat every HEARTBEAT_INTERVAL_S
#: seconds; a trial silent for GRACE_PERIOD_S (its worker was killed) is failed by any other
#: worker of the study, and its evaluation is made up.
HEARTBEAT_INTERVAL_S = 30
GRACE_PERIOD_S = 120
#: User attribute of a failed evaluation's reason: "ExceptionType: message".
_ERROR_ATTR = "qopt_nas:error"
#: User attribute of every trial whose heartbeat is recorded.
_BEATING = "qopt_nas:heartbeat"


@dataclass
class RunSummary:
    """Where a search stands.

    Attributes:
        study: Study name.
        sampler: Sampler name.
        n_evaluated: Architectures evaluated (completed or failed while evaluating).
        n_complete: Completed trials.
        n_failed: Trials whose evaluation raised or returned NaN (recorded, search went on).
        n_rejected: Proposals over budget, rejected before evaluation (repaired and enqueued).
        n_over_budget_evaluated: Evaluated architectures over a budget (always 0).
        n_interrupted: Trials that were running when a previous run was killed.
        n_pruned: Trials stopped early by the pruner (counted as evaluated).
        best: The best trial (one objective) or the Pareto front (several), as dicts with
            ``architecture``, ``values``, ``costs`` and ``trial``.
        failures: Why evaluations failed: one dict per exception type, most frequent first,
            with ``reason`` (the type), ``count``, and the ``trial`` and ``message`` of its
            first occurrence.
    """

    study: str
    sampler: str
    n_evaluated: int
    n_complete: int
    n_failed: int
    n_rejected: int
    n_over_budget_evaluated: int
    n_interrupted: int
    n_pruned: int = 0
    best: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready)."""
        return asdict(self)


# ---------------------------------------------------------------------- storage
def _open_storage(
    run_dir: Path | None, storage: str | None, *, workers: bool = True
) -> BaseStorage:
    """The database at ``storage``, else the run directory's journal file, else memory.

    ``workers``: opened by a search (whose workers take queued trials), not only to read it.
    """
    try:
        if storage is not None:
            with warnings.catch_warnings():
                # Heartbeats are how a killed worker's trial is failed on a shared database.
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                database = _rdb_storage(storage)
            if workers and database.engine.dialect.name == "sqlite":
                _lock_when_beginning(database.engine)
            return database
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(run_dir / _JOURNAL)))
    except Exception as error:  # SQLAlchemy/OS errors vary by backend
        where = storage if storage is not None else str(run_dir)
        raise StorageUnavailableError(
            f"Cannot open the study storage '{_redact(where)}': {type(error).__name__}: {error}. "
            "Check that the database server runs and the URL (user, password, host, port, "
            "database) is right, or drop --storage to use the run directory's journal file."
        ) from error
    return InMemoryStorage()


#: SQLite waits this long for another worker's write lock (pysqlite's default is 5 s).
_SQLITE_ENGINE = {"connect_args": {"timeout": 60.0}}


def _rdb_storage(url: str, attempts: int = 5) -> RDBStorage:
    """Optuna's database storage at ``url``, retried while another runner creates its tables.

    Runners started together on an empty database race to create Optuna's tables (and, on
    PostgreSQL, its enum types); the losers get an ``IntegrityError`` although the tables now
    exist, so opening again succeeds.
    """
    for attempt in range(1, attempts):
        try:
            return _new_rdb_storage(url)
        except sqlalchemy.exc.IntegrityError:
            time.sleep(0.2 * attempt)
    return _new_rdb_storage(url)


def _new_rdb_storage(url: str) -> RDBStorage:
    return RDBStorage(
        url,
        heartbeat_interval=HEARTBEAT_INTERVAL_S,
        grace_period=GRACE_PERIOD_S,
        engine_kwargs=_SQLITE_ENGINE if url.startswith("sqlite") else None,
    )


def _lock_when_beginning(engine: sqlalchemy.engine.Engine) -> None:
    """Make every SQLite transaction take the write lock when it begins (BEGIN IMMEDIATE).

    Optuna takes a queued trial by reading that it is waiting and then marking it running, in
    one transaction that locks the row (SELECT ... FOR UPDATE). SQLite has no row locks and
    its default transactions lock only at the first write, so two workers could both read the
    trial as waiting and both take it. With the lock taken first, the second worker reads it
    running and takes another. (SQLAlchemy's documented recipe for SQLite transactions.)
    """

    @sqlalchemy.event.listens_for(engine, "connect")
    def no_implicit_begin(connection: Any, record: Any) -> None:
        connection.isolation_level = None  # pysqlite's own BEGIN comes too late

    @sqlalchemy.event.listens_for(engine, "begin")
    def begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners


def _redact(url: str) -> str:
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def _run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    if not path.exists():
        raise InvalidProblemError(
            f"'{run_dir}' is not a qopt nas run directory (no run.json); pass the --run-dir of a "
            "search started with 'qopt nas SPEC'."
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise FileFormatError(
            f"'{path}' cannot be read as a qopt nas run ({type(error).__name__}: {error}); "
            "start the search in another --run-dir."
        ) from error
    if not isinstance(config, dict) or not isinstance(config.get("study"), str):
        raise FileFormatError(
            f"'{path}' is not a qopt nas run file (no study name); start the search in "
            "another --run-dir."
        )
    return config


@contextlib.contextmanager
def _hold_run_dir(path: Path | None, *, shared: bool) -> Iterator[None]:
    """Hold the run directory ``path`` (created if needed) while a runner uses it.

    On the run directory's journal file a run directory has one runner at a time (its
    ``workers`` are that runner's processes): the runner holds an exclusive ``flock`` on
    :data:`_RUNNER_LOCK`, which the kernel releases when the runner ends, however it ends.
    Runners whose study is on a database (``shared``) may share a run directory: they hold
    the lock shared, which still keeps out a runner on the journal.
    """
    if path is None:
        yield
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
        lock = (path / _RUNNER_LOCK).open("a")
    except OSError as error:
        raise StorageUnavailableError(
            f"Cannot create the run directory '{path}' ({type(error).__name__}: {error}); pass "
            "a --run-dir that can be created."
        ) from error
    with lock:
        try:
            fcntl.flock(lock, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirectoryBusyError(
                f"Run directory '{path}' is in use by another qopt nas runner, and a run "
                "directory has one runner at a time. Wait for that runner to finish (or stop "
                "it: finished trials are kept and the next start resumes), run several "
                "processes in one runner with --workers N, or share one search between "
                "runners and machines through a database: --storage postgresql://... with "
                "one --run-dir per runner."
            ) from None
        if not shared:
            _clear_journal(path)
        yield


def _clear_journal(path: Path) -> None:
    """What a killed runner can leave in its run directory's journal, cleared.

    Called holding the run directory exclusively, so no process writes the journal: Optuna's
    journal lock file is a dead runner's (left, it would stall the next write for 30 s), and
    a last record without its newline is a write the kill cut short (never read; the next
    record appended to it would make both unreadable).
    """
    (path / f"{_JOURNAL}.lock").unlink(missing_ok=True)
    journal = path / _JOURNAL
    if not journal.exists():
        return
    with journal.open("rb+") as file:
        end = file.seek(0, os.SEEK_END)
        file.seek(max(0, end - 1))
        if end == 0 or file.read(1) == b"\n":
            return
        start = end
        while start > 0:  # back to the end of the last whole record
            start = max(0, start - 65536)
            file.seek(start)
            cut = file.read(end - start).rfind(b"\n")
            if cut >= 0:
                file.truncate(start + cut + 1)
                return
        file.truncate(0)


def _check_run_dir(path: Path, space: SearchSpace, storage: str | None) -> None:
    """Refuse to start in ``path`` unless it is new or holds this study on this storage."""
    if not (path / "run.json").exists():
        return
    config = _run_config(path)
    if config["study"] != space.name:
        raise InvalidProblemError(
            f"Run directory '{path}' holds the search '{config['study']}', not "
            f"'{space.name}'; resume it with the spec it was started with, or start this "
            "search in another --run-dir."
        )
    if config.get("storage") != storage:

        def where(url: str | None) -> str:
            return "the run directory's journal" if url is None else f"'{_redact(url)}'"

        again = "without --storage" if config.get("storage") is None else "with that --storage"
        raise StorageUnavailableError(
            f"Run directory '{path}' holds a search stored in {where(config.get('storage'))}, "
            f"not {where(storage)}; resume it {again}, or start a new search in another "
            "--run-dir."
        )


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a kill never leaves half a file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _objective_directions(space: SearchSpace) -> list[StudyDirection]:
    return [
        StudyDirection.MAXIMIZE if o.direction == "maximize" else StudyDirection.MINIMIZE
        for o in space.objectives
    ]


def open_study(
    space: SearchSpace, storage: BaseStorage, sampler_name: str, *, create: bool
) -> optuna.Study:
    if create:
        study = optuna.create_study(
            storage=storage,
            study_name=space.name,
            directions=_objective_directions(space),
            load_if_exists=True,
        )
        used = study.user_attrs.get("qopt_nas:sampler")
        if used is None:
            # The spec first: a runner that sees the sampler then finds the spec beside it.
            study.set_user_attr("qopt_nas:spec", space.to_dict())
            study.set_user_attr("qopt_nas:sampler", sampler_name)
        elif used != sampler_name:
            raise SolverConfigurationError(
                f"Study '{space.name}' was run with sampler '{used}'; resume it with "
                f"--sampler {used}, or start a new search in another --run-dir."
            )
        elif study.user_attrs.get("qopt_nas:spec") != json.loads(json.dumps(space.to_dict())):
            raise InvalidProblemError(
                f"The spec differs from the one study '{space.name}' was started with; resume "
                "with the same spec, or start a new search in another --run-dir."
            )
        if study.directions != _objective_directions(space):
            raise InvalidProblemError(
                f"Study '{space.name}' has the directions "
                f"{[d.name.lower() for d in study.directions]}, the spec's objectives "
                f"{[o.direction for o in space.objectives]}; resume with the objectives it "
                "was started with, or start a new search in another --run-dir."
            )
        return study
    return optuna.load_study(study_name=space.name, storage=storage)


# ---------------------------------------------------------------------- counting
def _is_evaluated(t: FrozenTrial) -> bool:
    if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True  # a pruned trial was trained (in part): it used up an evaluation
    return t.state == TrialState.FAIL and t.user_attrs.get(STATUS_ATTR) == "error"


def _n_evaluated(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False)
    done = sum(1 for t in trials if _is_evaluated(t))
    running = sum(1 for t in trials if t.state == TrialState.RUNNING)
    return done, running


def _is_interrupted(t: FrozenTrial) -> bool:
    """A trial whose worker died before its verdict: failed without a recorded reason."""
    return t.state == TrialState.FAIL and t.user_attrs.get(STATUS_ATTR) in (None, "interrupted")


def _fail_interrupted(study: optuna.Study) -> None:
    """Trials left RUNNING by a killed run of this run directory: recorded as failed."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)


def make_pruner(training: Training) -> optuna.pruners.BasePruner:
    """The Optuna pruner named in a spec's ``train`` section.

    Examples:
        >>> type(make_pruner(Training(pruner="successive-halving"))).__name__
        'SuccessiveHalvingPruner'
    """
    options = dict(training.pruner_options)
    try:
        if training.pruner == "median":
            return optuna.pruners.MedianPruner(**options)
        if training.pruner == "successive-halving":
            return optuna.pruners.SuccessiveHalvingPruner(**options)
        return optuna.pruners.NopPruner()
    except TypeError as error:
        raise InvalidProblemError(
            f"'train.pruner_options' has an option the {training.pruner} pruner does not take "
            f"({error})."
        ) from error


# ---------------------------------------------------------------------- worker
@dataclass
class SearchJob:
    spec: dict[str, Any]
    run_dir: str | None
    storage: str | None
    sampler: str
    seed: int | None
    n_trials: int
    solver: str
    n_startup_trials: int | None
    sampler_options: dict[str, Any] = field(default_factory=dict)


def run_worker(
    job: SearchJob,
    index: int,
    *,
    space: SearchSpace | None = None,
    study: optuna.Study | None = None,
    storage: BaseStorage | None = None,
    evaluate: Callable[[dict[str, Any]], Mapping[str, float]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[int]:
    """Run trials until the study holds ``n_trials`` evaluated ones; the trial numbers told.

    ``study`` (with the ``storage`` it was opened on) is the caller's; without it the worker
    opens the job's storage itself. On a database storage each running trial's heartbeat is
    recorded; a trial whose heartbeat stopped (its worker was killed) is failed and its
    evaluation made up, so the worker waits for the other workers' running trials before it
    stops.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = space or SearchSpace.from_dict(job.spec)
    seed = None if job.seed is None else job.seed + 7919 * index
    sampler, codec = make_sampler(
        job.sampler,
        space,
        seed=seed,
        n_startup_trials=job.n_startup_trials,
        solver=job.solver,
        options=job.sampler_options,
    )
    pruner = None if space.train is None else make_pruner(space.train)
    if study is None:
        storage = _open_storage(None if job.run_dir is None else Path(job.run_dir), job.storage)
        study = optuna.load_study(
            study_name=space.name, storage=storage, sampler=sampler, pruner=pruner
        )
    else:
        study.sampler = sampler
        if pruner is not None:
            study.pruner = pruner
    if evaluate is None:
        evaluate = resolve_evaluator(space, seed=seed, run_dir=job.run_dir)
    rng = np.random.default_rng(seed)
    heart = storage if isinstance(storage, RDBStorage) else None  # a database keeps heartbeats
    if heart is not None and heart.get_heartbeat_interval() is None:
        heart = None
    told: list[int] = []
    while True:
        if heart is not None:
            _fail_stale(study, heart)
        done, running = _n_evaluated(study)
        if progress is not None:
            progress(done)
        if done >= job.n_trials or (done + running >= job.n_trials and heart is None):
            break
        if done + running >= job.n_trials:
            # Other workers hold the last slots: wait to see them finish or die.
            time.sleep(HEARTBEAT_INTERVAL_S)
            continue
        if job.sampler == "qubo" and not study.get_trials(
            deepcopy=False, states=(TrialState.COMPLETE,)
        ):
            # Until a trial completes, QuboSampler samples parameter by parameter, blind to
            # the budget; each worker starts from a known in-budget architecture instead (one
            # enqueued per ask, so none is left over).
            study.enqueue_trial(codec.params_of(space.random_architecture(rng)))
        with warnings.catch_warnings():
            # Heartbeats are recorded around each trial here, as Study.optimize would.
            warnings.filterwarnings("ignore", message=".*Heartbeat of storage.*")
            trial = study.ask()
        with _heartbeats(heart, study, trial.number):
            if not _claim_queued(sampler, study, trial.number):
                # A queued architecture another worker holds: never evaluated twice.
                trial.set_user_attr(STATUS_ATTR, "taken")
                study.tell(trial, state=TrialState.FAIL)
                told.append(trial.number)
                continue
            arch = codec.suggest(trial)
            if space.within_budget(arch):
                _evaluate(study, trial, space, arch, evaluate)
            else:
                # Over budget (a quadratic budget's relaxation, or a baseline that ignores
                # budgets): never evaluated; the nearest in-budget architecture is next instead.
                _record(trial, space, arch)
                trial.set_user_attr(STATUS_ATTR, "rejected")
                study.tell(trial, state=TrialState.FAIL)
                repaired = _repair_untaken(space, arch, rng, study)
                study.enqueue_trial(
                    codec.params_of(repaired), user_attrs={"qopt_nas:repair_of": trial.number}
                )
        told.append(trial.number)
    return told


def _claim_queued(sampler: optuna.samplers.BaseSampler, study: optuna.Study, number: int) -> bool:
    """Whether this worker may evaluate trial ``number``: False for a queued trial whose
    architecture another worker holds (claimed as proposals are, by samplers that claim)."""
    claim = getattr(sampler, "claim_queued", None)
    if claim is None:
        return True
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number == number:
            return "fixed_params" not in t.system_attrs or bool(claim(study, t))
    return True


def _record(trial: optuna.Trial, space: SearchSpace, arch: Mapping[str, Any]) -> None:
    """The architecture and its budget costs, as user attributes of ``trial``."""
    trial.set_user_attr(ARCH_ATTR, json.dumps(arch))
    for name, cost in space.costs(arch).items():
        trial.set_user_attr(f"cost:{name}", cost)


def _evaluate(
    study: optuna.Study,
    trial: optuna.Trial,
    space: SearchSpace,
    arch: dict[str, Any],
    evaluate: Callable[..., Mapping[str, float]],
) -> None:
    """Evaluate ``arch`` and tell ``trial`` its verdict: complete, pruned or failed."""
    _record(trial, space, arch)
    try:
        if getattr(evaluate, "takes_trial", False):
            metrics = evaluate(dict(arch), trial)
        else:
            metrics = evaluate(dict(arch))
        values = objective_values(space, metrics)
    except optuna.TrialPruned as pruned:
        trial.set_user_attr(STATUS_ATTR, "pruned")
        trial.set_user_attr("qopt_nas:pruned", str(pruned)[:2000])
        study.tell(trial, state=TrialState.PRUNED)
        return
    except (Exception, SystemExit) as error:
        # Any failure of user code is recorded and the search goes on, as Optuna's
        # optimize(catch=(Exception,)) does; sys.exit() in a training script is one too.
        trial.set_user_attr(STATUS_ATTR, "error")
        trial.set_user_attr(_ERROR_ATTR, f"{type(error).__name__}: {error}"[:2000])
        study.tell(trial, state=TrialState.FAIL)
        return
    except KeyboardInterrupt:
        # Ctrl-C stops the search, as in Optuna; the trial is failed, not left running, and
        # a resume evaluates another in its place.
        trial.set_user_attr(STATUS_ATTR, "interrupted")
        study.tell(trial, state=TrialState.FAIL)
        raise
    for name, value in metrics.items():
        if isinstance(value, float) and math.isfinite(value):
            trial.set_user_attr(f"metric:{name}", value)
    study.tell(trial, values)


@contextlib.contextmanager
def _heartbeats(storage: RDBStorage | None, study: optuna.Study, number: int) -> Iterator[None]:
    """Record trial ``number``'s heartbeat now and every interval until the block ends.

    Other workers tell a live trial from a dead worker's by it (``fail_stale_trials``). Does
    nothing without a storage (one that keeps no heartbeats).
    """
    if storage is None:
        yield
        return
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    # The first heartbeat before the mark: a worker killed between the two leaves a trial
    # failed by its stale heartbeat; the other order left a marked trial with no heartbeat,
    # which neither fail_stale_trials nor the never-beat rule of _fail_stale would ever fail.
    storage.record_heartbeat(trial_id)
    storage.set_trial_user_attr(trial_id, _BEATING, True)
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_INTERVAL_S):
            storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, name=f"qopt-nas-heartbeat-{number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _fail_stale(study: optuna.Study, storage: RDBStorage) -> None:
    """Fail the running trials whose workers were killed: those whose heartbeat stopped, and
    those started over :data:`GRACE_PERIOD_S` ago that never recorded one (by a qopt that
    kept no heartbeats), which would otherwise hold their slots for ever."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    cutoff = datetime.datetime.now() - datetime.timedelta(seconds=GRACE_PERIOD_S)
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _BEATING in t.user_attrs or t.datetime_start is None or t.datetime_start > cutoff:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # failed already
            storage.set_trial_state_values(trial_id, TrialState.FAIL)


def _repair_untaken(
    space: SearchSpace, arch: Mapping[str, Any], rng: np.random.Generator, study: optuna.Study
) -> dict[str, Any]:
    """The repair of an over-budget architecture, moved to the nearest one not yet tried.

    The greedy repair of two different proposals can land on the same architecture; training
    it again would waste an evaluation, so a breadth-first walk over in-budget neighbours
    (up to three changes away) takes the first architecture no trial has used.
    """
    taken = set()
    for t in study.get_trials(deepcopy=False):
        known = trial_architecture(t)
        if known is not None and t.user_attrs.get(STATUS_ATTR) != "rejected":
            taken.add(json.dumps(known, sort_keys=True))
    repaired = space.repair(arch, rng=rng)
    frontier = [repaired]
    seen = {json.dumps(repaired, sort_keys=True)}
    if next(iter(seen)) not in taken:
        return repaired
    for _ in range(3):
        following = []
        for base in frontier:
            options = space.neighbours(base)
            for k in rng.permutation(len(options)):
                key = json.dumps(options[int(k)], sort_keys=True)
                if key in seen:
                    continue
                if key not in taken:
                    return options[int(k)]
                seen.add(key)
                following.append(options[int(k)])
        frontier = following[:200]
    return repaired


def _spawned_worker(job: SearchJob, index: int) -> None:  # pragma: no cover - runs in a child
    run_worker(job, index)


# ---------------------------------------------------------------------- public API
def run_search(
    space: SearchSpace,
    *,
    run_dir: str | Path | None = None,
    storage: str | None = None,
    sampler: str = "qubo",
    n_trials: int = 50,
    workers: int = 1,
    seed: int | None = None,
    solver: str = "sa",
    n_startup_trials: int | None = None,
    objective: Callable[[dict[str, Any]], Mapping[str, float] | float] | None = None,
    progress: bool = False,
) -> RunSummary:
    """Search ``space`` until ``n_trials`` architectures have been evaluated.

    The study lives in ``run_dir/journal.log`` (Optuna's journal file) unless ``storage`` names
    a database URL (``postgresql://...``, ``sqlite:///...``); with neither it is in memory.
    Starting again with the same ``run_dir`` (or ``storage``) resumes: finished trials are
    kept, trials a killed run left running are recorded as failed (``"interrupted"``) and
    the search continues up to ``n_trials`` evaluated architectures in total. On a database
    the running trials record heartbeats; one silent for :data:`GRACE_PERIOD_S` seconds (its
    worker was killed) is failed by whichever worker or resume sees it, and made up.

    Every proposal is checked against the exact budgets before evaluation. With
    ``sampler="qubo"`` linear budgets are in the QUBO and no proposal is over budget;
    quadratic budgets enter as a linear relaxation, and a proposal over the exact budget (as
    from the baselines, which ignore budgets unless they sample architectures themselves) is
    recorded as ``"rejected"``, never evaluated, and its repair is evaluated next.

    Args:
        space: The search space.
        run_dir: Directory for the journal storage, the spec and ``run.json``.
        storage: A database URL (shared by workers on several machines).
        sampler: ``"qubo"``, ``"random"``, ``"evolution"``, ``"local"``, ``"tpe"`` or ``"nsga2"``.
        n_trials: Evaluated architectures to reach (in total, over resumes).
        workers: Processes on this machine (needs ``run_dir`` or ``storage``).
        seed: Seed (worker ``i`` uses ``seed + 7919 * i``).
        solver: qopt solver for ``sampler="qubo"``.
        n_startup_trials: Start design length of the qubo and tpe samplers (``None``: 5 for
            qubo, :data:`qopt.nas._samplers.QUBO_STARTUP`; 10 for tpe).
        objective: A function of the architecture dict, instead of the spec's ``evaluate``
            (``workers=1`` only: it is not sent to other processes).
        progress: Show a tqdm progress bar with an ETA.

    Returns:
        A :class:`RunSummary`.

    Examples:
        >>> from qopt.nas import Choice, Objective, SearchSpace, run_search
        >>> space = SearchSpace([Choice.integers("w", 1, 8)], objectives=[Objective("loss")])
        >>> summary = run_search(space, sampler="random", n_trials=8, seed=0,
        ...                      objective=lambda a: (a["w"] - 3) ** 2)
        >>> summary.n_evaluated, summary.best[0]["architecture"]
        (8, {'w': 3})
    """
    owner = "run_search"
    if sampler not in SAMPLERS:
        raise SolverConfigurationError(
            f"The 'sampler' parameter of {owner} must be a str among {list(SAMPLERS)}. "
            f"Got {sampler!r} instead."
        )
    if not isinstance(n_trials, int) or n_trials < 1:
        raise SolverConfigurationError(
            f"The 'n_trials' parameter of {owner} must be an int in [1, inf). Got {n_trials!r} instead."
        )
    if not isinstance(workers, int) or workers < 1:
        raise SolverConfigurationError(
            f"The 'workers' parameter of {owner} must be an int in [1, inf). Got {workers!r} instead."
        )
    if workers > 1 and run_dir is None and storage is None:
        raise SolverConfigurationError(
            f"The 'workers' parameter of {owner} needs run_dir or storage: processes cannot "
            "share an in-memory study."
        )
    if workers > 1 and objective is not None:
        raise SolverConfigurationError(
            f"The 'objective' parameter of {owner} works with workers=1 only; for several "
            "workers put an entry point in the spec ('evaluate: package.module:build')."
        )
    if len(space.objectives) > 1 and sampler in ("random", "evolution", "local"):
        pass  # documented: these baselines follow the first objective
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = None if run_dir is None else Path(run_dir)
    with _hold_run_dir(path, shared=storage is not None):
        return _search(
            space,
            path,
            storage,
            sampler,
            n_trials,
            workers,
            seed,
            solver,
            n_startup_trials,
            objective,
            progress,
        )


def _search(
    space: SearchSpace,
    path: Path | None,
    storage: str | None,
    sampler: str,
    n_trials: int,
    workers: int,
    seed: int | None,
    solver: str,
    n_startup_trials: int | None,
    objective: Callable[[dict[str, Any]], Mapping[str, float] | float] | None,
    progress: bool,
) -> RunSummary:
    """:func:`run_search` with its arguments checked, holding the run directory."""
    # A resume is checked whole (run directory, storage, sampler, spec, objectives, entry
    # point) before anything is written, so a refused one leaves the run as it was.
    if path is not None:
        _check_run_dir(path, space, storage)
    store = _open_storage(path, storage)
    study = open_study(space, store, sampler, create=True)
    evaluate: Callable[[dict[str, Any]], Mapping[str, float]] | None = None
    if objective is not None:
        names = [o.name for o in space.objectives]

        def evaluate(arch: dict[str, Any]) -> Mapping[str, float]:
            result = objective(arch)
            if isinstance(result, Mapping):
                return result
            return {names[0]: float(result)}
    else:
        resolve_evaluator(space)  # a missing entry point fails here, before any trial
    if path is not None:
        config = {
            "study": space.name,
            "storage": storage,
            "sampler": sampler,
            "base_dir": None if space.base_dir is None else str(space.base_dir),
        }
        _write_atomic(path / "run.json", json.dumps(config, indent=2))
        _write_atomic(path / "spec.json", json.dumps(space.to_dict(), indent=2))
    if storage is None:
        _fail_interrupted(study)  # a run directory has one runner at a time
    job = SearchJob(
        space.to_dict(),
        None if path is None else str(path),
        storage,
        sampler,
        seed,
        n_trials,
        solver,
        n_startup_trials,
    )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_trials, desc=f"nas {space.name} ({sampler})", unit="trial")

    def show(done: int) -> None:
        if bar is not None:
            bar.n = min(done, n_trials)
            bar.refresh()

    try:
        if workers == 1:
            run_worker(
                job, 0, space=space, study=study, storage=store, evaluate=evaluate, progress=show
            )
        else:
            context = multiprocessing.get_context("spawn")
            processes = [
                context.Process(target=_spawned_worker, args=(job, i)) for i in range(workers)
            ]
            for p in processes:
                p.start()
            while any(p.is_alive() for p in processes):
                show(_n_evaluated(study)[0])
                time.sleep(0.5)
            for p in processes:
                p.join()
            failed = [p.exitcode for p in processes if p.exitcode != 0]
            if failed:
                raise SolverUnavailableError(
                    f"{len(failed)} of {workers} workers exited with an error (exit codes "
                    f"{failed}); their traceback is above. Finished trials are kept: run the "
                    "same command again to resume."
                )
            show(_n_evaluated(study)[0])
    finally:
        if bar is not None:
            bar.close()
    summary = summarize(study, space, sampler)
    if path is not None:
        _write_atomic(path / "best.json", json.dumps(summary.best, indent=2))
    return summary


def summarize(study: optuna.Study, space: SearchSpace, sampler: str) -> RunSummary:
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    over = 0
    for t in trials:
        arch = trial_architecture(t)
        if _is_evaluated(t) and arch is not None and not space.within_budget(arch):
            over += 1
    if len(space.objectives) == 1:
        sign = 1.0 if space.objectives[0].direction == "minimize" else -1.0
        best = sorted(complete, key=lambda t: sign * float(t.values[0]))[:1]
    else:
        best = list(study.best_trials) if complete else []
    return RunSummary(
        study=space.name,
        sampler=sampler,
        n_evaluated=sum(1 for t in trials if _is_evaluated(t)),
        n_complete=len(complete),
        n_failed=sum(1 for t in trials if t.user_attrs.get(STATUS_ATTR) == "error"),
        n_rejected=sum(1 for t in trials if t.user_attrs.get(STATUS_ATTR) == "rejected"),
        n_over_budget_evaluated=over,
        n_interrupted=sum(1 for t in trials if _is_interrupted(t)),
        n_pruned=sum(1 for t in trials if t.state == TrialState.PRUNED),
        best=[trial_record(t, space) for t in best],
        failures=_failure_reasons(trials),
    )


def _failure_reasons(trials: list[FrozenTrial]) -> list[dict[str, Any]]:
    """Failed evaluations grouped by exception type, most frequent first (then first seen)."""
    groups: dict[str, dict[str, Any]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if t.state != TrialState.FAIL or t.user_attrs.get(STATUS_ATTR) != "error":
            continue
        message = str(t.user_attrs.get(_ERROR_ATTR, "unknown error"))
        reason = message.split(":", 1)[0]
        group = groups.setdefault(
            reason, {"reason": reason, "count": 0, "trial": t.number, "message": message}
        )
        group["count"] += 1
    return sorted(groups.values(), key=lambda g: -g["count"])


def trial_record(t: FrozenTrial, space: SearchSpace) -> dict[str, Any]:
    arch = trial_architecture(t) or {}
    return {
        "trial": t.number,
        "architecture": arch,
        "values": dict(zip([o.name for o in space.objectives], t.values or [], strict=False)),
        "costs": space.costs(arch) if arch else {},
        "within_budget": bool(arch) and space.within_budget(arch),
        **(
            {"measured": {k[9:]: v for k, v in t.user_attrs.items() if k.startswith("measured:")}}
            if any(k.startswith("measured:") for k in t.user_attrs)
            else {}
        ),
    }


def load_run(run_dir: str | Path) -> tuple[optuna.Study, SearchSpace, str]:
    path = Path(run_dir)
    config = _run_config(path)
    space = SearchSpace.from_dict(json.loads((path / "spec.json").read_text()))
    if config.get("base_dir"):
        space.base_dir = Path(config["base_dir"])
    store = _open_storage(path, config.get("storage"), workers=False)  # to read it
    try:
        study = optuna.load_study(study_name=config["study"], storage=store)
    except KeyError as error:
        raise InvalidProblemError(
            f"The storage of run '{path}' has no study '{config['study']}' ({error})."
        ) from error
    return study, space, str(config.get("sampler"))


def status(run_dir: str | Path) -> RunSummary:
    """Where the search in ``run_dir`` stands (counts and the best so far).

    Examples:
        >>> import tempfile
        >>> from qopt.nas import Choice, SearchSpace, run_search
        >>> space = SearchSpace([Choice.integers("w", 1, 4)])
        >>> d = tempfile.mkdtemp()
        >>> _ = run_search(space, run_dir=d, sampler="random", n_trials=3, seed=0,
        ...                objective=lambda a: a["w"])
        >>> status(d).n_complete
        3
    """
    study, space, sampler = load_run(run_dir)
    return summarize(study, space, sampler)


def export(run_dir: str | Path, path: str | Path | None = None) -> list[dict[str, Any]]:
    """The best architecture (or Pareto front) of ``run_dir``; also written to ``path`` as JSON.

    Examples:
        >>> import tempfile
        >>> from qopt.nas import Choice, SearchSpace, run_search
        >>> space = SearchSpace([Choice.integers("w", 1, 4)])
        >>> d = tempfile.mkdtemp()
        >>> _ = run_search(space, run_dir=d, sampler="random", n_trials=4, seed=0,
        ...                objective=lambda a: a["w"])
        >>> export(d)[0]["architecture"]
        {'w': 1}
    """
    best = status(run_dir).best
    if path is not None:
        try:
            Path(path).write_text(json.dumps(best, indent=2))
        except OSError as error:
            raise InvalidInputError(
                f"The export cannot be written to '{path}' ({error.strerror or error}); give "
                "a writable path."
            ) from None
    return best


def export_model(
    run_dir: str | Path,
    *,
    rank: int = 0,
    weights: bool = True,
    path: str | Path | None = None,
    build: Callable[[dict[str, Any]], Any] | None = None,
) -> Any:
    """The best architecture of ``run_dir`` as a torch module, built by the spec's builder.

    The spec's ``evaluate`` entry point (or ``build``) is called with the architecture; with
    ``weights`` the trained weights that a ``train`` objective kept for that trial
    (``RUN_DIR/weights/trial-N.pt``) are loaded into it. With ``path`` the module is also
    saved (:func:`load_model` reads it back): the architecture, the entry point and the
    ``state_dict``, not a pickle of the class, so the file stays readable as the code changes.

    Args:
        run_dir: A run directory.
        rank: Which of the best trials (the Pareto front's order with several objectives).
        weights: Load the trial's trained weights when they were kept.
        path: Also save the module definition and weights here (``torch.save``).
        build: Builder to use instead of the spec's ``evaluate`` entry point.

    Raises:
        InvalidProblemError: No completed trial, a tabular benchmark (no model to build), or
            a builder that does not return a torch module.

    Examples:
        >>> import tempfile, torch
        >>> from qopt.nas import Choice, SearchSpace, run_search
        >>> d = tempfile.mkdtemp()
        >>> _ = run_search(SearchSpace([Choice("width", "ordinal", (2, 4, 8))]), run_dir=d,
        ...                sampler="random", n_trials=3, seed=0, objective=lambda a: -a["width"])
        >>> export_model(d, build=lambda a: torch.nn.Linear(3, a["width"])).out_features
        8
    """
    import torch

    study, space, sampler = load_run(run_dir)
    best = summarize(study, space, sampler).best
    if not best:
        raise InvalidProblemError(f"Run '{run_dir}' has no completed trial to export yet.")
    if not 0 <= rank < len(best):
        raise InvalidProblemError(
            f"The 'rank' parameter of export_model must be an int in [0, {len(best) - 1}]. "
            f"Got {rank!r} instead."
        )
    record = best[rank]
    if build is None:
        if space.evaluate is None or space.evaluate.startswith("benchmark:"):
            raise InvalidProblemError(
                f"Run '{run_dir}' evaluates on '{space.evaluate}', which has no model to build; "
                "pass build= (a function of the architecture dict returning a torch module)."
            )
        build = import_entry(space, space.evaluate, "evaluate")
    model = build(dict(record["architecture"]))
    if not isinstance(model, torch.nn.Module):
        raise InvalidProblemError(
            f"The builder returned {type(model).__name__}, not a torch module: the spec's "
            "'evaluate' must build the model (a spec with a 'train' section), or pass build=."
        )
    file = Path(run_dir) / "weights" / f"trial-{record['trial']}.pt"
    loaded = weights and file.exists()
    if loaded:
        model.load_state_dict(torch.load(file, weights_only=True))
    if path is not None:
        torch.save(
            {
                "format": "qopt-nas-model/1",
                "architecture": record["architecture"],
                "entry_point": space.evaluate,
                "base_dir": None if space.base_dir is None else str(space.base_dir),
                "values": record["values"],
                "trained": loaded,
                "state_dict": model.state_dict(),
            },
            path,
        )
    return model


def load_model(path: str | Path, *, build: Callable[[dict[str, Any]], Any] | None = None) -> Any:
    """Rebuild a module saved by ``export_model(..., path=)`` and load its weights.

    Examples:
        >>> import tempfile, torch
        >>> from qopt.nas import Choice, SearchSpace, run_search
        >>> d = tempfile.mkdtemp()
        >>> _ = run_search(SearchSpace([Choice("width", "ordinal", (2, 4))]), run_dir=d,
        ...                sampler="random", n_trials=2, seed=0, objective=lambda a: -a["width"])
        >>> make = lambda a: torch.nn.Linear(3, a["width"])
        >>> model = export_model(d, build=make, path=f"{d}/best.pt")
        >>> again = load_model(f"{d}/best.pt", build=make)
        >>> torch.equal(again.weight, model.weight)
        True
    """
    import torch

    data = torch.load(path, weights_only=True)
    if not isinstance(data, dict) or data.get("format") != "qopt-nas-model/1":
        raise FileFormatError(f"'{path}' is not a model saved by qopt nas export --model.")
    if build is None:
        space = SearchSpace([Choice("_", "categorical", ("_",))], evaluate=data["entry_point"])
        if data.get("base_dir"):
            space.base_dir = Path(data["base_dir"])
        build = import_entry(space, data["entry_point"], "evaluate")
    model = build(dict(data["architecture"]))
    model.load_state_dict(data["state_dict"])
    return model
