"""Every error qopt raises is a QoptError subclass that also inherits its builtin.

Read from the source with ``ast``: a ``raise ValueError(...)`` (or any other builtin
exception) anywhere under ``qopt/`` or ``integrations/`` is listed as ``file:line: name``.
Two builtins belong to Python protocols and stay: ``AttributeError`` from ``__getattr__``
and ``StopIteration`` from ``__next__``.
"""

from __future__ import annotations

import ast
import builtins
import inspect
from pathlib import Path

import qopt.exceptions
from qopt.exceptions import QoptError

REPO = Path(__file__).resolve().parent.parent

BUILTIN_EXCEPTIONS = {
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
}

#: The builtins a protocol method must raise, by method.
PROTOCOL = {"__getattr__": "AttributeError", "__next__": "StopIteration"}


def builtin_raises(path: Path, text: str | None = None) -> list[str]:
    """``file:line: name`` for each builtin exception raised in a file, protocols excepted."""
    tree = ast.parse(text if text is not None else path.read_text(encoding="utf-8"))
    found = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, child.name)
                continue
            if isinstance(child, ast.Raise) and child.exc is not None:
                raised = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
                name = raised.id if isinstance(raised, ast.Name) else None
                if name in BUILTIN_EXCEPTIONS and PROTOCOL.get(function or "") != name:
                    found.append(f"{path.as_posix()}:{child.lineno}: {name}")
            visit(child, function)

    visit(tree, None)
    return found


def _offending() -> list[str]:
    return [
        line
        for root in ("qopt", "integrations")
        for path in sorted((REPO / root).rglob("*.py"))
        for line in builtin_raises(path.relative_to(REPO), path.read_text(encoding="utf-8"))
    ]


def test_the_check_finds_builtin_raises_and_spares_protocols() -> None:
    source = (
        "def f(x):\n"
        "    if x:\n"
        "        raise ValueError('bad')\n"
        "    raise KeyError\n"
        "class A:\n"
        "    def __getattr__(self, name):\n"
        "        raise AttributeError(name)\n"
        "    def g(self):\n"
        "        raise AttributeError('not a protocol here')\n"
        "def h():\n"
        "    raise QoptError('fine')\n"
        "    raise\n"
    )
    assert builtin_raises(Path("m.py"), source) == [
        "m.py:3: ValueError",
        "m.py:4: KeyError",
        "m.py:9: AttributeError",
    ]


def test_every_qopt_error_also_inherits_a_builtin() -> None:
    classes = [
        c
        for _, c in inspect.getmembers(qopt.exceptions, inspect.isclass)
        if issubclass(c, QoptError) and c is not QoptError
    ]
    assert len(classes) >= 8
    for cls in classes:
        assert any(
            base.__module__ == "builtins" and base is not Exception for base in cls.__mro__[1:]
        ), f"{cls.__name__} inherits no builtin besides Exception"


def test_no_bare_builtin_raises() -> None:
    offending = _offending()
    assert not offending, "raise a QoptError subclass instead:\n" + "\n".join(offending)
