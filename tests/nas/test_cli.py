from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest

from qopt.exceptions import InvalidProblemError
from qopt.nas import nas_bench_201_space
from qopt.nas.cli import add_nas_parser


def run(*argv: str, exit_status: int = 0) -> str:
    parser = argparse.ArgumentParser(prog="qopt")
    add_nas_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["nas", *argv])
    out = io.StringIO()
    assert args.run(args, out) == exit_status, out.getvalue()
    return out.getvalue()


def out_of_memory(architecture: dict[str, Any]) -> float:
    """An evaluation that always fails (entry point of the failing-search test)."""
    if architecture["op"] == "a":
        raise ValueError("width 0 is not allowed (simulated)")
    raise RuntimeError("CUDA out of memory (simulated)")


def test_search_status_export(tmp_path: Path) -> None:
    spec = tmp_path / "nb201.json"
    spec.write_text(json.dumps(nas_bench_201_space(max_mparams=0.5).to_dict()))
    run_dir = tmp_path / "run"
    text = run(
        str(spec), "--run-dir", str(run_dir), "--trials", "12", "--seed", "0", "--no-progress"
    )
    assert "12 evaluated" in text and "0 evaluated over budget" in text
    assert "12 evaluated, 12 complete" in run("status", str(run_dir))
    best = json.loads(run("export", str(run_dir), "--output", str(tmp_path / "best.json")))
    assert best[0]["within_budget"] and best[0]["costs"]["params"] <= 0.5
    assert json.loads((tmp_path / "best.json").read_text()) == best


def test_status_of_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(InvalidProblemError, match="not a qopt nas run directory"):
        run("status", str(tmp_path))


def test_demo_prints_best_and_zero_over_budget() -> None:
    from qopt.nas import demo

    out = io.StringIO()
    summary = demo(out, n_trials=15, seed=0)
    assert summary.n_over_budget_evaluated == 0 and summary.n_rejected == 0
    assert "best: Op0=" in out.getvalue()
    assert "trials evaluated over budget: 0" in out.getvalue()


def test_a_search_where_every_evaluation_fails_exits_1_and_says_why(tmp_path: Path) -> None:
    spec = tmp_path / "space.json"
    choices = [{"name": "op", "values": ["a", "b", "c", "d", "e"]}]
    evaluate = "tests.nas.test_cli:out_of_memory"
    objectives = [{"name": "loss"}]
    spec.write_text(
        json.dumps(
            {"name": "t", "choices": choices, "objectives": objectives, "evaluate": evaluate}
        )
    )
    run_dir = str(tmp_path / "run")
    argv = [str(spec), "--run-dir", run_dir, "--trials", "5", "--sampler", "random"]
    text = run(*argv, "--seed", "0", "--no-progress", exit_status=1)
    assert "5 evaluated (5 failed" in text and "no trial completed" in text
    assert "  4 x RuntimeError, first in trial " in text
    assert "RuntimeError: CUDA out of memory (simulated)" in text
    assert "  1 x ValueError" in text and text.index("4 x") < text.index("1 x")
    shown = run("status", run_dir)
    assert "5 failed" in shown and "RuntimeError: CUDA out of memory (simulated)" in shown
