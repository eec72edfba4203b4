from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from qopt.cli import main


@pytest.fixture
def triangle(tmp_path: Path) -> Path:
    """A 3-node MaxCut file (a triangle: the best cut is 2)."""
    path = tmp_path / "tri.txt"
    path.write_text("3 3\n1 2 1\n2 3 1\n1 3 1\n")
    return path


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def test_solvers_lists_every_backend_with_status() -> None:
    code, text = run("solvers")
    assert code == 0
    for name in ("sa", "tabu", "steepest", "exact", "dwave", "dwave-hybrid", "qaoa-qiskit"):
        assert name in text
    code, text = run("solvers", "--json")
    rows = {row["name"]: row for row in json.loads(text)}
    assert rows["sa"]["ready"] and not rows["sa"]["remote"]
    assert rows["dwave"]["remote"]


def test_solve_a_shared_maxcut_instance(shared_data: Path) -> None:
    code, text = run("solve", str(shared_data / "beasley" / "bqp50-1.txt"), "--seed", "1", "--json")
    assert code == 0
    result = json.loads(text)
    assert result["objective"] == -2098 and result["gap_to_best_known"] == 0
    assert result["energy_provenance"] in ("measured", "estimated")
    code, text = run("solve", str(shared_data / "gset" / "G11.txt"), "--reads", "2", "--seed", "0")
    assert code == 0 and "best cut" in text and "gap" in text and "J " in text


