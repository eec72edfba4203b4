"""Hostile ``qopt nas`` inputs: malformed YAML, schema violations, bad flags and storage URLs,
run directories that are not runs, refused resumes (after each, ``status`` and ``export`` must
still report the original run) and objectives that fail."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from verdicts import OK, SILENT_WRONG, Case, Expect, cli

BASE: dict[str, Any] = {
    "name": "attack",
    "choices": [
        {"name": "w1", "type": "ordinal", "values": [16, 32, 48, 64]},
        {"name": "w2", "type": "int", "low": 16, "high": 64, "step": 16},
        {"name": "act", "type": "categorical", "values": ["relu", "gelu", "tanh"]},
    ],
    "budgets": [
        {
            "name": "params",
            "kind": "params",
            "max": 5000,
            "costs": {"w1": {16: 1000, 32: 2000, 48: 3000, 64: 4000}},
        }
    ],
    "objectives": [{"name": "loss", "direction": "minimize"}],
    "evaluate": "tests.nas._entry:build",
}
#: Objectives that fail, written next to the spec (``evaluate: hostile:<name>``).
HOSTILE = """
import sys

def raises(architecture):
    raise RuntimeError("out of memory (simulated)")

def nan(architecture):
    return float("nan")

def exits(architecture):
    sys.exit(3)

def text(architecture):
    return "not a number"

def other_metric(architecture):
    return {"accuracy": 0.5}
