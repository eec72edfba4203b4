"""Attack qopt as a hostile user and a crashing cluster would, and count what holds.

Seven classes of cases (see each module): malformed ``qopt solve`` inputs (``solve_inputs``),
hostile Python API calls (``api_calls``), ``qopt nas`` specs, storage URLs and refused resumes
(``nas_specs``), SIGKILLs on the journal, SQLite and PostgreSQL storages and concurrent workers
(``runs``), failing remote solvers (``remote``) and same-seed pairs (``determinism``). Each case
is judged automatically (``verdicts``): a clear ``QoptError`` / exit 2 with a one-line message,
or a sane result, is ok; a raw traceback, a native abort (the process killed by a signal), a
silent wrong result, a hang, lost or duplicated or still-running trials are failures.

The cases run in child processes, one class at a time, in order; a child that dies (a native
abort) or stops answering (a hang) is recorded against the case it was running, and a new child
continues with the next case. Prints a table of counts per class and writes every case's
verdict to ``--output`` (JSON)::

    nice -n 10 python benchmarks/reliability/attack.py            # everything (~15 min)
    python benchmarks/reliability/attack.py --classes solve api    # some classes
    QOPT_TEST_POSTGRES_URL=$(bash .ci/postgres.sh | tail -n 1) nice -n 10 \\
        python benchmarks/reliability/attack.py --kills 74          # with PostgreSQL

PostgreSQL cases run when ``QOPT_TEST_POSTGRES_URL`` names a server. Remote solvers run with
no D-Wave token and no IBM account (a scratch ``HOME``); nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CLASSES = {
    "solve": "qopt solve inputs",
    "api": "Python API calls",
    "nas": "qopt nas specs, storage URLs, resumes",
    "kills": "SIGKILLs (journal, SQLite, PostgreSQL)",
    "concurrency": "concurrent runs (QUBO sampler, trust region)",
    "remote": "remote-solver failures",
    "determinism": "determinism pairs (same seed twice)",
}
OUTPUT = HERE / "results" / "attack.json"


def build_cases(name: str, kills: int, concurrent_runs: int) -> list[Any]:
    """The cases of class ``name`` (imported here, in the child, so the parent stays light)."""
    if name == "solve":
        import solve_inputs

        return solve_inputs.cases()
    if name == "api":
        import api_calls

        return api_calls.cases()
    if name == "nas":
        import nas_specs

        return nas_specs.cases()
    if name == "kills":
        import runs

        return runs.kill_cases(kills)
    if name == "concurrency":
        import runs

        return runs.concurrency_cases(concurrent_runs)
    if name == "remote":
        import remote

        return remote.cases()
    import determinism

    return determinism.cases()


def child(args: argparse.Namespace) -> int:
    """Run the cases of one class from ``args.start`` on, one JSON line each to ``args.results``."""
    import warnings

    warnings.simplefilter("ignore", DeprecationWarning)
    cases = build_cases(args.child, args.kills, args.concurrent_runs)
    if args.count:
        Path(args.results).write_text(json.dumps([c.id for c in cases]))
        return 0
    for index in range(args.start, len(cases)):
        case = cases[index]
        scratch = Path(tempfile.mkdtemp(prefix=f"case{index}-", dir=args.scratch))
        Path(args.results + ".now").write_text(json.dumps({"index": index, "at": time.time()}))
        start = time.perf_counter()
        try:
            result = case.run(scratch)
        except BaseException as error:  # a case's own harness failed
            result = {
                "verdict": "raw traceback",
                "detail": "".join(traceback.format_exception(error))[-500:],
            }
        result = {
            "index": index,
            "id": case.id,
            **result,
            "seconds": round(time.perf_counter() - start, 2),
        }
        with open(args.results, "a") as out:
            out.write(json.dumps(result, default=str) + "\n")
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def child_env(scratch: Path) -> dict[str, str]:
    """No remote credentials, a scratch HOME, and the repository and this folder importable."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DWAVE_", "QISKIT_IBM", "IBM_"))
    }
    home = scratch / "home"
    home.mkdir(exist_ok=True)
    env.update(
        HOME=str(home),
        DWAVE_CONFIG_FILE=str(scratch / "nowhere" / "dwave.conf"),
        PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT), env.get("PYTHONPATH", "")]),
        MPLBACKEND="Agg",
        PYTHONWARNINGS="ignore",
    )
    return env


