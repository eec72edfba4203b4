from __future__ import annotations

import io

import pytest

from qopt import demo
from qopt.demo import SECTIONS, DemoSection, run_demo
from qopt.exceptions import MissingDependencyError, SolverConfigurationError


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.title)
def test_every_section_resolves_to_a_function(section: DemoSection) -> None:
    try:
        function = section.load()
    except MissingDependencyError as error:  # an extra not installed here
        pytest.skip(str(error))
    assert callable(function)


def test_a_section_whose_package_is_missing_is_skipped_with_the_extra_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[int] = []
    sections = [
        DemoSection("Missing", "no_such_package_for_qopt.demo:section", extra="plot"),
        DemoSection("Present", lambda out, *, quick, seed: ran.append(seed)),
    ]
    monkeypatch.setattr(demo, "SECTIONS", sections)
    out = io.StringIO()
    assert run_demo(out, quick=True, seed=3) == 0
    text = out.getvalue()
    assert "== Missing\n  skipped:" in text and "pip install 'qopt-loop[plot]'" in text
    assert "== Present" in text and ran == [3]


@pytest.mark.parametrize("seed", [-1, 2**40, 1.5, True])
def test_a_bad_seed_is_refused_before_anything_runs(seed: object) -> None:
    out = io.StringIO()
    with pytest.raises(SolverConfigurationError, match="'seed' parameter"):
        run_demo(out, seed=seed)  # type: ignore[arg-type]
    assert out.getvalue() == ""


def test_the_quantum_head_section_sets_the_head_against_logistic_regression() -> None:
    pytest.importorskip("sklearn")
    (section,) = [s for s in SECTIONS if s.title.startswith("Quantum head")]
    assert callable(section.run) and section.extra is None  # a core section
    out = io.StringIO()
    section.load()(out, quick=True, seed=0)
    rows = {
        line.split("  ")[1].strip(): line.split()
        for line in out.getvalue().splitlines()
        if line.startswith("  quantum head") or line.startswith("  logistic regression")
    }
    assert set(rows) == {"quantum head, 4 qubits, 10 epochs", "logistic regression"}
    for fields in rows.values():
        accuracy = float(fields[-6])
        assert fields[-4] == "s" and fields[-2] == "J" and float(fields[-5]) > 0
        assert fields[-1] in ("(measured)", "(estimated)")
        assert 0.85 <= accuracy <= 1.0  # both learn the task
    assert "most accurate:" in out.getvalue() and "energy: " in out.getvalue()
