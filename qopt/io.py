"""Read problem files: dimod JSON, COO/qubo text, G-set/rudy MaxCut and Beasley (OR-Library).

Every reader returns a :class:`ProblemFile`: a minimisation BQM plus how to turn its energy
back into the problem's own objective (a cut value for MaxCut), and the best-known value when
a ``best_known.csv`` sits beside the file (as in the G-set and Beasley folders of the shared
benchmark data).

Examples:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "triangle.txt"
    >>> _ = path.write_text("3 3\\n1 2 1\\n2 3 1\\n1 3 1\\n")
    >>> problem = load_problem(path, format="maxcut")
    >>> problem.objective(-2.0)  # energy -2 is a cut of 2 edges
    2.0
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dimod
import numpy as np
from dimod.serialization.json import DimodDecoder

from qopt._validation import check_bqm, check_float
from qopt.exceptions import FileFormatError, InvalidProblemError
from qopt.problems.maxcut import maxcut_bqm

__all__ = ["FORMATS", "MAX_VARIABLES", "ProblemFile", "load_problem"]

Format = Literal["json", "coo", "maxcut", "beasley"]

#: The most variables a G-set or Beasley header may declare (the largest G-set graph has
#: 20,000 nodes): a two-line file declaring 10^9 would otherwise exhaust memory.
MAX_VARIABLES = 1_000_000
#: COO indices beyond this do not fit dimod's integer labels (a C ssize_t).
_MAX_LABEL = 2**62
FORMATS: tuple[str, ...] = ("json", "coo", "maxcut", "beasley")


@dataclass(frozen=True)
class ProblemFile:
    """A problem read from a file.

    Attributes:
        name: The file's stem (``G1``, ``bqp50-1``, ...).
        format: The format it was read as.
        bqm: The problem as a BQM to minimise.
        sense: ``"max"`` for MaxCut (objective = cut), ``"min"`` otherwise (objective = energy).
        best_known: Best known objective value, when known.
    """

    name: str
    format: str
    bqm: dimod.BinaryQuadraticModel
    sense: Literal["min", "max"]
    best_known: float | None = None

    def objective(self, energy: float) -> float:
        """The problem's objective for a BQM energy (the cut for MaxCut, the energy otherwise)."""
        return -float(energy) if self.sense == "max" else float(energy)


def _data_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.split("#", 1)[0].strip()
            if text:
                yield number, text.split()


def _read_header_and_triples(
    path: Path, what: str
) -> tuple[int, int, list[tuple[int, int, float, int]]]:
    lines = _data_lines(path)
    try:
        number, header = next(lines)
    except StopIteration:
        raise FileFormatError(f"{path}: the file is empty; expected a {what} file.") from None
    if len(header) < 2 or not all(h.lstrip("-").isdigit() for h in header[:2]):
        raise FileFormatError(
            f"{path}:{number}: the first line must be '<nodes> <entries>' (two integers) for a "
            f"{what} file. Got {' '.join(header)!r}. Pass --format if this is another format."
        )
    n, m = int(header[0]), int(header[1])
    if n <= 0:
        raise FileFormatError(f"{path}:{number}: the model has {n} variables; nothing to solve.")
    if n > MAX_VARIABLES:
        raise FileFormatError(
            f"{path}:{number}: the header declares {n} variables; problem files may declare at "
            f"most {MAX_VARIABLES:,} (every declared variable takes memory, even an isolated "
            "one). Check the header."
        )
    triples = []
    for number, fields in lines:
        if len(fields) != 3:
            raise FileFormatError(
                f"{path}:{number}: expected 'i j weight' (three fields). Got {' '.join(fields)!r}."
            )
        try:
            i, j, w = int(fields[0]), int(fields[1]), float(fields[2])
        except ValueError:
            raise FileFormatError(
                f"{path}:{number}: 'i j weight' must be two integers and a number. "
                f"Got {' '.join(fields)!r}."
            ) from None
        if not (1 <= i <= n and 1 <= j <= n):
            raise FileFormatError(
                f"{path}:{number}: node {i if not 1 <= i <= n else j} is out of range; the header "
                f"declares nodes 1..{n}."
            )
        if not math.isfinite(w):
            raise FileFormatError(f"{path}:{number}: the weight {fields[2]!r} is not finite.")
        triples.append((i, j, w, number))
    if len(triples) != m:
        raise FileFormatError(
            f"{path}: the header declares {m} entries but the file has {len(triples)}."
        )
    return n, m, triples