"""
RUN = ["--trials", "3", "--sampler", "random", "--seed", "0", "--no-progress"]


def spec_with(**changes: Any) -> dict[str, Any]:
    """The base spec with top-level keys changed (None removes one)."""
    spec = json.loads(json.dumps(BASE))
    for key, value in changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return spec


def choice(index: int, **changes: Any) -> dict[str, Any]:
    """The base spec with choice ``index`` changed."""
    spec = spec_with()
    spec["choices"][index].update(changes)
    return spec


def budget(**changes: Any) -> dict[str, Any]:
    spec = spec_with()
    spec["budgets"][0].update(changes)
    return spec


def nas_file(name: str, content: str | bytes | dict[str, Any], expect: Expect, *flags: str) -> Case:
    """``qopt nas`` on a spec file with ``content`` (a dict is written as YAML)."""

    def run(scratch: Path) -> dict[str, Any]:
        path = scratch / "spec.yaml"
        (scratch / "hostile.py").write_text(HOSTILE)
        if isinstance(content, dict):
            path.write_text(yaml.safe_dump(content))
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        argv = ["nas", str(path), "--run-dir", str(scratch / "run"), *RUN, *flags]
        return cli(argv, expect)

    return Case(f"nas/{name}", run, 120.0)


def nas_argv(name: str, make: Callable[[Path, Path], list[str]], expect: Expect) -> Case:
    """``qopt nas`` with argv built from the scratch folder and a valid spec in it."""

    def run(scratch: Path) -> dict[str, Any]:
        spec = scratch / "spec.yaml"
        spec.write_text(yaml.safe_dump(spec_with()))
        return cli(make(scratch, spec), expect)

    return Case(f"nas/{name}", run, 120.0)


def quiet(argv: list[str]) -> tuple[int, str]:
    """Run ``qopt`` and return its exit status and standard output."""
    from qopt.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(argv, out=out)
    return code, out.getvalue()


def refused_resume(
    name: str, change: Callable[[Path, Path], list[str]], storage: str | None = None
) -> Case:
    """A search of 3 trials, then a resume ``change`` that must be refused, after which
    ``status`` and ``export`` must report the original run unchanged."""

    def run(scratch: Path) -> dict[str, Any]:
        spec, run_dir = scratch / "spec.yaml", scratch / "run"
        spec.write_text(yaml.safe_dump(spec_with()))
        first = ["nas", str(spec), "--run-dir", str(run_dir), *RUN]
        if storage is not None:
            first += ["--storage", storage.format(scratch=scratch)]
        code, _ = quiet(first)
        if code != 0:
            return {"verdict": "setup failed", "detail": f"first run exit {code}"}
        before = [quiet(["nas", what, str(run_dir)]) for what in ("status", "export")]
        result = cli(change(scratch, spec), "error")
        after = [quiet(["nas", what, str(run_dir)]) for what in ("status", "export")]
        if result["verdict"] == OK and after != before:
            return {
                **result,
                "verdict": SILENT_WRONG,
                "detail": "status/export changed after a refused resume",
            }
        return result

    return Case(f"nas/refused-resume/{name}", run, 180.0)


def cases() -> list[Case]:
    found: list[Case] = []
    # Files that are not specs.
    files: dict[str, str | bytes] = {
        "binary": bytes(range(256)) * 4,
        "latin-1": "name: caf\xe9\n".encode("latin-1"),
        "utf-16": yaml.safe_dump(spec_with()).encode("utf-16"),
        "empty": "",
        "yaml-syntax": "name: [unclosed\nchoices: {",
        "yaml-tabs": "name: x\n\tchoices: []\n",
        "a-list": "- 1\n- 2\n",
        "a-scalar": "just text\n",
        "json-truncated": json.dumps(spec_with())[:60],
        "deep-nesting": "choices: " + "[" * 5000 + "]" * 5000 + "\n",
        "alias-bomb": "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
            for i in range(8)
        )
        + "name: *i\n",
        "python-tag": "name: !!python/object/apply:os.system ['echo pwned']\n",
    }
    for name, content in files.items():
        found.append(nas_file(name, content, "error"))
    # Schema violations.
    schema: dict[str, dict[str, Any]] = {
        "empty-name": spec_with(name=""),
        "no-choices": spec_with(choices=None),
        "empty-choices": spec_with(choices=[]),
        "choice-without-type": choice(0, type=None),
        "choice-unknown-type": choice(0, type="weird"),
        "int-low-above-high": choice(1, low=64, high=16),
        "int-step-0": choice(1, step=0),
        "int-huge-range": choice(1, low=0, high=10**12, step=1),
        "values-empty": choice(0, values=[]),
        "duplicate-choice-names": spec_with(choices=[BASE["choices"][0], BASE["choices"][0]]),
        "misspelled-key": spec_with(budget=BASE["budgets"], budgets=None),
        "unknown-key-in-choice": choice(0, valuez=[1, 2]),
        "budget-max-nan": budget(max=float("nan")),
        "budget-max-negative": budget(max=-1),
        "budget-max-text": budget(max="lots"),
        "budget-cost-nan": budget(costs={"w1": {16: float("nan"), 32: 1, 48: 1, 64: 1}}),
        "budget-cost-inf": budget(costs={"w1": {16: float("inf")}}),
        "budget-cost-unknown-choice": budget(costs={"w9": {16: 1}}),
        "budget-cost-unknown-value": budget(costs={"w1": {17: 1}}),
        "budget-kind-unknown": budget(kind="watts"),
        "pairs-unknown-choice": budget(pairs=[{"between": ["w1", "w9"], "coefficient": 1.0}]),
        "pairs-table-wrong-shape": budget(pairs=[{"between": ["w1", "w2"], "table": [[1, 2]]}]),
        "objective-direction-up": spec_with(objectives=[{"name": "loss", "direction": "up"}]),
        "no-evaluate": spec_with(evaluate=None),
        "evaluate-missing-module": spec_with(evaluate="no_such_module:build"),
        "evaluate-missing-function": spec_with(evaluate="tests.nas._entry:nothing"),
        "evaluate-not-an-entry": spec_with(evaluate="not a path"),
        "train-max-epochs-negative": spec_with(train={"max_epochs": -1, "monitor": "loss"}),
        "train-pruner-unknown": spec_with(
            train={"max_epochs": 1, "monitor": "loss", "pruner": "bogus"}
        ),
        "train-pruner-options-unknown": spec_with(
            train={
                "max_epochs": 1,
                "monitor": "loss",
                "pruner": "median",
                "pruner_options": {"foo": 1},
            }
        ),
    }
    for name, spec in schema.items():
        found.append(nas_file(name, spec, "error"))
    # Defaults: no name is "qopt-nas", no objectives one minimized "objective".
    found.append(nas_file("no-name", spec_with(name=None), "ok"))
    found.append(nas_file("no-objectives", spec_with(objectives=[]), "ok"))
    # Objectives that fail: the search reports why (exit 1 when nothing succeeded).
    for name in ("raises", "nan", "exits", "text", "other_metric"):
        found.append(nas_file(f"objective-{name}", spec_with(evaluate=f"hostile:{name}"), "error"))

    # Flags and storage URLs.
    def in_run_dir(*flags: str) -> Callable[[Path, Path], list[str]]:
        """``qopt nas SPEC --run-dir SCRATCH/r`` with ``flags`` (``{s}`` in a flag: the scratch)."""
        return lambda s, p: [
            "nas",
            str(p),
            "--run-dir",
            str(s / "r"),
            *(f.format(s=s) for f in flags),
        ]

    argvs: dict[str, tuple[Callable[[Path, Path], list[str]], Expect]] = {
        "trials-0": (in_run_dir("--trials", "0"), "error"),
        "trials-negative": (in_run_dir("--trials", "-1"), "error"),
        "trials-text": (in_run_dir("--trials", "x"), "error"),
        "workers-0": (in_run_dir("--workers", "0"), "error"),
        "sampler-bogus": (lambda s, p: ["nas", str(p), "--sampler", "bogus"], "error"),
        "solver-unknown": (in_run_dir("--solver", "nope"), "error"),
        "seed-negative": (in_run_dir("--seed", "-1"), "error"),
        "name-is-a-path": (lambda s, p: ["nas", str(_named(s, "../../escaped")), *RUN], "error"),
        "run-dir-is-a-file": (lambda s, p: ["nas", str(p), "--run-dir", str(p), *RUN], "error"),
        "run-dir-uncreatable": (
            lambda s, p: ["nas", str(p), "--run-dir", "/proc/qopt/run", *RUN],
            "error",
        ),
        "storage-nonsense": (in_run_dir("--storage", "nonsense", *RUN), "error"),
        "storage-sqlite-missing-dir": (
            in_run_dir("--storage", "sqlite:///{s}/no/dir/x.db", *RUN),
            "error",
        ),
        "storage-postgres-unreachable": (
            in_run_dir("--storage", "postgresql://u:pw@127.0.0.1:1/db", *RUN),
            "error",
        ),
        "storage-mysql-no-driver": (
            in_run_dir("--storage", "mysql://u:pw@127.0.0.1:1/db", *RUN),
            "error",
        ),
        "storage-redis": (in_run_dir("--storage", "redis://x", *RUN), "error"),
        "status-missing-run": (lambda s, p: ["nas", "status", str(s / "nowhere")], "error"),
        "status-empty-dir": (lambda s, p: ["nas", "status", str(s)], "error"),
        "status-a-file": (lambda s, p: ["nas", "status", str(p)], "error"),
        "status-garbage-run-json": (lambda s, p: ["nas", "status", str(_garbage_run(s))], "error"),
        "report-missing-run": (lambda s, p: ["nas", "report", str(s / "nowhere")], "error"),
        "export-missing-run": (lambda s, p: ["nas", "export", str(s / "nowhere")], "error"),
        "export-unwritable-output": (
            lambda s, p: _after_run(
                s, p, ["nas", "export", str(s / "r"), "--output", "/proc/qopt.json"]
            ),
            "error",
        ),
    }
    for name, (make, expect) in argvs.items():
        found.append(nas_argv(name, make, expect))

    # Refused resumes: the run stays as it was.
    def changed(spec_changes: dict[str, Any], *extra: str) -> Callable[[Path, Path], list[str]]:
        def make(scratch: Path, spec: Path) -> list[str]:
            other = scratch / "changed.yaml"
            other.write_text(yaml.safe_dump(spec_with(**spec_changes)))
            return ["nas", str(other), "--run-dir", str(scratch / "run"), *RUN, *extra]

        return make

    same = changed({})

    def sampler(name: str, storage: str | None = None) -> Callable[[Path, Path], list[str]]:
        def make(scratch: Path, spec: Path) -> list[str]:
            argv = ["nas", str(spec), "--run-dir", str(scratch / "run"), "--trials", "3"]
            argv += ["--sampler", name, "--seed", "0", "--no-progress"]
            return argv + (
                [] if storage is None else ["--storage", storage.format(scratch=scratch)]
            )

        return make

    resumes: dict[str, tuple[Callable[[Path, Path], list[str]], str | None]] = {
        "changed-budget": (changed({"budgets": [dict(BASE["budgets"][0], max=3000)]}), None),
        "changed-choices": (changed({"choices": BASE["choices"][:2]}), None),
        "changed-objective": (
            changed({"objectives": [{"name": "loss", "direction": "maximize"}]}),
            None,
        ),
        "changed-evaluate": (changed({"evaluate": "tests.nas._entry:slow"}), None),
        "changed-sampler": (sampler("tpe"), None),
        "added-storage": (lambda s, p: [*same(s, p), "--storage", f"sqlite:///{s}/other.db"], None),
        "unreachable-storage": (
            lambda s, p: [*same(s, p), "--storage", "postgresql://u:pw@127.0.0.1:1/db"],
            None,
        ),
        "sqlite-changed-spec": (
            lambda s, p: [
                *changed({"budgets": [dict(BASE["budgets"][0], max=3000)]})(s, p),
                "--storage",
                f"sqlite:///{s}/nas.db",
            ],
            "sqlite:///{scratch}/nas.db",
        ),
        "sqlite-changed-sampler": (
            sampler("local", "sqlite:///{scratch}/nas.db"),
            "sqlite:///{scratch}/nas.db",
        ),
        "sqlite-dropped-storage": (same, "sqlite:///{scratch}/nas.db"),
        "sqlite-other-database": (
            lambda s, p: [*same(s, p), "--storage", f"sqlite:///{s}/other.db"],
            "sqlite:///{scratch}/nas.db",
        ),
    }
    for name, (make, storage) in resumes.items():
        found.append(refused_resume(name, make, storage))
    found.append(_resume_more_trials())
    return found


def _named(scratch: Path, name: str) -> Path:
    spec = scratch / "named.yaml"
    spec.write_text(yaml.safe_dump(spec_with(name=name)))
    return spec


def _garbage_run(scratch: Path) -> Path:
    run = scratch / "garbage"
    run.mkdir()
    (run / "run.json").write_text("{not json")
    return run


def _after_run(scratch: Path, spec: Path, argv: list[str]) -> list[str]:
    quiet(["nas", str(spec), "--run-dir", str(scratch / "r"), *RUN])
    return argv


def _resume_more_trials() -> Case:
    """The control: a resume with the same spec and more trials is accepted and adds them."""

    def run(scratch: Path) -> dict[str, Any]:
        spec, run_dir = scratch / "spec.yaml", scratch / "run"
        spec.write_text(yaml.safe_dump(spec_with()))
        quiet(["nas", str(spec), "--run-dir", str(run_dir), *RUN])
        more = ["nas", str(spec), "--run-dir", str(run_dir), *RUN[:-6], "5", *RUN[2:]]

        def check(stdout: str) -> str | None:
            from qopt.nas import status

            n = status(run_dir).n_evaluated
            return None if n == 5 else f"{n} evaluated after resuming to 5"

        return cli(more, "ok", check)

    return Case("nas/resume-with-more-trials", run, 120.0)
