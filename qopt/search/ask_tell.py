"""QuboSearch: the proposal engine behind a plain ask/tell loop, no framework needed."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import dimod
import numpy as np

from qopt._validation import check_no_unknown_keywords
from qopt.encoding import Parameter, ParameterConstraint
from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.search.engine import ProposalEngine
from qopt.search.history import History, outcome_quantile, point_key
from qopt.search.space import EncodingOptions, check_constraint_names, check_constraints

__all__ = ["QuboSearch"]

_DIRECTIONS = ("minimize", "maximize")


class QuboSearch:
    """Search a discrete (or gridded) space by minimizing a quadratic surrogate as a QUBO.

    Each parameter is encoded into bits (:class:`qopt.encoding.SpaceEncoding`: one-hot for
    categoricals, domain-wall for ordered values, a grid of ``n_bins`` points for continuous
    floats). The first points follow a space-filling design that turns every bit on at least
    once; after that :meth:`ask` fits a quadratic surrogate over the bits to the points told so
    far (a factorization machine, ``"fm"``: FMQA, Kitai et al., Phys. Rev. Research 2, 013319
    (2020); or a sparse Bayesian quadratic model with Thompson sampling, ``"bocs"``: Baptista &
    Poloczek, ICML 2018), turns it into a QUBO with the encoding's constraints and the known
    linear ``constraints``, solves it through :func:`qopt.pipeline.solve`, and decodes the best
    sample not yet asked. Points asked and not yet told are never proposed twice and enter the
    fit at the worst value seen (constant liar). Several objectives are scalarized with random
    weights each ask (ParEGO: Knowles, IEEE Trans. Evol. Comput. 10(1), 2006).

    Args:
        parameters: Parameter name to :class:`qopt.encoding.CategoricalParameter`,
            :class:`~qopt.encoding.IntParameter` or :class:`~qopt.encoding.FloatParameter`.
        directions: ``"minimize"`` or ``"maximize"`` per objective.
        constraints: Known linear constraints (:class:`qopt.encoding.ParameterConstraint`);
            every proposal satisfies them.
        solver: A qopt solver name (``qopt solvers`` lists them) or a :class:`dimod.Sampler`.
        solver_options: Options of :func:`qopt.solvers.get_solver` for a named solver (where
            the backend has ``num_sweeps`` and none is given, 300).
        surrogate: ``"fm"`` or ``"bocs"``.
        surrogate_options: Keyword options of the surrogate class.
        target_transform: ``"rank"``, ``"exp"``, ``"standardize"`` or ``"robust"``
            (:func:`qopt.surrogates.transform_targets`).
        n_startup_trials: Points of the space-filling start (raised to what it takes to turn
            every bit on once).
        seed: Seed for a reproducible search.
        encoding: ``"auto"``, ``"one-hot"`` or ``"domain-wall"`` for every parameter.
        encodings: Per-parameter overrides of ``encoding``.
        n_bins: Grid points for each continuous float parameter.
        max_values: Integer and stepped-float ranges with more values are thinned to this many.
        max_bits: Refuse spaces that encode to more bits.
        local_search: When the surrogate's optimum was tried already, propose the
            best-predicted untried point within two steps of the best point.
        trust_region: Radius of a Hamming trust region around the best point (Casmopolitan:
            Wan et al., ICML 2021), or ``None`` to search the whole space; see
            :class:`qopt.integrations.optuna.QuboSampler` for the details.
        trust_region_method: ``"solver"`` or ``"enumerate"``.
        trust_region_restart: Restart the trust region after this many proposals in a row
            without improvement (TuRBO: Eriksson et al., NeurIPS 2019), or ``None``.

    Attributes:
        space: The :class:`~qopt.encoding.SpaceEncoding`.
        history: What has been told, and the pending points.
        last_info: How the last asked point was found (phase, candidate source, prediction).

    Raises:
        SolverConfigurationError: An option is unknown or out of range (including
            ``solver_options`` the backend does not take).
        UnknownSolverError: ``solver`` is not a registered name.
        InvalidProblemError: A constraint names an unknown parameter (the valid ones listed)
            or no point satisfies the constraints.

    Examples:
        >>> from qopt.encoding import CategoricalParameter, IntParameter
        >>> from qopt.search import QuboSearch
        >>> search = QuboSearch(
        ...     {"x": IntParameter(0, 7), "op": CategoricalParameter(("a", "b", "c"))},
        ...     seed=0, n_startup_trials=4, surrogate_options={"n_epochs": 50},
        ... )
        >>> for _ in range(12):
        ...     params = search.ask()
        ...     search.tell(params, (params["x"] - 5) ** 2 + (params["op"] != "b"))
        >>> search.best_params()
        {'x': 5, 'op': 'b'}
    """

    def __init__(
        self,
        parameters: Mapping[str, Parameter],
        *,
        directions: Sequence[str] = ("minimize",),
        constraints: Sequence[ParameterConstraint] = (),
        solver: str | dimod.Sampler = "sa",
        solver_options: Mapping[str, Any] | None = None,
        surrogate: str = "fm",
        surrogate_options: Mapping[str, Any] | None = None,
        target_transform: str = "rank",
        n_startup_trials: int = 10,
        seed: int | None = None,
        encoding: str = "auto",
        encodings: Mapping[str, str] | None = None,
        n_bins: int = 16,
        max_values: int = 32,
        max_bits: int | None = None,
        local_search: bool = False,
        trust_region: int | None = None,
        trust_region_method: str = "solver",
        trust_region_restart: int | None = None,
        **unexpected: Any,
    ) -> None:
        owner = type(self).__name__
        check_no_unknown_keywords(owner, unexpected, QuboSearch)
        directions = [directions] if isinstance(directions, str) else list(directions)
        if not directions or any(d not in _DIRECTIONS for d in directions):
            raise SolverConfigurationError(
                f"The 'directions' parameter of {owner} must be a non-empty list of "
                f"{list(_DIRECTIONS)}. Got {directions!r} instead."
            )
        self.directions = directions
        self._signs = [1.0 if d == "minimize" else -1.0 for d in directions]
        constraints = check_constraints(constraints, owner)
        check_constraint_names(constraints, list(parameters), owner)
        unknown = sorted(set(encodings or {}) - set(parameters))
        if unknown:
            raise SolverConfigurationError(
                f"The 'encodings' parameter of {owner} names unknown parameter(s) {unknown}. "
                f"The parameters are: {sorted(parameters)}."
            )
        options = EncodingOptions(
            encoding=encoding,
            encodings=dict(encodings or {}),
            n_bins=n_bins,
            max_values=max_values,
            max_bits=max_bits,
            owner=owner,
        )
        self.engine = ProposalEngine(
            solver=solver,
            solver_options=solver_options,
            surrogate=surrogate,
            surrogate_options=surrogate_options,
            target_transform=target_transform,
            n_startup_trials=n_startup_trials,
            seed=seed,
            local_search=local_search,
            trust_region=trust_region,
            trust_region_method=trust_region_method,
            trust_region_restart=trust_region_restart,
            owner=owner,
        )
        self.space = options.encode(parameters, constraints)
        self.history = History()
        self.last_info: dict[str, Any] = {}
        # Pending points by key: their predicted quantile and whether they restart the region.
        self._asked: dict[tuple[int, ...], tuple[float | None, bool]] = {}

    def ask(self) -> dict[str, Any]:
        """The next point to evaluate, as parameter values."""
        proposal = self.engine.propose(self.space, self.history, self._signs)
        indices = proposal.indices
        restart = bool(proposal.info.get("trust_restart", False))
        self.history.add_pending(indices, self.space.encode_indices(indices), restart=restart)
        self._asked[point_key(indices)] = (proposal.info.get("predicted_quantile"), restart)
        self.last_info = proposal.info
        return self.space.values_of(indices)

    def tell(
        self,
        params: Mapping[str, Any],
        values: float | Sequence[float] | None,
        *,
        constraints: Sequence[float] = (),
    ) -> None:
        """Report the outcome of a point (asked or not).

        Args:
            params: The point's parameter values (off-grid numbers snap to the grid).
            values: The objective value, one per direction; ``None`` or NaN when the
                evaluation failed (the point then ranks worst).
            constraints: Black-box constraint values, feasible when all are ``<= 0``; an
                infeasible point ranks after every feasible one, ordered by violation.
        """
        indices = self.space.indices_of(params)
        key = point_key(indices)
        row = self.space.encode_indices(indices)
        forecast, restart = self._asked.pop(key, (None, False))
        self._drop_pending(key)
        n = len(self.directions)
        if values is None:
            told: tuple[float, ...] = (math.nan,) * n
        elif isinstance(values, Sequence | np.ndarray):
            told = tuple(float(v) for v in values)
        else:
            told = (float(values),)
        if len(told) != n:
            raise InvalidProblemError(
                f"QuboSearch.tell got {len(told)} value(s) for {n} direction(s) {self.directions}."
            )
        if any(math.isnan(v) for v in told):
            self.history.add_failed(indices, row, n_objectives=n, restart=restart)
            outcome = 1.0
        else:
            violation = float(sum(max(0.0, float(v)) for v in constraints))
            earlier = [
                self._signs[0] * v[0] for v in self.history.values if n == 1 and math.isfinite(v[0])
            ]
            self.history.add_complete(indices, row, told, violation=violation, restart=restart)
            outcome = outcome_quantile(self._signs[0] * told[0], earlier)
        if forecast is not None and n == 1:
            self.history.add_forecast(forecast, outcome)

    def best_params(self) -> dict[str, Any] | None:
        """The best feasible point told so far (first objective), or None."""
        best, best_value = None, math.inf
        for point, values, violation in zip(
            self.history.points, self.history.values, self.history.violations, strict=True
        ):
            value = self._signs[0] * values[0]
            if violation <= 0 and not math.isnan(value) and value < best_value:
                best, best_value = point, value
        return None if best is None else self.space.values_of(best)

    def _drop_pending(self, key: tuple[int, ...]) -> None:
        history = self.history
        for i, point in enumerate(history.pending):
            if point_key(point) == key:
                del history.pending[i], history.pending_rows[i]
                break
        history.pending_restart = any(
            self._asked.get(point_key(p), (None, False))[1] for p in history.pending
        )
