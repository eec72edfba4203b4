from __future__ import annotations

import itertools
import json
from pathlib import Path

import dimod
import numpy as np
import pytest

from qopt.exceptions import FileFormatError
from qopt.io import load_problem


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_maxcut_energy_is_minus_the_cut(tmp_path: Path) -> None:
    path = write(tmp_path, "square.txt", "4 4\n1 2 1\n2 3 1\n3 4 1\n4 1 -1\n")
    problem = load_problem(path, format="maxcut")
    assert problem.sense == "max" and problem.bqm.num_variables == 4
    edges = [(1, 2, 1), (2, 3, 1), (3, 4, 1), (4, 1, -1)]
    for bits in itertools.product([0, 1], repeat=4):
        sample = dict(zip(range(1, 5), bits, strict=True))
        cut = sum(w for i, j, w in edges if sample[i] != sample[j])
        assert problem.objective(problem.bqm.energy(sample)) == cut


def test_beasley_objective_is_x_q_x(tmp_path: Path) -> None:
    path = write(tmp_path, "bqp3-1.txt", "3 4\n1 1 -5\n1 2 3\n2 3 -4\n3 3 2\n")
    problem = load_problem(path)
    q = np.array([[-5, 3, 0], [3, 0, -4], [0, -4, 2]])
    for bits in itertools.product([0, 1], repeat=3):
        x = np.array(bits)
        assert problem.bqm.energy(dict(zip([1, 2, 3], bits, strict=True))) == x @ q @ x


def test_json_and_coo_round_trip(tmp_path: Path) -> None:
    bqm = dimod.generators.ran_r(1, 6, seed=0).change_vartype("BINARY", inplace=False)
    path = write(tmp_path, "model.json", json.dumps(bqm.to_serializable()))
    assert load_problem(path).bqm == bqm
    coo = write(tmp_path, "model.coo", "0 0 -1.5\n0 1 2\n1 1 0.5\n")
    loaded = load_problem(coo).bqm
    assert loaded.linear[0] == -1.5 and loaded.quadratic[0, 1] == 2


def test_best_known_comes_from_the_csv_beside_the_file(tmp_path: Path) -> None:
    write(
        tmp_path,
        "best_known.csv",
        "instance,nodes,edges,weights,type,best_known_cut\nG6,2,1,+1,-1,random,7\n",
    )
    path = write(tmp_path, "G6.txt", "2 1\n1 2 -1\n")
    assert load_problem(path).best_known == 7
    assert load_problem(path, best_known=3).best_known == 3


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("G1.txt", "", "empty"),
        ("G1.txt", "three 3\n", "first line must be '<nodes> <entries>'"),
        (
            "G1.txt",
            "3 1\n1 4 1\n",
            r"G1.txt:2: node 4 is out of range; the header declares nodes 1..3",
        ),
        ("G1.txt", "3 1\n0 2 1\n", "node 0 is out of range"),
        ("G1.txt", "3 1\n1 2 nan\n", r"G1.txt:2: the weight 'nan' is not finite"),
        ("G1.txt", "3 2\n1 2 1\n", "declares 2 entries but the file has 1"),
        ("G1.txt", "3 1\n1 2\n", "expected 'i j weight'"),
        ("G1.txt", "3 1\n2 2 1\n", "self-loop"),
        ("G1.txt", "0 0\n", "0 variables"),
        ("G1.txt", "1000000000 1\n1 2 1\n", "declares 1000000000 variables"),
        ("bqp1.txt", "100000000000000000000 1\n1 2 1\n", "at most 1,000,000"),
        ("bqp1.txt", "2 1\n1 x 3\n", "two integers and a number"),
        ("m.json", "{not json", "not a dimod JSON serialization"),
        ("m.coo", "0 1 inf\n", "not finite"),
        ("m.coo", "\n", "no variables"),
        ("m.txt", "1 1\n1 1 1\n", "cannot tell the file's format"),
    ],
)
def test_malformed_files_get_a_clear_error(
    tmp_path: Path, name: str, text: str, fragment: str
) -> None:
    with pytest.raises(FileFormatError, match=fragment):
        load_problem(write(tmp_path, name, text))


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="no such file"):
        load_problem(tmp_path / "nope.txt")
    with pytest.raises(FileFormatError, match="Known formats: json, coo, maxcut, beasley"):
        load_problem(write(tmp_path, "a.txt", "1 0\n"), format="rudy2")


def test_shared_instances_load_with_their_best_known_values(shared_data: Path) -> None:
    g1 = load_problem(shared_data / "gset" / "G1.txt")
    assert (g1.bqm.num_variables, g1.bqm.num_interactions, g1.best_known) == (800, 19176, 11624)
    g7 = load_problem(shared_data / "gset" / "G7.txt")
    assert g7.best_known == 2006
    bqp = load_problem(shared_data / "beasley" / "bqp50-1.txt")
    assert (bqp.bqm.num_variables, bqp.best_known) == (50, -2098)


@pytest.mark.parametrize("name", ["G1.txt", "bqp1.txt", "m.coo", "m.json"])
def test_a_binary_file_gets_a_clear_error_from_every_reader(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xff\xfe\x00\x01 binary \x80")
    with pytest.raises(FileFormatError, match=r"not a text file|not a dimod JSON"):
        load_problem(path)


def test_an_unreadable_best_known_table_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path, "G1.txt", "3 1\n1 2 1\n")
    (tmp_path / "best_known.csv").write_bytes(b"G1,\xff\xfe\n")
    with pytest.raises(FileFormatError, match=r"best_known\.csv: the best-known table cannot"):
        load_problem(path)
    assert load_problem(path, best_known=1.0).best_known == 1.0  # the way out it names


def test_a_non_finite_best_known_in_the_table_is_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, "G1.txt", "3 1\n1 2 1\n")
    (tmp_path / "best_known.csv").write_text("G1,nan\n")
    assert load_problem(path).best_known is None


def test_a_file_of_the_other_format_is_refused_naming_both(shared_data: Path) -> None:
    with pytest.raises(FileFormatError, match="MaxCut graph, not a Beasley QUBO") as error:
        load_problem(shared_data / "gset" / "G1.txt", format="beasley")
    assert "--format maxcut" in str(error.value)
    with pytest.raises(FileFormatError, match="is a Beasley QUBO") as error:
        load_problem(shared_data / "beasley" / "bqp50-1.txt", format="maxcut")
    assert "G-set/rudy MaxCut" in str(error.value) and "--format beasley" in str(error.value)


def test_a_coo_index_too_large_for_a_label_is_a_file_format_error(tmp_path: Path) -> None:
    path = tmp_path / "big.coo"
    path.write_text("0 9223372036854775808 0\n")
    with pytest.raises(FileFormatError, match="out of range"):
        load_problem(path)


def test_a_json_label_dimod_cannot_hold_is_a_file_format_error(tmp_path: Path) -> None:
    bqm = dimod.BinaryQuadraticModel({0: 1.0, 1: -1.0}, {}, 0.0, "BINARY")
    data = bqm.to_serializable()
    data["variable_labels"] = [None, 9.223372036854776e18]
    path = tmp_path / "bqm.json"
    path.write_text(json.dumps(data))
    with pytest.raises(FileFormatError, match="not a dimod JSON serialization"):
        load_problem(path)
