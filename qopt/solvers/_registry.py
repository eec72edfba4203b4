"""The solver registry: every backend by name, built-in or registered by a third party.

Third-party packages register a backend through the entry-point group ``qopt.solvers``::

    [project.entry-points."qopt.solvers"]
    mysolver = "mypackage.solvers:MySolver"   # a dimod.Sampler class with keyword options
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import dimod

from qopt._optional import load_object
from qopt.exceptions import MissingDependencyError, SolverConfigurationError, UnknownSolverError

__all__ = [
    "DEFAULT_SOLVER",
    "SolverSpec",
    "SolverStatus",
    "available_solvers",
    "check_solver_options",
    "get_solver",
    "register_solver",
    "resolve_solver",
    "solver_spec",
    "solver_status",
]

#: The embedded default: local simulated annealing, needs nothing.
DEFAULT_SOLVER = "sa"

ENTRY_POINT_GROUP = "qopt.solvers"


@dataclass(frozen=True)
class SolverSpec:
    """How to build one backend, and what it needs.

    Attributes:
        name: Registry name, as passed to :func:`get_solver`.
        factory: ``"module:attribute"`` of a :class:`dimod.Sampler` class (or a callable
            returning one) taking keyword options.
        summary: One line on what runs.
        extra: The qopt extra that installs its dependencies, or ``None``.
        remote: Whether it runs on someone else's hardware (then it falls back when it fails).
        needs: What it needs besides packages (a token, ...), in words.
        limits: Its size limits, in words.
        configured: ``"module:function"`` returning ``(ready, message)`` for remote backends.
        modules: The packages the factory imports. When given, :func:`solver_status` checks
            that they are installed without importing them (importing torch, dwave-system or
            qiskit costs seconds); when ``None``, it imports the factory.
    """

    name: str
    factory: str | Callable[..., dimod.Sampler]
    summary: str
    extra: str | None = None
    remote: bool = False
    needs: str = "nothing"
    limits: str = ""
    configured: str | None = None
    modules: tuple[str, ...] | None = None

    def load(self) -> Callable[..., dimod.Sampler]:
        """Import the factory; raise :class:`MissingDependencyError` if its extra is missing."""
        if callable(self.factory):
            return self.factory
        factory: Callable[..., dimod.Sampler] = load_object(
            self.factory, self.extra, f"Solver '{self.name}'"
        )
        return factory

    def option_names(self) -> list[str] | None:
        """The keyword options :func:`get_solver` passes to this backend (``None``: any).

        Examples:
            >>> from qopt.solvers import solver_spec
            >>> solver_spec("exact").option_names()
            ['max_variables']
        """
        return _option_names(self.load())


_BUILTIN: dict[str, SolverSpec] = {
    spec.name: spec
    for spec in [
        SolverSpec(
            "sa",
            "qopt.solvers.classical:SimulatedAnnealingSolver",
            "simulated annealing (dwave-samplers, C++); the embedded default",
            modules=("dwave.samplers",),
        ),
        SolverSpec(
            "tabu",
            "qopt.solvers.classical:TabuSolver",
            "multistart tabu search (dwave-samplers, C++)",
            modules=("dwave.samplers",),
        ),
        SolverSpec(
            "steepest",
            "qopt.solvers.classical:SteepestDescentSolver",
            "steepest greedy descent (dwave-samplers, C++); local minima only",
            modules=("dwave.samplers",),
        ),
        SolverSpec(
            "exact",
            "qopt.solvers.classical:ExactSolver",
            "exhaustive search (dimod); the true optimum",
            limits="24 variables by default (2^n states)",
            modules=(),
        ),
        SolverSpec(
            "qaoa",
            "qopt.solvers.qaoa:QAOASolver",
            "exact-statevector QAOA in torch, on CPU or CUDA (device='cuda')",
            limits="2^n memory: max_qubits from free memory, 40 bytes per amplitude in float32 "
            "(about 28 qubits per 16 GiB free); decompose=True beyond",
            modules=("torch",),
        ),
        SolverSpec(
            "dwave",
            "qopt.solvers.dwave:DWaveSolver",
            "D-Wave QPU (DWaveSampler + EmbeddingComposite)",
            extra="dwave",
            remote=True,
            needs="a Leap token ('dwave config create' or DWAVE_API_TOKEN)",
            limits="the QPU's working graph (minor embedding)",
            configured="qopt.solvers.accounts:leap_status",
            modules=("dwave.system",),
        ),
        SolverSpec(
            "dwave-hybrid",
            "qopt.solvers.dwave:LeapHybridSolver",
            "Leap hybrid BQM solver",
            extra="dwave",
            remote=True,
            needs="a Leap token ('dwave config create' or DWAVE_API_TOKEN)",
            limits="the hybrid solver's maximum variables (reported by Leap)",
            configured="qopt.solvers.accounts:leap_status",
            modules=("dwave.system",),
        ),
        SolverSpec(
            "qaoa-qiskit",
            "qopt.solvers.qiskit_qaoa:QiskitQAOASolver",
            "QAOA through qiskit-optimization on Qiskit primitives; IBM hardware with a token",
            extra="qiskit",
            needs="nothing locally; an IBM Quantum token for hardware",
            limits="about 20 qubits on the local statevector simulator",
            configured="qopt.solvers.accounts:ibm_status",
            modules=("qiskit", "qiskit_optimization"),
        ),
    ]
}

_REGISTERED: dict[str, SolverSpec] = {}


def register_solver(spec: SolverSpec) -> None:
    """Add a backend to the registry (replacing one of the same name registered earlier).

    Examples:
        >>> import dimod
        >>> from qopt.solvers import SolverSpec, get_solver, register_solver
        >>> register_solver(SolverSpec("random", dimod.RandomSampler, "uniform random samples"))
        >>> get_solver("random").sample_ising({"a": 1}, {}).record.sample.shape
        (10, 1)
    """
    if spec.name in _BUILTIN:
        raise SolverConfigurationError(
            f"'{spec.name}' is a built-in solver name; register yours under another name."
        )
    _REGISTERED[spec.name] = spec


@functools.cache
def _entry_point_specs() -> dict[str, SolverSpec]:
    # Scanning installed distributions costs milliseconds; plugins installed while a process
    # runs are seen by the next process (or after _entry_point_specs.cache_clear()).
    specs = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        specs[entry.name] = SolverSpec(
            entry.name, entry.value, f"third-party backend from {entry.value}"
        )
    return specs


def available_solvers() -> dict[str, SolverSpec]:
    """Every registered backend by name: built-in, entry points, then :func:`register_solver`."""
    return {**_BUILTIN, **_entry_point_specs(), **_REGISTERED}


def solver_spec(name: str) -> SolverSpec:
    """The registry entry for ``name``; an unknown name raises, listing the known ones."""
    specs = available_solvers()
    if not isinstance(name, str) or name not in specs:
        close = difflib.get_close_matches(str(name), specs, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise UnknownSolverError(
            f"Unknown solver {name!r}.{hint} Known solvers: {', '.join(sorted(specs))}. "
            "Run 'qopt solvers' to see which are available here."
        )
    return specs[name]


def _option_names(factory: Callable[..., dimod.Sampler]) -> list[str] | None:
    """The keyword options a factory takes, or ``None`` when it takes any (``**kwargs``)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return [
        n
        for n, p in signature.parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def _build(
    spec: SolverSpec, options: dict[str, Any], defaults: Mapping[str, Any] | None = None
) -> dimod.Sampler:
    factory = spec.load()
    known = _option_names(factory)
    if known is not None:
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise SolverConfigurationError(
                f"Unknown option(s) {unknown} for solver '{spec.name}'. "
                f"Its options are: {', '.join(known) or 'none'}."
            )
    # A caller's defaults apply only where the backend has the option and the user set none:
    # they are preferences (fewer sweeps for small subproblems), never requirements.
    preferred = {
        k: v
        for k, v in (defaults or {}).items()
        if k not in options and (known is None or k in known)
    }
    return factory(**preferred, **options)


_UNSET: Any = object()


def get_solver(
    name: str = DEFAULT_SOLVER,
    *,
    fallback: str | None = _UNSET,
    retry_after: float = 60.0,
    decompose: bool | dict[str, Any] = False,
    defaults: Mapping[str, Any] | None = None,
    **options: Any,
) -> dimod.Sampler:
    """Build a backend by name, metered and (for remote backends) with a local fallback.

    Args:
        name: A registry name; ``qopt solvers`` lists them.
        fallback: For remote backends, the local solver used when the remote one fails
            (default ``"sa"``); ``None`` raises instead. Local backends have no fallback.
        retry_after: After a remote failure, seconds during which the fallback answers at once
            instead of trying the remote backend again (0: try it at every solve).
        decompose: Solve problems larger than the backend takes by large-neighbourhood search
            with this backend on subproblems (:class:`~qopt.solvers.DecompositionSolver`);
            ``True`` or a dict of its options.
        defaults: Options a caller prefers for its problems (e.g. fewer SA sweeps for small
            subproblems). Each applies only if the backend has that option and ``options``
            does not set it; a backend without it ignores it. This is how callers tune a
            backend without testing its type.
        **options: The backend's keyword options, checked now.

    Returns:
        A :class:`dimod.Sampler` whose sample sets carry a solve record in
        ``info["qopt"]`` (read it with :func:`qopt.metering.record_of`).

    Raises:
        UnknownSolverError: ``name`` is not registered; the message lists the known names.
        SolverConfigurationError: An option is unknown or out of range.
        MissingDependencyError: The backend's optional packages are not installed.

    Examples:
        >>> import dimod
        >>> from qopt.solvers import get_solver
        >>> solver = get_solver("sa", num_reads=5, seed=7)
        >>> bqm = dimod.BinaryQuadraticModel({"a": -1, "b": 2}, {("a", "b"): -1}, 0, "BINARY")
        >>> {v: int(x) for v, x in solver.sample(bqm).first.sample.items()}
        {'a': 1, 'b': 0}
    """
    from qopt.solvers.composites import FallbackComposite, MeteredComposite

    spec = solver_spec(name)
    settings = _decompose_settings(decompose, name)
    if defaults is not None and not isinstance(defaults, Mapping):
        raise SolverConfigurationError(
            "The 'defaults' parameter of get_solver must be a mapping of option names to "
            f"values or None. Got {type(defaults).__name__} instead."
        )
    solver = _build(spec, options, defaults)
    # The seed a caller prefers also seeds what wraps the backend (the decomposition, the
    # fallback), even where the backend itself has none (exact, dwave).
    seed = options.get("seed", (defaults or {}).get("seed"))
    if settings is not None:
        from qopt.solvers.decomposition import DecompositionSolver

        if seed is not None:
            settings.setdefault("seed", int(seed) % 2**32)
        # Inside the fallback: a failing remote child falls back on the whole problem.
        solver = DecompositionSolver(solver, **settings)
    # A backend is remote by its spec, or by how it was configured (Qiskit with an IBM backend).
    remote = spec.remote or bool(getattr(solver, "remote", False))
    if fallback is _UNSET:
        fallback = DEFAULT_SOLVER if remote else None
    if fallback is not None:
        if fallback == name:
            raise SolverConfigurationError(f"Solver '{name}' cannot be its own fallback.")
        fallback_spec = solver_spec(fallback)
        if fallback_spec.remote:
            raise SolverConfigurationError(
                f"The fallback must be a local solver; '{fallback}' is remote."
            )
        solver = FallbackComposite(
            solver,
            _build(fallback_spec, {}, None if seed is None else {"seed": seed}),
            name=name,
            fallback_name=fallback,
            retry_after=retry_after,
        )
    return MeteredComposite(solver, name=name)


#: The options :func:`get_solver` itself takes, besides the backend's own.
_GET_SOLVER_OPTIONS = ("fallback", "retry_after", "decompose")


def _decompose_settings(decompose: Any, name: str) -> dict[str, Any] | None:
    """``decompose=`` as :class:`~qopt.solvers.DecompositionSolver` options (``None``: off),
    its option names checked; their values are checked when it is built."""
    if decompose is False or decompose is None:
        return None
    if decompose is True:
        return {}
    if not isinstance(decompose, Mapping):
        raise SolverConfigurationError(
            f"The 'decompose' option of solver '{name}' must be True, False or a dict of "
            f"DecompositionSolver options. Got {decompose!r} instead."
        )
    from qopt.solvers.decomposition import DecompositionSolver

    valid = [n for n in _option_names(DecompositionSolver) or [] if n != "child"]
    unknown = sorted(str(k) for k in decompose if k not in valid)
    if unknown:
        raise SolverConfigurationError(
            f"Unknown decompose option(s) {unknown} for solver '{name}'. "
            f"DecompositionSolver's options are: {', '.join(valid)}."
        )
    return dict(decompose)


def check_solver_options(
    solver: str | dimod.Sampler, options: Mapping[str, Any] | None, owner: str
) -> None:
    """Check ``solver=`` and ``solver_options=`` as every qopt entry point takes them, building nothing.

    ``solver`` is a registry name or a :class:`dimod.Sampler` instance. ``options`` are the
    options of :func:`get_solver` for that name (the backend's keyword options, ``fallback``,
    ``retry_after``, ``decompose``); an instance is configured by whoever built it, so it takes
    none.

    Raises:
        UnknownSolverError: ``solver`` is a name that is not registered (the known ones listed).
        SolverConfigurationError: ``solver`` is neither a name nor a sampler, options were given
            with an instance, or an option is unknown (the valid ones listed).
        MissingDependencyError: The backend's optional packages are not installed.
    """
    options = dict(options or {})
    if isinstance(solver, dimod.Sampler):
        if options:
            raise SolverConfigurationError(
                f"{owner} got solver_options {sorted(options)} with a solver instance; "
                "configure the instance when you build it, or pass the solver by name."
            )
        return
    if not isinstance(solver, str):
        raise SolverConfigurationError(
            f"The 'solver' parameter of {owner} must be a registry name (see 'qopt solvers') "
            f"or a dimod.Sampler. Got {type(solver).__name__} instead."
        )
    _decompose_settings(options.get("decompose", False), solver)
    known = solver_spec(solver).option_names()
    if known is None:
        return
    valid = [*known, *_GET_SOLVER_OPTIONS]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise SolverConfigurationError(
            f"{owner} got unknown solver_options {unknown} for solver '{solver}'. "
            f"Its options are: {', '.join(valid)}."
        )


def resolve_solver(
    solver: str | dimod.Sampler,
    options: Mapping[str, Any] | None = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    owner: str = "resolve_solver()",
) -> dimod.Sampler:
    """The one way an integration turns ``solver=`` / ``solver_options=`` into a sampler.

    A name is built with :func:`get_solver` (metered, with the remote fallback), ``options``
    as its options and ``defaults`` as the caller's preferences; an instance is returned as
    given (:func:`qopt.pipeline.solve` meters it). Errors as :func:`check_solver_options`.

    Examples:
        >>> from qopt.solvers import resolve_solver
        >>> sampler = resolve_solver("sa", {"seed": 0}, defaults={"num_sweeps": 100})
        >>> sampler.children[0].num_sweeps, sampler.children[0].seed
        (100, 0)
    """
    check_solver_options(solver, options, owner)
    if isinstance(solver, dimod.Sampler):
        return solver
    return get_solver(solver, defaults=defaults, **dict(options or {}))


@dataclass(frozen=True)
class SolverStatus:
    """Whether a backend can run here, as ``qopt solvers`` shows it."""

    spec: SolverSpec
    installed: bool
    ready: bool
    message: str


def _installed(spec: SolverSpec) -> None:
    """Raise :class:`MissingDependencyError` unless the backend's packages are installed."""
    if spec.modules is None:
        spec.load()
        return
    for module in spec.modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # a parent package is missing
            found = False
        if not found:
            raise MissingDependencyError(f"Solver '{spec.name}' needs '{module}'.")


def solver_status(name: str) -> SolverStatus:
    """Check, without solving anything, whether backend ``name`` is installed and configured.

    A built-in backend's packages are looked up, not imported, so listing every backend takes
    well under a second.
    """
    spec = solver_spec(name)
    try:
        _installed(spec)
    except MissingDependencyError:
        extra = f"pip install 'qopt-loop[{spec.extra}]'" if spec.extra else "reinstall qopt-loop"
        return SolverStatus(spec, False, False, f"not installed: {extra}")
    except Exception as error:  # a broken third-party plugin must not break the listing
        return SolverStatus(spec, False, False, f"failed to load: {type(error).__name__}: {error}")
    if spec.configured is None:
        return SolverStatus(spec, True, True, "ready")
    module_name, _, attribute = spec.configured.partition(":")
    check = getattr(importlib.import_module(module_name), attribute)
    ready, message = check()
    # A local backend that can also reach hardware (Qiskit) runs here without an account: the
    # check then only informs.
    return SolverStatus(spec, True, bool(ready) or not spec.remote, str(message))
