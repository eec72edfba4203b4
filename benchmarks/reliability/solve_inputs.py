"""Malformed ``qopt solve`` inputs: files (binary, non-UTF-8, truncated, huge declared sizes,
extreme biases, the wrong format), flags (--best-known, --time-limit, --seed, --reads,
--option, --solver) and paths that cannot be read."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from verdicts import Case, Expect, cli, finite_json

GSET = "4 5\n1 2 1\n1 3 1\n2 3 1\n2 4 1\n3 4 1\n"  # a 4-node MaxCut graph (G-set / rudy)
BEASLEY = "3 4\n1 1 -2\n2 2 -1\n1 2 3\n3 3 -1\n"  # Beasley/OR-Library QUBO (n, entries)
COO = "0 0 -1\n0 1 2\n1 1 -1\n1 2 0.5\n"  # i j value
DIMOD_JSON = (
    '{"type": "BinaryQuadraticModel", "version": {"bqm_schema": "3.0.0"}, '
    '"variable_type": "BINARY", "num_variables": 2, "num_interactions": 1, '
    '"variable_labels": [0, 1], "linear_biases": [-1.0, -1.0], '
    '"quadratic_biases": [2.0], "quadratic_head": [0], "quadratic_tail": [1], '
    '"offset": 0.0, "info": {}, "use_bytes": false}'
)
SUFFIX = {"maxcut": ".txt", "beasley": ".txt", "coo": ".coo", "json": ".json"}


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def solve_file(
    name: str,
    content: str | bytes,
    fmt: str,
    expect: Expect,
    *flags: str,
    check: Callable[[str], str | None] | None = None,
    timeout_s: float = 60.0,
) -> Case:
    """A case that writes ``content`` and solves it as format ``fmt``."""

    def run(scratch: Path) -> dict[str, Any]:
        path = write(scratch / f"problem{SUFFIX[fmt]}", content)
        argv = ["solve", str(path), "--format", fmt, "--seed", "1", *flags]
        return cli(argv, expect, check)

    return Case(f"solve/{fmt}/{name}", run, timeout_s)


def solve_argv(
    name: str,
    make: Callable[[Path], list[str]],
    expect: Expect,
    check: Callable[[str], str | None] | None = None,
) -> Case:
    """A case whose argv is built in the scratch folder (paths that cannot be read)."""
    return Case(f"solve/{name}", lambda scratch: cli(make(scratch), expect, check))


def cases() -> list[Case]:
    rng = random.Random(14)
    junk: dict[str, str | bytes] = {
        "random-bytes": bytes(rng.randrange(256) for _ in range(512)),
        "nul-bytes": b"\x00" * 64,
        "latin-1": "4 1\n1 2 caf\xe9\n".encode("latin-1"),
        "utf-16": GSET.encode("utf-16"),
        "empty": b"",
        "blank-lines": "\n\n   \n",
        "truncated-json": DIMOD_JSON[:70],
        "truncated-line": "4 5\n1 2 1\n1 3",
        "words": "hello world\nthis is not a problem\n",
        "gzip-magic": b"\x1f\x8b\x08\x00" + bytes(rng.randrange(256) for _ in range(64)),
    }
    found: list[Case] = []
    for name, content in junk.items():
        for fmt in ("maxcut", "beasley", "coo", "json"):
            found.append(solve_file(name, content, fmt, "error"))
    # Declared sizes: refused before anything is allocated.
    sizes = {
        "maxcut-1e9-nodes": ("maxcut", "1000000000 1\n1 2 1\n"),
        "maxcut-1e7-nodes": ("maxcut", "10000000 1\n1 2 1\n"),
        "maxcut-1e20-header": ("maxcut", "1e20 1\n1 2 1\n"),
        "maxcut-100000000000000000000-header": ("maxcut", "100000000000000000000 1\n1 2 1\n"),
        "maxcut-negative-nodes": ("maxcut", "-5 1\n1 2 1\n"),
        "maxcut-nan-header": ("maxcut", "nan 1\n1 2 1\n"),
        "maxcut-edge-beyond-n": ("maxcut", "3 1\n1 9 1\n"),
        "maxcut-node-zero": ("maxcut", "3 1\n0 1 1\n"),
        "maxcut-fewer-edges-than-declared": ("maxcut", "4 9\n1 2 1\n"),
        "beasley-1e9-variables": ("beasley", "1000000000 1\n1 1 1\n"),
        "beasley-1e20-header": ("beasley", "1e20 1\n1 1 1\n"),
        "coo-index-beyond-ssize": ("coo", "0 99999999999999999999999 1\n"),
        "json-1e9-variables": (
            "json",
            DIMOD_JSON.replace('"num_variables": 2', '"num_variables": 1000000000'),
        ),
        "json-huge-label": ("json", DIMOD_JSON.replace("[0, 1]", "[0, 1e30]")),
        "json-wrong-type": ("json", '{"type": "Nonsense"}'),
        "json-a-list": ("json", "[1, 2, 3]"),
    }
    for name, (fmt, content) in sizes.items():
        found.append(solve_file(name, content, fmt, "error", timeout_s=90))
    # COO labels are any integers (no declared size): sparse or negative labels are valid.
    for name, content in (
        ("coo-index-1e12", "0 1000000000000 1\n"),
        ("coo-negative-index", "-1 2 1\n"),
    ):
        found.append(solve_file(name, content, "coo", "ok", "--json", check=finite_json("energy")))
    # Biases beyond what a double can sum, and non-numbers, for every local solver.
    biases = {
        "1e308": ("maxcut", "3 3\n1 2 1e308\n2 3 1e308\n1 3 -1e308\n"),
        "inf": ("maxcut", "3 2\n1 2 inf\n2 3 1\n"),
        "nan": ("coo", "0 1 nan\n1 2 1\n"),
        "-1e300-sum": ("coo", "0 0 -1e300\n1 1 -1e300\n0 1 -1e300\n"),
    }
    for name, (fmt, content) in biases.items():
        for solver in ("sa", "tabu", "steepest", "exact"):
            found.append(solve_file(f"{name}-{solver}", content, fmt, "error", "--solver", solver))
    # A file read as the wrong format.
    wrong = [
        ("gset-as-beasley", GSET, "beasley"),
        ("gset-as-coo", GSET, "coo"),
        ("gset-as-json", GSET, "json"),
        ("json-as-maxcut", DIMOD_JSON, "maxcut"),
        ("json-as-coo", DIMOD_JSON, "coo"),
        ("coo-as-json", COO, "json"),
    ]
    for name, content, fmt in wrong:
        found.append(solve_file(name, content, fmt, "error"))
    found.append(
        solve_argv(
            "unknown-format-flag",
            lambda s: ["solve", str(write(s / "g.txt", GSET)), "--format", "xyz"],
            "error",
        )
    )
    # Flags: bad values are refused; odd but valid ones give finite figures.
    flags: list[tuple[str, list[str], Expect]] = [
        ("best-known-0", ["--best-known", "0", "--json"], "ok"),  # no gap or ratio to a zero
        ("best-known-nan", ["--best-known", "nan"], "error"),
        ("best-known-inf", ["--best-known", "inf"], "error"),
        ("best-known--inf", ["--best-known", "-inf"], "error"),
        ("best-known-text", ["--best-known", "abc"], "error"),
        ("best-known-1e400", ["--best-known", "1e400"], "error"),
        ("best-known-5", ["--best-known", "5", "--json"], "ok"),
        ("time-limit-0", ["--time-limit", "0"], "error"),
        ("time-limit-negative", ["--time-limit", "-1"], "error"),
        ("time-limit-inf", ["--time-limit", "inf"], "error"),
        ("time-limit-nan", ["--time-limit", "nan"], "error"),
        ("time-limit-text", ["--time-limit", "soon"], "error"),
        ("time-limit-tiny", ["--time-limit", "1e-9", "--json"], "ok"),
        ("seed-negative", ["--seed", "-1"], "error"),
        ("seed-2**32", ["--seed", str(2**32)], "error"),
        ("seed-huge", ["--seed", "99999999999999999999"], "error"),
        ("seed-text", ["--seed", "abc"], "error"),
        ("seed-float", ["--seed", "1.5"], "error"),
        ("reads-0", ["--reads", "0"], "error"),
        ("reads-negative", ["--reads", "-3"], "error"),
        ("reads-huge", ["--reads", "99999999999999999999"], "error"),
        ("reads-text", ["--reads", "x"], "error"),
        ("option-num-sweeps-text", ["--option", "num_sweeps=x"], "error"),
        ("option-num-sweeps-negative", ["--option", "num_sweeps=-1"], "error"),
        ("option-unknown", ["--option", "foo=1"], "error"),
        ("option-no-equals", ["--option", "num_sweeps"], "error"),
        ("option-decompose-unknown-key", ["--option", "decompose={foo: 1}"], "error"),
        ("option-decompose-text", ["--option", "decompose=maybe"], "error"),
        ("option-num-reads-list", ["--option", "num_reads=[1, 2]"], "error"),
        ("option-bad-yaml", ["--option", "num_sweeps={"], "error"),
        ("solver-unknown", ["--solver", "sx"], "error"),
        ("solver-empty", ["--solver", ""], "error"),
    ]
    for name, extra, expect in flags:
        check = finite_json(
            "energy", "objective", maybe=("gap_to_best_known", "approximation_ratio")
        )
        check = check if expect == "ok" else None
        found.append(solve_file(name, GSET, "maxcut", expect, *extra, check=check))
    # Sizes beyond a backend: refused with the way out, or decomposed when asked.
    ring = "".join(f"{i} {i % 60 + 1} 1\n" for i in range(1, 61))
    big = f"60 60\n{ring}"
    found.append(solve_file("exact-60-variables", big, "maxcut", "error", "--solver", "exact"))
    found.append(solve_file("qaoa-60-qubits", big, "maxcut", "error", "--solver", "qaoa"))
    found.append(
        solve_file("qaoa-qiskit-60-qubits", big, "maxcut", "error", "--solver", "qaoa-qiskit")
    )
    found.append(
        solve_file(
            "qaoa-60-decomposed",
            big,
            "maxcut",
            "ok",
            "--solver",
            "qaoa",
            "--option",
            "decompose={subproblem_size: 8, max_iterations: 5}",
            "--option",
            "maxiter=5",
            "--json",
            check=finite_json("energy", "objective"),
            timeout_s=240,
        )
    )
    # Paths.
    found.append(solve_argv("missing-file", lambda s: ["solve", str(s / "nowhere.txt")], "error"))
    found.append(solve_argv("a-directory", lambda s: ["solve", str(s)], "error"))
    found.append(
        solve_argv(
            "dangling-symlink",
            lambda s: ["solve", str(_symlink(s / "link.txt", s / "gone.txt"))],
            "error",
        )
    )
    found.append(solve_argv("name-too-long", lambda s: ["solve", str(s / ("x" * 300))], "error"))
    found.append(solve_argv("dev-null", lambda s: ["solve", "/dev/null"], "error"))
    found.append(
        solve_argv(
            "unknown-suffix",
            lambda s: ["solve", str(write(s / "problem.xyz", GSET))],
            "error",
        )
    )
    return found


def _symlink(link: Path, target: Path) -> Path:
    link.symlink_to(target)
    return link
