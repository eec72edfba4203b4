"""Remote solvers that fail: D-Wave QPU and Leap hybrid without a token (or with one the
endpoint refuses), IBM hardware without an account. Each must fall back to the local default
with a warning naming the cause, record the fallback, and never stop the loop around it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from verdicts import OK, SILENT_WRONG, TRACEBACK, Case, verdict

#: (label, registry name, get_solver options) of each remote backend.
REMOTES = [
    ("dwave", "dwave", {}),
    ("dwave-hybrid", "dwave-hybrid", {}),
    ("qaoa-qiskit-ibm", "qaoa-qiskit", {"backend": "ibm_nowhere", "seed": 0}),
]
NO_HOOK = "RemoteNotHooked"


def bqm(n: int = 8) -> Any:
    import dimod

    return dimod.BinaryQuadraticModel(
        {i: -1.0 for i in range(n)}, {(i, (i + 1) % n): 2.0 for i in range(n)}, 0.0, "BINARY"
    )


def judged(fn: Callable[[], str | None]) -> dict[str, Any]:
    """Run ``fn`` recording warnings: ok when it returns None (its own checks passed), a
    fallback warning was given and nothing was raised."""
    from qopt.solvers import QoptFallbackWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            problem = fn()
        except Exception as error:  # training must never die
            return verdict(TRACEBACK, f"{type(error).__name__}: {error}")
    fallbacks = [w for w in caught if issubclass(w.category, QoptFallbackWarning)]
    if problem is not None:
        return verdict(SILENT_WRONG, problem, warnings=len(fallbacks))
    if not fallbacks:
        return verdict(SILENT_WRONG, "fell back without a warning", warnings=0)
    return verdict(OK, str(fallbacks[0].message)[:200], warnings=len(fallbacks))


def direct(name: str, options: dict[str, Any], solves: int) -> Callable[[], str | None]:
    def run() -> str | None:
        from qopt.metering import record_of
        from qopt.solvers import get_solver

        solver = get_solver(name, **options)
        for _ in range(solves):
            record = record_of(solver.sample(bqm()))
            if record.fallback is None or record.solved_by == name:
                return f"solve recorded as {record.solved_by!r}, fallback {record.fallback!r}"
        return None

    return run


def pipeline(name: str, options: dict[str, Any]) -> Callable[[], str | None]:
    def run() -> str | None:
        from qopt.pipeline import solve_batch
        from qopt.solvers import get_solver

        solutions = solve_batch([bqm(6), bqm(8)], get_solver(name, **options))
        missing = [s for s in solutions if s.record.fallback is None]
        return f"{len(missing)} of 2 solutions without a fallback record" if missing else None

    return run


def optuna_study(name: str, options: dict[str, Any]) -> Callable[[], str | None]:
    def run() -> str | None:
        import optuna
        from qopt.integrations.optuna import QuboSampler

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = QuboSampler(solver=name, solver_options=options, seed=0, n_startup_trials=3)
        study = optuna.create_study(sampler=sampler)
        study.optimize(lambda t: (t.suggest_int("x", 0, 7) - 3) ** 2, n_trials=6)
        done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        return None if done == 6 else f"{done} of 6 trials complete"

    return run


def qubo_search(name: str, options: dict[str, Any]) -> Callable[[], str | None]:
    def run() -> str | None:
        from qopt.encoding import IntParameter
        from qopt.search import QuboSearch

        search = QuboSearch(
            {"x": IntParameter(0, 7)},
            solver=name,
            solver_options=options,
            seed=0,
            n_startup_trials=3,
        )
        for _ in range(6):
            point = search.ask()
            search.tell(point, float((point["x"] - 3) ** 2))
        return None

    return run


def command_line(name: str, options: dict[str, Any], scratch: Path) -> Callable[[], str | None]:
    def run() -> str | None:
        from qopt.cli import main

        problem = scratch / "ring.txt"
        problem.write_text("4 4\n1 2 1\n2 3 1\n3 4 1\n4 1 1\n")
        argv = ["solve", str(problem), "--format", "maxcut", "--solver", name, "--json"]
        for key, value in options.items():
            argv += ["--option", f"{key}={value}"]
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = main(argv, out=out)
        if code != 0:
            return f"exit {code}"
        result = json.loads(out.getvalue())
        return None if result.get("fallback") else f"no fallback in {result}"

    return run


def nas_search(name: str, scratch: Path) -> Callable[[], str | None]:
    def run() -> str | None:
        import yaml
        from nas_specs import quiet, spec_with

        spec = scratch / "spec.yaml"
        spec.write_text(yaml.safe_dump(spec_with()))
        argv = ["nas", str(spec), "--run-dir", str(scratch / "run"), "--trials", "7"]
        code, _ = quiet(
            [*argv, "--sampler", "qubo", "--solver", name, "--seed", "0", "--no-progress"]
        )
        return None if code == 0 else f"exit {code}"

    return run


def routing_training(name: str, options: dict[str, Any]) -> Callable[[], str | None]:
    def run() -> str | None:
        import lightning.pytorch as pl
        import torch
        from qopt.integrations.lightning import QuboRoutingCallback

        from qopt.moe import MoE

        class Tiny(pl.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                torch.manual_seed(0)
                self.moe = MoE(8, 2, d_hidden=8, aux_loss_weight=0.0)
                self.head = torch.nn.Linear(8, 1)

            def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
                x, y = batch
                return torch.nn.functional.mse_loss(self.head(self.moe(x)).squeeze(-1), y)

            def configure_optimizers(self) -> torch.optim.Optimizer:
                return torch.optim.SGD(self.parameters(), lr=0.05)

        x = torch.randn(48, 8, generator=torch.Generator().manual_seed(1))
        data = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x, x.sum(1)), batch_size=4
        )
        # Two experts, four tokens a step: small enough for a 20-qubit QAOA backend, so that
        # every solve reaches the remote backend (and falls back).
        callback = QuboRoutingCallback(solver=name, solver_options=options or None, group_size=4)
        trainer = pl.Trainer(
            max_steps=3,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[callback],
        )
        trainer.fit(Tiny(), data)
        if trainer.global_step != 3:
            return f"training stopped at step {trainer.global_step}"
        if callback.num_fallbacks < callback.num_solves or not callback.num_solves:
            return f"{callback.num_fallbacks} fallbacks counted for {callback.num_solves} solves"
        return None

    return run


def cases() -> list[Case]:
    found: list[Case] = []
    for label, name, options in REMOTES:
        contexts: dict[str, Callable[[Path], Callable[[], str | None]]] = {
            "sample": lambda s, n=name, o=options: direct(n, o, 1),
            "three-samples": lambda s, n=name, o=options: direct(n, o, 3),
            "solve-batch": lambda s, n=name, o=options: pipeline(n, o),
            "optuna-qubo-sampler": lambda s, n=name, o=options: optuna_study(n, o),
            "qubo-search": lambda s, n=name, o=options: qubo_search(n, o),
            "cli-solve": lambda s, n=name, o=options: command_line(n, o, s),
            "routing-callback-training": lambda s, n=name, o=options: routing_training(n, o),
        }
        if not options:  # qopt nas --solver takes a registry name only
            contexts["nas-search"] = lambda s, n=name: nas_search(n, s)
        for context, make in contexts.items():
            found.append(Case(f"remote/{label}/{context}", lambda s, m=make: judged(m(s)), 180.0))
    found.append(
        Case("remote/dwave/refused-token", lambda s: _with_bad_token(direct("dwave", {}, 1)), 180.0)
    )
    found.append(
        Case(
            "remote/dwave/decomposed",
            lambda s: judged(direct("dwave", {"decompose": True}, 1)),
            180.0,
        )
    )
    return found


def _with_bad_token(fn: Callable[[], str | None]) -> dict[str, Any]:
    """A token the (unreachable, loopback) endpoint never accepts."""
    saved = {k: os.environ.get(k) for k in ("DWAVE_API_TOKEN", "DWAVE_API_ENDPOINT")}
    os.environ["DWAVE_API_TOKEN"] = "DEV-0000000000000000000000000000000000000000"
    os.environ["DWAVE_API_ENDPOINT"] = "http://127.0.0.1:9/sapi/v2/"
    try:
        return judged(fn)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