def test_time_limit_solves_in_rounds(triangle: Path) -> None:
    code, text = run(
        "solve", str(triangle), "--format", "maxcut", "--time-limit", "0.2", "--json", "--sample"
    )
    result = json.loads(text)
    assert code == 0 and result["objective"] == 2 and result["rounds"] >= 2
    assert sorted(result["sample"].values()) in ([0, 0, 1], [0, 1, 1])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--solver", "nope"], "Unknown solver 'nope'"),
        (["--reads", "-1"], "--reads must be a positive integer"),
        (["--solver", "exact", "--reads", "3"], "no 'num_reads' option"),
        (["--time-limit", "0"], "--time-limit must be a positive"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    triangle: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    code, _ = run("solve", str(triangle), "--format", "maxcut", *args)
    assert code == 2
    assert fragment in capsys.readouterr().err


def test_malformed_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "G9.txt"
    path.write_text("3 1\n1 9 1\n")
    assert run("solve", str(path))[0] == 2
    assert "out of range" in capsys.readouterr().err


def test_demo_runs_quick() -> None:
    code, text = run("demo", "--quick")
    assert code == 0
    assert "MaxCut" in text and "sa" in text
    assert "estimated" in text or "measured" in text


def test_bench_prints_quality_tts_and_energy_and_writes_raw_results(
    shared_data: Path, tmp_path: Path
) -> None:
    out_file = tmp_path / "bench.json"
    code, text = run(
        "bench",
        str(shared_data / "beasley" / "bqp50-2.txt"),
        "--solvers",
        "sa,steepest",
        "--seeds",
        "2",
        "--json",
        str(out_file),
    )
    assert code == 0
    assert "TTS99" in text and "ETS99" in text and "bqp50-2" in text
    data = json.loads(out_file.read_text())
    assert {s["solver"] for s in data["summaries"]} == {"sa", "steepest"}
    sa = next(s for s in data["summaries"] if s["solver"] == "sa")
    assert sa["success"] == 1.0 and sa["target"] == -3702
    assert len(data["trials"]) == 4 and data["machine"]["cores"] >= 1


def test_bench_without_best_known_uses_best_found(triangle: Path) -> None:
    code, text = run(
        "bench", str(triangle), "--format", "maxcut", "--solvers", "sa", "--seeds", "2"
    )
    assert code == 0 and "best found by any solver here 2" in text


@pytest.mark.parametrize(
    ("flag", "value"), [("--seeds", "0"), ("--target-ratio", "1.5"), ("--solvers", ",")]
)
def test_bench_refuses_bad_arguments(triangle: Path, flag: str, value: str) -> None:
    assert run("bench", str(triangle), "--format", "maxcut", flag, value)[0] == 2


def test_bench_writes_plots(shared_data: Path, tmp_path: Path) -> None:
    files = [str(shared_data / "beasley" / f"bqp{n}-1.txt") for n in (50, 100)]
    code, text = run(
        "bench", *files, "--solvers", "sa,steepest", "--seeds", "2", "--plot", str(tmp_path)
    )
    assert code == 0 and "plots written" in text
    for name in ("bench-quality-vs-time.png", "bench-tts-vs-size.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_bench_plots_no_tts_curve_for_one_size(tmp_path: Path, triangle: Path) -> None:
    code, text = run(
        "bench", str(triangle), "--format", "maxcut", "--solvers", "sa", "--seeds", "2",
        "--plot", str(tmp_path / "p"),
    )  # fmt: skip
    assert code == 0 and "no TTS-vs-size plot" in text
    assert (tmp_path / "p" / "bench-quality-vs-time.png").exists()
    assert not (tmp_path / "p" / "bench-tts-vs-size.png").exists()


def test_bench_plot_without_matplotlib_says_what_to_install(
    tmp_path: Path,
    triangle: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _ = run("bench", str(triangle), "--format", "maxcut", "--plot", str(tmp_path))
    assert code == 2 and "qopt-loop[plot]" in capsys.readouterr().err


def test_bench_runs_a_backend_that_takes_no_seed(triangle: Path) -> None:
    code, text = run(
        "bench", str(triangle), "--format", "maxcut", "--solvers", "exact", "--seeds", "2"
    )
    assert code == 0 and "exact" in text


@pytest.mark.parametrize("seed", ["-5", "99999999999"])
def test_demo_refuses_a_bad_seed_before_running(
    seed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = run("demo", "--quick", "--seed", seed)
    assert code == 2 and text == ""
    assert "'seed' parameter" in capsys.readouterr().err


def test_reads_beyond_what_the_samplers_take_is_a_usage_error(
    triangle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("solve", str(triangle), "--format", "maxcut", "--reads", str(10**20))
    assert code == 2 and "--reads must be a positive integer up to" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["folder", "under-a-file"])
def test_bench_refuses_an_unwritable_json_path_before_solving(
    tmp_path: Path, triangle: Path, capsys: pytest.CaptureFixture[str], target: str
) -> None:
    json_path = tmp_path if target == "folder" else triangle / "results.json"  # a file as folder
    code, text = run("bench", str(triangle), "--format", "maxcut", "--json", str(json_path))
    assert code == 2 and text == ""  # nothing was solved
    assert "--json" in capsys.readouterr().err


@pytest.fixture
def built_options(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The options of every solver the command line builds, in order."""
    import qopt.solvers

    built: list[dict[str, Any]] = []
    real = qopt.solvers.resolve_solver

    def recording(solver: Any, options: Any = None, **kwargs: Any) -> Any:
        built.append(dict(options or {}))
        return real(solver, options, **kwargs)

    monkeypatch.setattr(qopt.solvers, "resolve_solver", recording)
    return built


def test_time_limit_rounds_with_a_seed_are_seeded_apart(
    triangle: Path, built_options: list[dict[str, Any]]
) -> None:
    code, _ = run(
        "solve", str(triangle), "--format", "maxcut", "--time-limit", "0.2", "--seed", "5"
    )
    seeds = [options["seed"] for options in built_options]
    assert code == 0 and len(seeds) >= 2
    assert seeds == list(range(5, 5 + len(seeds)))  # round r is seeded 5 + r, none repeats


def test_an_infinite_time_limit_is_refused(triangle: Path) -> None:
    assert run("solve", str(triangle), "--format", "maxcut", "--time-limit", "inf")[0] == 2


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_non_finite_best_known_is_refused(
    triangle: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code, _ = run("solve", str(triangle), "--format", "maxcut", f"--best-known={value}")
    assert code == 2 and "'best_known' parameter" in capsys.readouterr().err


def test_a_zero_best_known_reports_no_relative_gap(triangle: Path) -> None:
    code, text = run("solve", str(triangle), "--format", "maxcut", "--best-known", "0", "--json")
    result = json.loads(text)
    assert code == 0 and result["gap_to_best_known"] is None and result["objective"] == 2


def test_solver_options_from_the_command_line(
    triangle: Path, built_options: list[dict[str, Any]]
) -> None:
    code, text = run(
        "solve",
        str(triangle),
        "--format",
        "maxcut",
        "--seed",
        "3",
        "--option",
        "num_reads=50",
        "--option",
        "beta_range=[0.1,5]",
        "--option",
        "decompose={subproblem_size: 2}",
        "--json",
    )
    assert code == 0 and json.loads(text)["objective"] == 2
    assert built_options == [
        {"seed": 3, "num_reads": 50, "beta_range": [0.1, 5], "decompose": {"subproblem_size": 2}}
    ]


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        ("foo=1", "unknown solver_options ['foo'] for solver 'sa'. Its options are: num_reads"),
        ("num_reads=-3", "'num_reads' parameter of SimulatedAnnealingSolver"),
        ("decompose={foo: 1}", "Unknown decompose option(s) ['foo']"),
        ("beta_range=[0, 5]", "'beta_range[0]' parameter"),
        ("num_reads", "--option must be KEY=VALUE"),
        ("seed=[1", "neither JSON nor YAML"),
        ("tabu:timeout=5", "names solver 'tabu', but --solver is 'sa'"),
    ],
)
def test_bad_solver_options_exit_2_with_a_message(
    triangle: Path, capsys: pytest.CaptureFixture[str], option: str, fragment: str
) -> None:
    code, text = run("solve", str(triangle), "--format", "maxcut", "--option", option)
    err = capsys.readouterr().err
    assert code == 2 and text == "" and fragment in err and "Traceback" not in err


def test_an_option_given_twice_is_refused(
    triangle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(
        "solve", str(triangle), "--format", "maxcut", "--reads", "2", "--option", "num_reads=3"
    )
    assert code == 2 and "'num_reads' is given twice" in capsys.readouterr().err


def test_a_problem_too_large_says_how_to_decompose_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ring.txt"
    path.write_text("6 6\n" + "".join(f"{i} {i % 6 + 1} 1\n" for i in range(1, 7)))
    base = ("solve", str(path), "--format", "maxcut", "--solver", "exact", "--json")
    code, _ = run(*base, "--option", "max_variables=4")
    assert code == 2 and "--option decompose=true" in capsys.readouterr().err
    code, text = run(
        *base, "--option", "max_variables=4", "--option", "decompose={subproblem_size: 4}"
    )
    assert code == 0 and json.loads(text)["objective"] == 6  # an even ring: every edge cut


def test_bench_takes_solver_options_per_solver_or_for_all(
    triangle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ("bench", str(triangle), "--format", "maxcut", "--seeds", "1", "--solvers", "sa,tabu")
    code, text = run(*base, "--option", "num_reads=2", "--option", "sa:num_sweeps=20")
    assert code == 0 and "sa " in text and "tabu " in text
    for option, fragment in [
        ("num_sweeps=20", "for solver 'tabu'. Its options are: num_reads, timeout, seed"),
        ("steepest:num_reads=2", "'steepest', which is not in --solvers (sa, tabu)"),
        ("seed=3", "--option seed would repeat one seeded run"),
    ]:
        code, text = run(*base, "--option", option)
        assert code == 2 and text == "" and fragment in capsys.readouterr().err


def test_a_gset_file_read_as_beasley_is_refused_naming_both_formats(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = run("solve", str(shared_data / "gset" / "G1.txt"), "--format", "beasley")
    err = capsys.readouterr().err
    assert code == 2 and text == ""
    assert "G-set/rudy MaxCut graph, not a Beasley QUBO" in err and "--format maxcut" in err


def test_time_limit_reports_the_cpu_time_and_joules_of_all_rounds(triangle: Path) -> None:
    code, text = run("solve", str(triangle), "--format", "maxcut", "--time-limit", "0.2", "--json")
    result = json.loads(text)
    assert code == 0 and result["rounds"] >= 2
    if result["energy_provenance"] == "estimated":
        named = float(result["energy_method"].split("CPU time ")[1].split(" s")[0])
        watts = float(result["energy_method"].split(" x ")[1].split(" W")[0])
        assert named == pytest.approx(result["cpu_s"], rel=1e-3, abs=1e-4)
        assert result["energy_j"] == pytest.approx(result["cpu_s"] * watts)


QPU = ("--qpu-watts", "25000", "--shot-seconds", "0.001", "--job-overhead-seconds", "1")


def test_breakeven_measures_fits_and_prints_the_crossing_with_its_range(tmp_path: Path) -> None:
    plot = tmp_path / "breakeven.png"
    code, text = run(
        "breakeven",
        *QPU,
        "--range",
        "system_watts=10000:50000",
        "--qubits",
        "2",
        "5",
        "--batch",
        "8",
        "--layers",
        "1",
        "--repeats",
        "1",
        "--no-classical",
        "--plot",
        str(plot),
        "--json",
        str(tmp_path / "breakeven.json"),
    )
    assert code == 0
    raw = json.loads((tmp_path / "breakeven.json").read_text())
    assert raw["break_even"]["cost"]["qubits"] == [2, 5] and raw["break_even"]["circuits"] == [
        8,
        48,
    ]
    assert raw["break_even"]["qpu"]["system_watts"] == 25000 and "machine" in raw
    assert "circuits per step = 8 + 48 n (parameter shift)" in text
    assert "modelled: 25000 W x (1 job x 1 s + circuits x 1000 shots x 0.001 s)" in text
    assert "break-even:" in text and "range over the inputs' uncertainty" in text
    assert plot.stat().st_size > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((*QPU, "--range", "watts=1:2"), "inputs are system_watts"),
        ((*QPU, "--range", "shots=lots"), "NAME=LOW:HIGH"),
        (("--qpu-watts", "-1", *QPU[2:]), "'system_watts' parameter"),
        ((*QPU, "--qubits", "4"), "at least two qubit counts"),
    ],
)
def test_breakeven_input_errors_say_what_to_do(
    argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("breakeven", *argv, "--no-classical")
    assert code == 2 and message in capsys.readouterr().err


def test_breakeven_requires_every_qpu_input(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run("breakeven", "--qpu-watts", "25000")
    assert exit_.value.code == 2
    assert "--shot-seconds" in capsys.readouterr().err


def test_bench_refuses_more_seeds_than_there_are(
    triangle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = run("bench", str(triangle), "--format", "maxcut", "--seeds", str(10**20))
    assert (
        code == 2
        and text == ""
        and "--seeds must be a positive integer up to" in capsys.readouterr().err
    )
