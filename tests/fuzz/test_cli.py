"""Generated command lines: exit 0, or 2 with a message; never a traceback."""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from qopt.cli import main

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

#: Local backends that answer in milliseconds on a 4-node problem, and names that do not exist.
SOLVERS = ["sa", "tabu", "steepest", "exact", "nope", "", "SA", "sa,tabu"]
OPTION_NAMES = [
    "num_reads",
    "num_sweeps",
    "seed",
    "timeout",
    "num_restarts",
    "beta_range",
    "max_variables",
    "decompose",
    "fallback",
    "retry_after",
    "foo",
    "",
    "1x",
    "sa:num_reads",
    "tabu:timeout",
]
OPTION_VALUES = [
    "1",
    "0",
    "-3",
    "2",
    "50",
    "99999999999999999999",
    "1e3",
    "nan",
    "inf",
    "-inf",
    "true",
    "false",
    "null",
    "",
    "x",
    "[0.1, 5]",
    "[0, 5]",
    "[1]",
    "{subproblem_size: 2}",
    "{foo: 1}",
    "{",
    "[1",
    "'q",
    "sa",
    "tabu",
    "1.5",
    "2**40",
]


def options() -> st.SearchStrategy[list[str]]:
    valid = st.sampled_from(
        [
            "num_reads=2",
            "seed=3",
            "num_sweeps=20",
            "decompose=true",
            "timeout=5",
            "decompose={subproblem_size: 2}",
            "beta_range=[0.1, 5]",
            "num_restarts=1",
        ]
    )
    generated = st.tuples(st.sampled_from(OPTION_NAMES), st.sampled_from(OPTION_VALUES)).map(
        lambda kv: f"{kv[0]}={kv[1]}"
    )
    one = st.one_of(valid, valid, generated, st.just("novalue"))
    return st.lists(one, max_size=2).map(lambda items: [a for i in items for a in ("--option", i)])


def numbers() -> st.SearchStrategy[str]:
    valid = st.integers(1, 5).map(str)
    return st.one_of(
        valid,
        valid,
        st.integers(-5, 0).map(str),
        st.sampled_from(["99999999999999999999", "nan", "inf", "-1e9", "x", "", "0.01", "1e-9"]),
    )


@contextlib.contextmanager
def problem_file() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ring.txt"
        path.write_text("4 4\n1 2 1\n2 3 1\n3 4 1\n1 4 1\n")
        yield path


def run(argv: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    capsys.readouterr()
    try:
        code = main(argv, out=io.StringIO())
    except SystemExit as stop:  # argparse's own usage errors
        code = stop.code
    err = capsys.readouterr().err
    event(f"exit {code}")
    assert code in (0, 2), f"exit {code} for {argv}"
    if code == 2:
        assert "error:" in err and "Traceback" not in err, f"{argv}: {err!r}"


@FUZZ
@given(
    solver=st.one_of(
        st.sampled_from(["sa", "tabu", "steepest", "exact"]), st.sampled_from(SOLVERS)
    ),
    fmt=st.one_of(st.none(), st.sampled_from(["maxcut", "beasley", "coo", "json", "csv"])),
    reads=st.one_of(st.none(), st.none(), st.none(), numbers()),
    seed=st.one_of(st.none(), st.none(), numbers()),
    time_limit=st.one_of(
        st.none(), st.none(), st.sampled_from(["0.01", "0", "-1", "nan", "inf", "x"])
    ),
    best_known=st.one_of(st.none(), st.none(), st.none(), numbers()),
    extra=options(),
    flags=st.lists(
        st.sampled_from(["--json", "--sample", "--json", "--sample", "--bogus"]), max_size=2
    ),
)
def test_solve(capsys, solver, fmt, reads, seed, time_limit, best_known, extra, flags) -> None:  # type: ignore[no-untyped-def]
    with problem_file() as path:
        argv = ["solve", str(path), "--solver", solver, *extra, *flags]
        for flag, value in [
            ("--format", fmt if fmt else "maxcut"),
            ("--reads", reads),
            ("--seed", seed),
            ("--time-limit", time_limit),
            ("--best-known", best_known),
        ]:
            if value is not None:
                argv.append(f"{flag}={value}")
        run(argv, capsys)


@FUZZ
@given(
    solvers=st.lists(
        st.one_of(st.sampled_from(["sa", "tabu", "steepest", "exact"]), st.sampled_from(SOLVERS)),
        min_size=1,
        max_size=3,
    ).map(",".join),
    seeds=st.sampled_from(["1", "2", "1", "2", "0", "-1", "x", "99999999999999999999"]),
    ratio=st.sampled_from(["1", "0.5", "1", "0.5", "0", "2", "nan", "inf"]),
    extra=options(),
    json_path=st.sampled_from([None, "ok", "folder", "/proc/forbidden/r.json"]),
)
def test_bench(capsys, solvers, seeds, ratio, extra, json_path) -> None:  # type: ignore[no-untyped-def]
    with problem_file() as path:
        argv = [
            "bench",
            str(path),
            "--format",
            "maxcut",
            "--solvers",
            solvers,
            f"--seeds={seeds}",
            f"--target-ratio={ratio}",
            *extra,
        ]
        if json_path == "ok":
            argv += ["--json", str(path.parent / "out.json")]
        elif json_path == "folder":
            argv += ["--json", str(path.parent)]
        elif json_path is not None:
            argv += ["--json", json_path]
        run(argv, capsys)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(flags=st.lists(st.sampled_from(["--json", "--bogus", "x", "--help-me"]), max_size=2))
def test_solvers(capsys, flags) -> None:  # type: ignore[no-untyped-def]
    run(["solvers", *flags], capsys)
