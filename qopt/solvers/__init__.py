"""Every optimizer qopt can send a QUBO to, as a :class:`dimod.Sampler`.

Examples:
    >>> import dimod
    >>> from qopt.solvers import get_solver
    >>> bqm = dimod.generators.ran_r(1, 12, seed=3)
    >>> sampleset = get_solver("sa", seed=0).sample(bqm)
    >>> bool(sampleset.first.energy <= 0)
    True
"""

from __future__ import annotations

from qopt.solvers._registry import (
    DEFAULT_SOLVER,
    SolverSpec,
    SolverStatus,
    available_solvers,
    check_solver_options,
    get_solver,
    register_solver,
    resolve_solver,
    solver_spec,
    solver_status,
)
from qopt.solvers.classical import (
    ExactSolver,
    SimulatedAnnealingSolver,
    SteepestDescentSolver,
    TabuSolver,
)
from qopt.solvers.composites import FallbackComposite, MeteredComposite, QoptFallbackWarning
from qopt.solvers.decomposition import DecompositionSolver

__all__ = [
    "DEFAULT_SOLVER",
    "DecompositionSolver",
    "ExactSolver",
    "FallbackComposite",
    "MeteredComposite",
    "QoptFallbackWarning",
    "SimulatedAnnealingSolver",
    "SolverSpec",
    "SolverStatus",
    "SteepestDescentSolver",
    "TabuSolver",
    "available_solvers",
    "check_solver_options",
    "get_solver",
    "register_solver",
    "resolve_solver",
    "solver_spec",
    "solver_status",
]