def run_class(name: str, args: argparse.Namespace, scratch: Path) -> list[dict[str, Any]]:
    """Every case of class ``name``, restarting the child after a native abort or a hang."""
    results_path = scratch / f"{name}.jsonl"
    base = [sys.executable, str(Path(__file__).resolve()), "--child", name]
    base += ["--kills", str(args.kills), "--concurrent-runs", str(args.concurrent_runs)]
    base += ["--results", str(results_path), "--scratch", str(scratch)]
    env = child_env(scratch)
    count = subprocess.run([*base, "--count"], env=env, capture_output=True, text=True, cwd=scratch)
    if count.returncode != 0:
        raise SystemExit(f"cannot build the {name} cases:\n{count.stderr}")
    ids = json.loads(results_path.read_text())
    results_path.unlink()
    timeouts = {"kills": 900.0, "concurrency": 900.0, "remote": 240.0, "determinism": 300.0}
    timeout = timeouts.get(name, 150.0)
    done: dict[int, dict[str, Any]] = {}
    start = 0
    while start < len(ids):
        with open(scratch / f"{name}-{start}.log", "w+") as log:
            process = subprocess.Popen(
                [*base, "--start", str(start)], env=env, stdout=log, stderr=log, cwd=scratch
            )
            last = time.monotonic()
            while True:
                time.sleep(0.2)
                exited = process.poll() is not None  # before reading: its last lines are in
                for line in _read_lines(results_path):
                    result = json.loads(line)
                    if result["index"] not in done:
                        done[result["index"]] = result
                        last = time.monotonic()
                        _progress(name, result, len(ids))
                start = max(done, default=-1) + 1
                if start >= len(ids):
                    process.wait()
                    break
                if exited:  # died in the middle of case `start`
                    log.seek(0)
                    tail = log.read()[-400:]
                    kind = "native abort" if process.returncode != 0 else "child stopped"
                    done[start] = {
                        "index": start,
                        "id": ids[start],
                        "verdict": kind,
                        "detail": f"exit {process.returncode}: {tail}",
                    }
                    _progress(name, done[start], len(ids))
                    start += 1
                    break
                if time.monotonic() - last > timeout:
                    _kill_tree(process)
                    done[start] = {
                        "index": start,
                        "id": ids[start],
                        "verdict": "hang",
                        "detail": f"no answer in {timeout:.0f} s",
                    }
                    _progress(name, done[start], len(ids))
                    start += 1
                    break
    return [{"class": name, **done[i]} for i in sorted(done)]


def _read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _kill_tree(process: subprocess.Popen[bytes]) -> None:
    """Stop a hung child and the processes it started (its own process group is not used:
    the child shares ours, so stop its children by parent id)."""
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True)
    for pid in children.stdout.split():
        subprocess.run(["kill", "-9", pid], check=False)
    process.kill()
    process.wait()


def _progress(name: str, result: dict[str, Any], total: int) -> None:
    mark = (
        "."
        if result["verdict"] == "ok"
        else f"\n  {result['id']}: {result['verdict']}: {result.get('detail', '')[:160]}\n"
    )
    print(mark, end="", flush=True)


def table(results: list[dict[str, Any]], kills_landed: int) -> str:
    """Counts per class: cases, ok, failures, and the failures by kind."""
    lines = [
        "| class | cases | ok | failures | failure kinds |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    by_class: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in results:
        by_class[r["class"]].append(r)
    for name, rows in by_class.items():
        ok = sum(r["verdict"] == "ok" for r in rows)
        kinds = collections.Counter(r["verdict"] for r in rows if r["verdict"] != "ok")
        label = CLASSES[name] + (f": {kills_landed} kills" if name == "kills" else "")
        text = ", ".join(f"{k} {n}" for k, n in kinds.most_common()) or "-"
        lines.append(f"| {label} | {len(rows)} | {ok} | {len(rows) - ok} | {text} |")
    total = len(results)
    ok = sum(r["verdict"] == "ok" for r in results)
    lines.append(f"| **all** | **{total}** | **{ok}** | **{total - ok}** | |")
    return "\n".join(lines)


def goal_counts(results: list[dict[str, Any]]) -> dict[str, int]:
    """The figures the reliability goal names, over every case."""
    kinds = collections.Counter(r["verdict"] for r in results)
    runs = [r for r in results if r["class"] in ("kills", "concurrency")]
    return {
        "raw tracebacks": kinds["raw traceback"],
        "native aborts": kinds["native abort"],
        "silent wrong results": kinds["silent wrong result"],
        "hangs": kinds["hang"],
        "trials lost": sum(
            int(r.get("lost", 0) or 0) + int(r.get("changed_or_lost", 0) or 0) for r in runs
        ),
        "duplicate evaluations": sum(int(r.get("duplicates", 0) or 0) for r in runs),
        "trials left RUNNING": sum(int(r.get("running", 0) or 0) for r in runs),
        "seeded pairs that differ": kinds["not reproducible"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", nargs="+", choices=list(CLASSES), default=list(CLASSES))
    parser.add_argument(
        "--kills", type=int, default=24, help="SIGKILLs in all, in runs of 4 (default 24)"
    )
    parser.add_argument("--concurrent-runs", type=int, default=12, help="runs of 3 workers")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="raw per-case results (JSON)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--results", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    parser.add_argument("--count", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    command = "python benchmarks/reliability/attack.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    started = time.time()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="qopt-attack-") as tmp:
        for name in args.classes:
            print(f"{CLASSES[name]}: ", end="", flush=True)
            t0 = time.monotonic()
            results += run_class(name, args, Path(tmp))
            print(f" {time.monotonic() - t0:.0f} s", flush=True)
    kills_landed = sum(int(r.get("kills", 0) or 0) for r in results if r["class"] == "kills")
    print()
    print(table(results, kills_landed))
    goals = goal_counts(results)
    print()
    print(", ".join(f"{k}: {v}" for k, v in goals.items()))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    report = {
        "command": command.strip(),
        "commit": commit.stdout.strip(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), Python {platform.python_version()}",
        "postgresql": bool(os.environ.get("QOPT_TEST_POSTGRES_URL")),
        "started": datetime.datetime.fromtimestamp(started, datetime.UTC).isoformat(
            timespec="seconds"
        ),
        "seconds": round(time.time() - started),
        "kills_landed": kills_landed,
        "goal": goals,
        "table": table(results, kills_landed),
        "cases": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"\nraw results: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
