"""Hostile ``qopt nas`` specs and outputs that once gave a raw exception or never returned.

Found by ``benchmarks/reliability/attack.py`` (its ``nas`` class).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qopt.exceptions import FileFormatError, InvalidInputError, InvalidProblemError
from qopt.nas import Choice, SearchSpace, export, load_spec, run_search


def test_a_spec_nested_too_deeply_is_a_file_format_error(tmp_path: Path) -> None:
    spec = tmp_path / "deep.yaml"
    spec.write_text("choices: " + "[" * 5000 + "]" * 5000 + "\n")  # was a RecursionError
    with pytest.raises(FileFormatError, match="nests too deeply"):
        load_spec(spec)


def test_a_yaml_alias_bomb_is_refused_before_it_is_walked(tmp_path: Path) -> None:
    # Ten lines standing for 9**9 values: reading it used to run for ever.
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(8):
        this, last = chr(98 + i), chr(97 + i)
        lines.append(f"{this}: &{this} [" + ", ".join([f"*{last}"] * 9) + "]")
    spec = tmp_path / "bomb.yaml"
    spec.write_text("\n".join([*lines, "name: *i", ""]))
    with pytest.raises(FileFormatError, match="aliases"):
        load_spec(spec)


def test_a_few_aliases_are_still_fine(tmp_path: Path) -> None:
    spec = tmp_path / "aliases.yaml"
    spec.write_text(
        "choices:\n  - {name: w1, type: ordinal, values: &w [16, 32]}\n"
        "  - {name: w2, type: ordinal, values: *w}\n"
        "evaluate: tests.nas._entry:build\n"
    )
    assert [c.values for c in load_spec(spec).choices.values()] == [(16, 32), (16, 32)]


def test_an_int_range_too_large_to_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidProblemError, match="raise 'step'"):  # was a MemoryError
        Choice.integers("w", 0, 10**12)
    spec = tmp_path / "wide.yaml"
    spec.write_text("choices:\n  - {name: w, type: int, low: 0, high: 1000000000000}\n")
    with pytest.raises(InvalidProblemError, match="at most 1000000"):
        load_spec(spec)


def test_an_export_to_a_path_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    space = SearchSpace([Choice.integers("w", 1, 4)])
    run_search(space, run_dir=tmp_path, sampler="random", n_trials=2, seed=0, objective=float)
    with pytest.raises(InvalidInputError, match="cannot be written"):  # was FileNotFoundError
        export(tmp_path, tmp_path / "no" / "such" / "dir" / "best.json")


@pytest.mark.parametrize("name", ["../../escaped", "a/b", ".."])
def test_a_spec_name_that_is_a_path_never_places_the_run_outside_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    from qopt.cli import main

    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    spec = work / "s.yaml"
    spec.write_text(
        f"name: {name!r}\nchoices:\n  - {{name: w, type: int, low: 1, high: 4}}\n"
        "evaluate: tests.nas._entry:build\n"
    )
    argv = ["nas", str(spec), "--trials", "1", "--sampler", "random", "--no-progress"]
    assert main(argv) == 2  # was: the run written to ../../escaped
    assert "--run-dir" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "s.yaml"]