def _read_maxcut(path: Path) -> dimod.BinaryQuadraticModel:
    n, _, triples = _read_header_and_triples(path, "G-set/rudy MaxCut")
    for i, j, _, number in triples:
        if i == j:
            raise FileFormatError(
                f"{path}:{number}: self-loop on node {i}; a cut has no self-loops. A file of "
                "'i j value' lines with entries on the diagonal (i == j) is a Beasley QUBO "
                "(the diagonal holds its linear terms), not a G-set/rudy MaxCut graph: read it "
                "as format 'beasley' (--format beasley)."
            )
    edges = np.array([(i, j) for i, j, _, _ in triples], dtype=np.int64).reshape(-1, 2)
    weights = np.array([w for _, _, w, _ in triples], dtype=float)
    return maxcut_bqm(edges, weights, nodes=list(range(1, n + 1)))


def _read_beasley(path: Path) -> dimod.BinaryQuadraticModel:
    n, _, triples = _read_header_and_triples(path, "Beasley QUBO")
    if triples and all(i != j and abs(q) == 1 for i, j, q, _ in triples):
        # Read as a QUBO, a graph of +1 edges has the trivial minimum 0 (every x = 0): the
        # result would look like an answer to the wrong question.
        raise FileFormatError(
            f"{path}: every entry is off the diagonal with weight +1 or -1: this is a "
            "G-set/rudy MaxCut graph, not a Beasley QUBO (whose diagonal holds the linear "
            "terms). Read it as format 'maxcut' (--format maxcut); for a QUBO with no linear "
            "terms, use the COO format."
        )
    bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
    bqm.add_variables_from((v, 0.0) for v in range(1, n + 1))
    for i, j, q, _ in triples:
        if i == j:
            bqm.add_linear(i, q)
        else:  # the file holds one triangle of a symmetric matrix: x^T Q x counts it twice
            bqm.add_quadratic(i, j, 2.0 * q)
    return bqm


def _read_json(path: Path) -> dimod.BinaryQuadraticModel:
    text = path.read_text(encoding="utf-8")
    try:
        model = json.loads(text, cls=DimodDecoder)
    except Exception as error:  # dimod's decoder on untrusted input raises many kinds
        if isinstance(error, OSError):
            raise
        raise FileFormatError(
            f"{path}: not a dimod JSON serialization ({type(error).__name__}: {error}). Write one "
            "with json.dump(bqm.to_serializable(), f)."
        ) from None
    if not isinstance(model, dimod.BinaryQuadraticModel):
        raise FileFormatError(
            f"{path}: the JSON holds a {type(model).__name__}, not a BinaryQuadraticModel."
        )
    declared = json.loads(text).get("num_variables")  # a dict: it decoded to a BQM
    if declared is not None and declared != model.num_variables:
        raise FileFormatError(
            f"{path}: declares {declared!r} variables but lists {model.num_variables}; the file "
            "is truncated or was edited by hand."
        )
    return _check_finite(path, model)


def _read_coo(path: Path) -> dimod.BinaryQuadraticModel:
    bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
    for number, fields in _data_lines(path):
        if fields[0].startswith("p") or fields[0] == "c":  # qbsolv-style header/comment lines
            continue
        entry = None
        if len(fields) == 3:
            with contextlib.suppress(ValueError):
                entry = int(fields[0]), int(fields[1]), float(fields[2])
        if entry is None:
            raise FileFormatError(
                f"{path}:{number}: a COO line is 'i j bias' (two integers and a number). "
                f"Got {' '.join(fields)!r}."
            )
        i, j, bias = entry
        if not math.isfinite(bias):
            raise FileFormatError(f"{path}:{number}: the bias {fields[2]!r} is not finite.")
        if max(abs(i), abs(j)) >= _MAX_LABEL:
            raise FileFormatError(
                f"{path}:{number}: the variable index {max(i, j, key=abs)} is out of range; "
                f"COO indices are integers of magnitude below 2**62."
            )
        if i == j:
            bqm.add_linear(i, bias)
        else:
            bqm.add_quadratic(i, j, bias)
    return bqm


