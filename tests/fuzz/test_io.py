"""Hostile problem files: every reader gives a problem or a QoptError, in bounded memory."""

from __future__ import annotations

import json
import tempfile
import tracemalloc
from pathlib import Path

import dimod
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qopt.exceptions import FileFormatError, QoptError
from qopt.io import FORMATS, MAX_VARIABLES, ProblemFile, load_problem

#: A file name per format, so the format is also detected from the name.
NAMES = {"json": "m.json", "coo": "m.coo", "maxcut": "G1.txt", "beasley": "bqp1.txt"}

VALID = {
    "maxcut": "4 4\n1 2 1\n2 3 1\n3 4 -1\n1 4 1\n",
    "beasley": "3 4\n1 1 -5\n1 2 3\n2 3 -4\n3 3 2\n",
    "coo": "p qubo 0 3 2 1\n0 0 -1.5\n0 1 2\n1 1 0.5\n2 1 -1\n",
    "json": json.dumps(
        dimod.BinaryQuadraticModel(
            {0: -1.0, 1: 2.0}, {(0, 1): -3.0}, 0.5, "BINARY"
        ).to_serializable()
    ),
}

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
#: Reading a small file never takes more than this (a declared size must not allocate).
MAX_PEAK_BYTES = 64 * 2**20


def read(content: bytes, kind: str, declared: str | None) -> None:
    """Load ``content`` as ``kind``; pass on a problem or a QoptError, fail on anything else."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / NAMES[kind]
        path.write_bytes(content)
        tracemalloc.start()
        try:
            problem = load_problem(path, format=declared)
        except QoptError as error:
            assert str(error), "an error without a message"
            return
        finally:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert peak < MAX_PEAK_BYTES, f"reading {len(content)} bytes took {peak} bytes"
        assert isinstance(problem, ProblemFile) and problem.bqm.num_variables > 0


formats = st.sampled_from(FORMATS)
declared = st.one_of(st.none(), formats)


@FUZZ
@given(content=st.binary(max_size=300), kind=formats, as_format=declared)
def test_random_bytes(content: bytes, kind: str, as_format: str | None) -> None:
    read(content, kind, as_format)


@FUZZ
@given(kind=formats, as_format=declared, data=st.data())
def test_truncated_and_garbled_valid_files(
    kind: str, as_format: str | None, data: st.DataObject
) -> None:
    content = bytearray(VALID[kind].encode())
    cut = data.draw(st.integers(0, len(content)), label="cut")
    content = content[:cut]
    for _ in range(data.draw(st.integers(0, 4), label="edits")):
        if not content:
            break
        where = data.draw(st.integers(0, len(content) - 1), label="where")
        content[where] = data.draw(st.sampled_from(b" \n-.0123456789eEx#p\x00\xff"), label="byte")
    read(bytes(content), kind, as_format)


numbers = st.one_of(
    st.integers(-(10**25), 10**25).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e308", "-1e308", "1e400", "0", "NaN", "1e-320"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@FUZZ
@given(
    kind=st.sampled_from(["maxcut", "beasley"]),
    # Sizes up to MAX_VARIABLES are legal and take memory in proportion; beyond, refused.
    nodes=st.one_of(st.integers(-5, 10), st.integers(MAX_VARIABLES + 1, 10**30)),
    entries=st.one_of(st.integers(-5, 10), st.integers(10**6, 10**30)),
    lines=st.lists(st.tuples(st.integers(-2, 12), st.integers(-2, 12), numbers), max_size=6),
)
def test_declared_sizes_and_weights(
    kind: str, nodes: int, entries: int, lines: list[tuple[int, int, str]]
) -> None:
    text = f"{nodes} {entries}\n" + "".join(f"{i} {j} {w}\n" for i, j, w in lines)
    read(text.encode(), kind, None)


@FUZZ
@given(lines=st.lists(st.tuples(numbers, numbers, numbers), max_size=6))
def test_coo_entries(lines: list[tuple[str, str, str]]) -> None:
    read("".join(f"{i} {j} {w}\n" for i, j, w in lines).encode(), "coo", None)


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**20), 10**20),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=8),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(
    key=st.sampled_from(
        [
            "num_variables",
            "num_interactions",
            "linear_biases",
            "quadratic_biases",
            "offset",
            "variable_labels",
            "variable_type",
            "type",
            "version",
            "basetype",
            "shape",
        ]
    ),
    value=json_values,
)
def test_json_serializations_with_one_field_replaced(key: str, value: object) -> None:
    serial = json.loads(VALID["json"])
    serial[key] = value
    read(json.dumps(serial).encode(), "json", None)


def test_a_huge_declared_json_model_is_refused_without_allocating() -> None:
    serial = json.loads(VALID["json"])
    serial["num_variables"] = 10**12
    read(json.dumps(serial).encode(), "json", None)


def test_a_json_model_whose_declared_size_differs_from_its_data_is_refused(
    tmp_path: Path,
) -> None:
    serial = json.loads(VALID["json"])
    serial["num_variables"] = 10**9
    path = tmp_path / "m.json"
    path.write_text(json.dumps(serial))
    with pytest.raises(FileFormatError, match="declares 1000000000 variables but lists 2"):
        load_problem(path)


def test_a_path_too_long_for_the_file_system_is_a_file_format_error(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="cannot be read"):
        load_problem(tmp_path / ("x" * 300 + ".txt"))
