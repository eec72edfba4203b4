"""``qopt nas``: the command line of the architecture search (wired into :mod:`qopt.cli`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from qopt.exceptions import InvalidProblemError
from qopt.nas import export, export_model, load_spec, report, run_search, status

__all__ = ["add_nas_parser", "run_nas_command"]

_SAMPLERS = ("qubo", "random", "evolution", "local", "tpe", "nsga2")


def add_nas_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``qopt nas SPEC | status RUN | export RUN`` to an argparse subparsers object.

    Examples:
        >>> parser = argparse.ArgumentParser(prog="qopt")
        >>> _ = add_nas_parser(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["nas", "space.yaml", "--trials", "20", "--sampler", "tpe"])
        >>> args.target, args.trials, args.sampler
        (['space.yaml'], 20, 'tpe')
    """
    nas = subparsers.add_parser(
        "nas",
        help="offline architecture search: 'qopt nas SPEC', 'qopt nas status|report|export RUN'",
        description="Search SPEC (YAML/JSON) resumably; 'status RUN', 'report RUN' (top-k "
        "table, plots) and 'export RUN' read a run directory.",
    )
    nas.add_argument(
        "target",
        nargs="+",
        metavar="SPEC | status RUN | report RUN | export RUN",
        help="what to do",
    )
    nas.add_argument("--run-dir", help="run directory (default: runs/<spec name>)")
    nas.add_argument("--storage", help="database URL shared by workers (postgresql://...)")
    nas.add_argument("--workers", type=int, default=1, help="processes on this machine")
    nas.add_argument("--trials", type=int, default=50, help="evaluations in total (default 50)")
    nas.add_argument("--sampler", choices=_SAMPLERS, default="qubo", help="default: qubo")
    nas.add_argument("--solver", default="sa", help="qopt solver of the qubo sampler")
    nas.add_argument("--seed", type=int, help="random seed")
    nas.add_argument("--output", help="export: also write the JSON to this file")
    nas.add_argument(
        "--model",
        help="export: also save the best architecture as a torch module (definition + weights)",
    )
    nas.add_argument("--top", type=int, default=10, help="report: rows of the table")
    nas.add_argument("--plots", help="report: write PNG and HTML plots into this folder")
    nas.add_argument("--no-progress", action="store_true", help="no progress bar")
    nas.set_defaults(run=run_nas_command)
    return nas


def run_nas_command(args: argparse.Namespace, out: TextIO) -> int:
    """Run a parsed ``qopt nas`` command; return the exit status (1: no trial completed).

    Examples:
        >>> import io, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "s.json").write_text('{"name": "t", "choices": [{"name": "op", '
        ...     '"values": ["a", "b"]}], "evaluate": "benchmark:nb201-cifar10"}')
        >>> parser = argparse.ArgumentParser(prog="qopt")
        >>> _ = add_nas_parser(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["nas", "status", str(d)])
        >>> run_nas_command(parser.parse_args(["nas", "a", "b", "c"]), io.StringIO())
        Traceback (most recent call last):
        ...
        qopt.exceptions.InvalidProblemError: qopt nas takes SPEC, 'status RUN', 'report RUN' or 'export RUN'; got ['a', 'b', 'c'].
    """
    target = list(args.target)
    if len(target) == 2 and target[0] == "report":
        table, _ = report(target[1], top=args.top, plots=args.plots)
        out.write(table + "\n")
        if args.plots:
            out.write(f"plots written to {args.plots}\n")
        return 0
    if len(target) == 2 and target[0] in ("status", "export"):
        if target[0] == "status":
            summary = status(target[1])
            data = summary.to_dict()
            out.write(
                f"study {data['study']} ({data['sampler']}): {data['n_evaluated']} evaluated, "
                f"{data['n_complete']} complete, {data['n_failed']} failed, "
                f"{data['n_rejected']} rejected over budget, {data['n_interrupted']} "
                f"interrupted, {data['n_pruned']} pruned; evaluated over budget: "
                f"{data['n_over_budget_evaluated']}\n"
            )
            for record in data["best"]:
                out.write(f"best: {json.dumps(record)}\n")
            _write_failures(summary.failures, out)
            return 0
        out.write(json.dumps(export(target[1], args.output), indent=2) + "\n")
        if args.model:
            export_model(target[1], path=args.model)
            out.write(f"model saved to {args.model} (qopt.nas.load_model reads it)\n")
        return 0
    if len(target) != 1:
        raise InvalidProblemError(
            f"qopt nas takes SPEC, 'status RUN', 'report RUN' or 'export RUN'; got {target}."
        )
    space = load_spec(target[0])
    if args.run_dir is None and (Path(space.name).name != space.name or space.name == ".."):
        # The default run directory must stay under runs/: a name is not a path.
        raise InvalidProblemError(
            f"The spec's name {space.name!r} is not a plain name, so it cannot name the run "
            "directory runs/<name>; give --run-dir, or a name without '/' and '..'."
        )
    run_dir = args.run_dir or str(Path("runs") / space.name)
    summary = run_search(
        space,
        run_dir=run_dir,
        storage=args.storage,
        sampler=args.sampler,
        n_trials=args.trials,
        workers=args.workers,
        seed=args.seed,
        solver=args.solver,
        progress=not args.no_progress,
    )
    out.write(
        f"{summary.n_evaluated} evaluated ({summary.n_failed} failed, {summary.n_pruned} "
        f"pruned), {summary.n_rejected} "
        f"proposals rejected over budget, {summary.n_over_budget_evaluated} evaluated over "
        f"budget; run directory {run_dir}\n"
    )
    for record in summary.best:
        out.write(f"best: {json.dumps(record)}\n")
    _write_failures(summary.failures, out)
    if summary.n_complete == 0:
        out.write(
            "no trial completed: every evaluation failed or was pruned (reasons above). Fix "
            "the evaluation, then start a new search in another --run-dir, or resume this one "
            "with more --trials.\n"
        )
        return 1
    return 0


def _write_failures(failures: list[dict[str, Any]], out: TextIO) -> None:
    """Why evaluations failed: each reason counted, most frequent first, with an example."""
    if not failures:
        return
    out.write("failed evaluations by reason:\n")
    for failure in failures:
        out.write(
            f"  {failure['count']} x {failure['reason']}, first in trial {failure['trial']}: "
            f"{failure['message']}\n"
        )