def _check_finite(path: Path, bqm: dimod.BinaryQuadraticModel) -> dimod.BinaryQuadraticModel:
    try:
        return check_bqm(bqm, str(path), allow_empty=True)
    except InvalidProblemError as error:
        raise FileFormatError(f"{path}: {error}") from None


def _detect_format(path: Path) -> Format:
    if path.suffix == ".json":
        return "json"
    if path.suffix in (".coo", ".qubo"):
        return "coo"
    if re.fullmatch(r"G\d+", path.stem) or path.parent.name.lower() == "gset":
        return "maxcut"
    if path.stem.startswith("bqp") or path.parent.name.lower() == "beasley":
        return "beasley"
    raise FileFormatError(
        f"{path}: cannot tell the file's format from its name. Pass format= (or --format) "
        f"one of: {', '.join(FORMATS)}."
    )


def _best_known(path: Path) -> float | None:
    table = path.parent / "best_known.csv"
    if not table.is_file():
        return None
    try:
        with table.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise FileFormatError(
            f"{table}: the best-known table cannot be read ({error}). Fix it, or pass "
            "best_known= (--best-known)."
        ) from None
    for row in rows:
        # The value is the last field: some G-set rows list weights as "+1,-1", two fields.
        if row and row[0] == path.stem:
            try:
                value = float(row[-1])
            except ValueError:
                return None
            return value if math.isfinite(value) else None
    return None


def load_problem(
    path: str | Path, *, format: str | None = None, best_known: float | None = None
) -> ProblemFile:
    """Read a problem file.

    Args:
        path: The file.
        format: One of :data:`FORMATS`; detected from the name when omitted (``.json``,
            ``.coo``/``.qubo``, ``G<n>`` or a ``gset`` folder, ``bqp*`` or a ``beasley`` folder).
        best_known: The best known objective value (finite); read from a ``best_known.csv``
            beside the file when omitted (a value there that is not a finite number is
            ignored).

    Raises:
        FileFormatError: The file is missing, unreadable, not text, malformed or empty; the
            message gives the line.
    """
    if best_known is not None:
        best_known = check_float(best_known, "best_known", "load_problem (--best-known)")
    path = Path(path)
    try:
        is_file = path.is_file()
    except OSError as error:  # e.g. a name longer than the file system allows
        raise FileFormatError(f"{path}: cannot be read ({error.strerror or error}).") from None
    if not is_file:
        raise FileFormatError(f"{path}: no such file.")
    if format is not None and format not in FORMATS:
        raise FileFormatError(f"Unknown format {format!r}. Known formats: {', '.join(FORMATS)}.")
    kind: str = format or _detect_format(path)
    reader = {
        "json": _read_json,
        "coo": _read_coo,
        "maxcut": _read_maxcut,
        "beasley": _read_beasley,
    }
    try:
        bqm = reader[kind](path)
    except UnicodeDecodeError as error:
        raise FileFormatError(
            f"{path}: not a text file (byte {error.start} is not UTF-8); expected a {kind} "
            "problem file."
        ) from None
    except OSError as error:
        raise FileFormatError(f"{path}: cannot be read ({error.strerror or error}).") from None
    if bqm.num_variables == 0:
        raise FileFormatError(f"{path}: the model has no variables; there is nothing to solve.")
    if bqm.vartype is dimod.SPIN:
        bqm = bqm.change_vartype(dimod.BINARY, inplace=False)
    known = best_known if best_known is not None else _best_known(path)
    return ProblemFile(
        name=path.stem,
        format=kind,
        bqm=bqm,
        sense="max" if kind == "maxcut" else "min",
        best_known=known,
    )
