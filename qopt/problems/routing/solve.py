"""``solve_routing``: token groups in one block-diagonal QUBO through the pipeline, warm-started,
repaired and polished."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import dimod
import numpy as np

from qopt._validation import check_float, check_int
from qopt.exceptions import SolverConfigurationError
from qopt.problems.routing.assignment import (
    affinity,
    as_matrix,
    check_capacity,
    check_k,
    check_scores,
    from_matrix,
    topk_assignment,
)
from qopt.problems.routing.baselines import sinkhorn_assignment
from qopt.problems.routing.formulation import (
    RoutingVectors,
    objective_terms,
    routing_problem,
    routing_vectors,
    slack_bits,
)
from qopt.problems.routing.objective import PairwiseTerms, routing_energy
from qopt.problems.routing.polish import polish_groups
from qopt.problems.routing.repair import repair_assignment

if TYPE_CHECKING:
    from qopt.constraints import ConstrainedQUBO
    from qopt.pipeline import Solution

__all__ = [
    "ROUTING_SOLVER_DEFAULTS",
    "RoutingSolution",
    "solve_routing",
]

#: The solver effort routing prefers (``defaults=`` of :func:`qopt.solvers.resolve_solver`):
#: one read of 20 sweeps, where a backend has those options. Routing refines a classical
#: warm start; at 1024 tokens x 8 experts the anneal keeps the Sinkhorn warm start in every
#: group at 20 sweeps as at 100 (docs/benchmarks/moe.md), and the sweeps were a third of the solve's CPU.
ROUTING_SOLVER_DEFAULTS: Mapping[str, Any] = MappingProxyType({"num_reads": 1, "num_sweeps": 20})

WarmStart = Literal["sinkhorn", "greedy"] | None
Polish = Literal["global", "groups"] | None


@dataclass
class RoutingSolution:
    """A routing solved through the QUBO pipeline, always feasible.

    Attributes:
        assignment: Shape ``(T, k)``: every token's experts, best score first.
        energy: :func:`routing_energy` of the assignment (negated affinity plus pairwise terms).
        affinity: Sum of the scores of the assigned pairs.
        num_samples: Samples the solver returned, counted once per group (one read of a
            batch of G groups counts G).
        num_infeasible: Of those, how many broke a constraint of their group before repair.
        num_groups: Token groups solved together in one batch.
        warm_start_kept: Groups where the warm start beat the pipeline's answer and was kept.
        solver_wall_s: Wall-clock seconds the solver took (from the solve records).
        sample_energy: :func:`routing_energy` of the pipeline's answer (the solver's best
            sample, repaired) before the polish and before any group fell back to the warm
            start: what the solver itself found.
        warm_energy: :func:`routing_energy` of the warm start (``nan`` without one).
        solutions: The pipeline's :class:`~qopt.pipeline.Solution` of the one solve that
            served all groups (its ``sampleset`` holds the raw samples).
    """

    assignment: np.ndarray
    energy: float
    affinity: float
    num_samples: int
    num_infeasible: int
    num_groups: int
    warm_start_kept: int
    solver_wall_s: float
    sample_energy: float = math.nan
    warm_energy: float = math.nan
    solutions: list[Solution] = field(default_factory=list, repr=False)

    @property
    def polish_gain(self) -> float:
        """How much the classical polish lowered the energy below the better of the solver's
        answer and the warm start (0 when it found nothing, or without polish)."""
        before = min(self.sample_energy, self.warm_energy)
        return 0.0 if math.isnan(before) else max(0.0, before - self.energy)

    @property
    def fallback(self) -> str | None:
        """Why the requested solver failed and its local fallback solved instead, or ``None``
        (from the solve record: :class:`~qopt.solvers.FallbackComposite` sets it)."""
        record = self.solutions[0].record if self.solutions else None
        return None if record is None else record.fallback

    @property
    def infeasible_fraction(self) -> float:
        """Raw solver samples that were infeasible before repair."""
        return self.num_infeasible / max(1, self.num_samples)


def solve_routing(
    scores: Any,
    k: int,
    capacity: int | np.ndarray,
    *,
    solver: str | dimod.Sampler = "sa",
    pairwise: PairwiseTerms | None = None,
    group_size: int | None = None,
    warm_start: WarmStart = "sinkhorn",
    penalty: float | Literal["auto"] | None = None,
    polish: Polish = "global",
    **sample_params: Any,
) -> RoutingSolution:
    """Route tokens through the QUBO pipeline, in token groups solved as one batch.

    The batch is cut into consecutive groups of ``group_size`` tokens (all tokens in one group
    when omitted) and each expert's capacity is shared among the groups. Each group's routing
    QUBO (:func:`routing_bqm`: the same BQM as :func:`routing_problem`, built from numpy
    arrays) becomes one block of a single block-diagonal BQM that goes to the solver in one
    call through :func:`qopt.pipeline.solve` (metered like every solve). The pipeline selects
    the answer as for any formulation: the model's objective is the block-diagonal routing
    objective, its constraints (``k`` experts per token, each group's capacity share) are
    checked on the whole sample array at once (``feasible_rows``), and every infeasible
    sample is repaired group by group with :func:`repair_assignment` (``repair_rows``), so
    the best sample over the reads wins (whole samples: groups are not mixed across reads).

    A classical warm start (``"sinkhorn"`` or ``"greedy"``, repaired to feasibility) sets
    the capacity split, is handed to the solver as its initial state when the solver takes
    ``initial_states`` (every slack bit set so that the state pays no penalty), and is kept
    for any group where it beats the pipeline's answer, so the result is never worse than the
    warm start on the objective. From that initial state simulated annealing anneals only
    the cold end of its schedule (:class:`~qopt.solvers.SimulatedAnnealingSolver`), so that
    it refines the warm start instead of melting it.

    Polish (classical, after the solver): the decoder runs :func:`polish_assignment`'s cycle
    canceling in every group on its capacity share (``"groups"``), on the routing objective
    with its pairwise terms; ``"global"`` (the default) then runs it once more over the whole
    batch with the full capacities, which moves tokens between the groups' shares. On a
    linear objective the global pass ends at the exact optimum for ``k = 1`` (and reached it
    on every ``k = 2`` instance measured): there the polish, not the annealer, does the work
    (docs/benchmarks/moe.md). It never makes the energy worse; ``polish=None`` turns it off.

    Args:
        scores: Router scores, shape ``(T, E)``, finite.
        k: Experts per token.
        capacity: Slots per expert (int or shape ``(E,)``), adding up to at least ``T k``.
        solver: A registry name (``qopt solvers``) or any :class:`dimod.Sampler`.
        pairwise: Optional quadratic terms (see :class:`PairwiseTerms`).
        group_size: Tokens per group; smaller groups mean smaller QUBOs but a coarser
            capacity split.
        warm_start: ``"sinkhorn"``, ``"greedy"`` or ``None``.
        penalty: Constraint penalty (see :func:`routing_problem`); ``"auto"`` builds each
            group through :class:`~qopt.constraints.ConstrainedQUBO` (slower).
        polish: ``"global"``, ``"groups"`` or ``None`` (see above).
        **sample_params: Passed to the solver's ``sample`` (e.g. ``seed``, ``num_reads``).

    Returns:
        A :class:`RoutingSolution`; its assignment is always feasible.

    Examples:
        >>> import numpy as np
        >>> from qopt.problems.routing import routing_stats, solve_routing
        >>> scores = np.random.default_rng(1).normal(size=(16, 4))
        >>> result = solve_routing(scores, 2, 8, group_size=8, seed=0)
        >>> routing_stats(result.assignment, 4, 8).capacity_violation, result.num_groups
        (0, 2)
    """
    from qopt.pipeline import Formulation, solve
    from qopt.solvers import resolve_solver

    values = check_scores(scores, "solve_routing")
    num_tokens, num_experts = values.shape
    k = check_k(k, num_experts, "solve_routing")
    cap = check_capacity(capacity, num_tokens, num_experts, k, "solve_routing", complete=True)
    group_size, warm_start, penalty, polish = check_routing_options(
        group_size, warm_start, penalty, polish, "solve_routing"
    )
    if group_size is None:
        group_size = num_tokens
    warm: np.ndarray | None = None
    if warm_start == "sinkhorn":
        warm = sinkhorn_assignment(values, k, cap, repair=True)
    elif warm_start == "greedy":
        warm = repair_assignment(topk_assignment(values, k), values, k, cap)

    groups = [
        np.arange(s, min(s + group_size, num_tokens)) for s in range(0, num_tokens, group_size)
    ]
    group_caps = _split_capacity(cap, groups, k, warm)
    if any(
        int(np.minimum(c, g.size).sum()) < g.size * k
        for c, g in zip(group_caps, groups, strict=True)
    ):
        # The split could not keep every group feasible (tiny groups, tight capacity): one group.
        groups, group_caps = [np.arange(num_tokens)], [cap]
    group_pairwise = [None if pairwise is None else pairwise.for_tokens(g) for g in groups]
    blocks = [
        _group_vectors(values[g], k, c, p, penalty)
        for g, c, p in zip(groups, group_caps, group_pairwise, strict=True)
    ]
    bqm, slack_starts = _block_diagonal(blocks, num_tokens * num_experts, groups, num_experts)
    slacks = [b.slack for b in blocks]

    sampler = resolve_solver(solver, owner="solve_routing()")
    # dimod's contract: a sampler lists the keyword arguments it takes. One that takes
    # initial states gets the warm start; how it uses them (simulated annealing anneals only
    # the cold end of its schedule) is its own business.
    if (
        warm is not None
        and "initial_states" not in sample_params
        and "initial_states" in sampler.parameters
    ):
        state = _warm_state(warm, slacks, slack_starts, groups, group_caps, bqm.num_variables)
        # The BQM's variables are 0..n-1 in order, so the array needs no labels.
        sample_params["initial_states"] = state[None, :]
    model, feasible_rows, repair_rows = _block_formulation(
        values, k, groups, group_caps, group_pairwise
    )
    decisions = num_tokens * num_experts

    raw_matrix: list[np.ndarray] = []

    def decode(sample: Mapping[Hashable, int]) -> np.ndarray:
        flat = np.array(list(map(sample.__getitem__, range(decisions))), dtype=bool)
        matrix = flat.reshape(num_tokens, num_experts)
        raw_matrix.append(matrix)
        if polish is not None:  # the sample is feasible: selected after repair
            matrix = polish_groups(
                matrix, values, groups, group_caps, group_pairwise, num_tokens * k
            )
        return from_matrix(matrix, values, k)

    formulation = Formulation(
        model, decode=decode, bqm=bqm, feasible_rows=feasible_rows, repair_rows=repair_rows
    )
    solution = solve(formulation, sampler, **sample_params)
    assignment = solution.value
    sample_energy = routing_energy(from_matrix(raw_matrix[-1], values, k), values, pairwise)
    kept = 0
    if warm is not None:
        # The warm start is feasible in every group: keep it wherever it beats the solver.
        for g, p in zip(groups, group_pairwise, strict=True):
            if (
                routing_energy(warm[g], values[g], p)
                < routing_energy(assignment[g], values[g], p) - 1e-12
            ):
                assignment[g] = warm[g]
                kept += 1
    if polish == "global" and len(groups) > 1:
        # Across the groups: tokens may now trade the capacity shares the split fixed.
        whole = polish_groups(
            as_matrix(assignment, num_experts),
            values,
            [np.arange(num_tokens)],
            [cap],
            [pairwise],
            num_tokens * k,
        )
        assignment = from_matrix(whole, values, k)

    # Raw samples before repair, counted per group (one read seen by G groups is G samples).
    sampleset = solution.sampleset
    position = np.empty(bqm.num_variables, dtype=np.int64)
    position[np.asarray(list(sampleset.variables), dtype=np.int64)] = np.arange(bqm.num_variables)
    raw = np.asarray(sampleset.record.sample)[:, position[:decisions]]
    occurrences = np.asarray(sampleset.record.num_occurrences, dtype=np.int64)
    group_ok = _groups_feasible(raw, num_experts, k, groups, group_caps)
    return RoutingSolution(
        assignment=assignment,
        energy=routing_energy(assignment, values, pairwise),
        affinity=affinity(assignment, values),
        num_samples=int(occurrences.sum()) * len(groups),
        num_infeasible=int((occurrences[:, None] * ~group_ok).sum()),
        num_groups=len(groups),
        warm_start_kept=kept,
        solver_wall_s=float(solution.record.wall_s) if solution.record is not None else 0.0,
        sample_energy=sample_energy,
        warm_energy=math.nan if warm is None else routing_energy(warm, values, pairwise),
        solutions=[solution],
    )


def check_routing_options(
    group_size: Any, warm_start: Any, penalty: Any, polish: Any, owner: str
) -> tuple[int | None, WarmStart, float | Literal["auto"] | None, Polish]:
    """Check :func:`solve_routing`'s settings (``owner`` names the caller); return them."""
    if group_size is not None:
        group_size = check_int(group_size, "group_size", owner, low=1)
    if warm_start not in ("sinkhorn", "greedy", None):
        raise SolverConfigurationError(
            f"The 'warm_start' parameter of {owner} must be 'sinkhorn', 'greedy' or None. "
            f"Got {warm_start!r} instead."
        )
    if penalty is not None and penalty != "auto":
        penalty = check_float(penalty, "penalty", owner, low=0.0, low_inclusive=False)
    if polish not in ("global", "groups", None):
        raise SolverConfigurationError(
            f"The 'polish' parameter of {owner} must be 'global', 'groups' or None. "
            f"Got {polish!r} instead."
        )
    return group_size, warm_start, penalty, polish


def _groups_feasible(
    rows: np.ndarray,
    num_experts: int,
    k: int,
    groups: list[np.ndarray],
    group_caps: list[np.ndarray],
) -> np.ndarray:
    """Per sample and group: every token has ``k`` experts and no expert exceeds its share.

    ``rows`` has shape ``(n, T * E)`` (decision ``t * E + e``); returns shape ``(n, G)``.
    Groups are consecutive token ranges, so each check is one ``reduceat`` over the tokens.
    """
    matrices = np.asarray(rows, dtype=np.int64).reshape(rows.shape[0], -1, num_experts)
    starts = np.array([int(g[0]) for g in groups])
    tokens_ok = matrices.sum(axis=2) == k  # (n, T)
    every_token = np.logical_and.reduceat(tokens_ok, starts, axis=1)  # (n, G)
    loads = np.add.reduceat(matrices, starts, axis=1)  # (n, G, E)
    within = (loads <= np.stack(group_caps)[None]).all(axis=2)
    result: np.ndarray = every_token & within
    return result


def _block_formulation(
    values: np.ndarray,
    k: int,
    groups: list[np.ndarray],
    group_caps: list[np.ndarray],
    group_pairwise: list[PairwiseTerms | None],
) -> tuple[ConstrainedQUBO, Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """The block-diagonal routing objective as a model, with its array feasibility and repair.

    Returns a :class:`~qopt.constraints.ConstrainedQUBO` holding only the objective (the
    constraints would cost a Python call per token to register; ``feasible_rows`` checks
    them on the sample array instead) and the ``feasible_rows`` / ``repair_rows`` pair for
    :class:`~qopt.pipeline.Formulation`.
    """
    from qopt.constraints import ConstrainedQUBO

    num_tokens, num_experts = values.shape
    linear_parts: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    data: list[np.ndarray] = []
    for g, p in zip(groups, group_pairwise, strict=True):
        linear, r, c, d = objective_terms(values[g], p)
        shift = int(g[0]) * num_experts  # groups are contiguous: local index + shift is global
        linear_parts.append(linear)
        rows.extend(part + shift for part in r)
        cols.extend(part + shift for part in c)
        data.extend(d)
    empty = np.zeros(0, dtype=np.int64)
    objective = dimod.BinaryQuadraticModel.from_numpy_vectors(
        np.concatenate(linear_parts),
        (
            np.concatenate(rows) if rows else empty,
            np.concatenate(cols) if cols else empty,
            np.concatenate(data) if data else np.zeros(0),
        ),
        0.0,
        dimod.BINARY,
    )
    model = ConstrainedQUBO(objective)

    def feasible_rows(samples: np.ndarray) -> np.ndarray:
        ok = _groups_feasible(samples, num_experts, k, groups, group_caps)
        return np.asarray(ok.all(axis=1), dtype=bool)

    def repair_rows(samples: np.ndarray) -> np.ndarray:
        out = np.array(samples, dtype=np.int8, copy=True)
        fixed = out.reshape(out.shape[0], num_tokens, num_experts)  # a view of ``out``
        ok = _groups_feasible(out, num_experts, k, groups, group_caps)
        for r, i in zip(*np.nonzero(~ok), strict=True):
            g = groups[i]  # only the broken groups: feasible ones are kept as the solver left them
            repaired = repair_assignment(fixed[r, g].astype(bool), values[g], k, group_caps[i])
            fixed[r, g] = as_matrix(repaired, num_experts)
        return out

    return model, feasible_rows, repair_rows


def _group_vectors(
    values: np.ndarray,
    k: int,
    cap: np.ndarray,
    pairwise: PairwiseTerms | None,
    penalty: float | Literal["auto"] | None,
) -> RoutingVectors:
    """One group's QUBO; ``"auto"`` goes through ConstrainedQUBO for its weights."""
    if penalty != "auto":
        return routing_vectors(values, k, cap, pairwise, penalty)
    num_tokens, num_experts = values.shape
    bqm = routing_problem(values, k, cap, pairwise=pairwise, penalty="auto").model.to_bqm("auto")
    layout = routing_vectors(values, k, cap, None, 1.0)  # same variables, same slack bits
    order: list[Hashable] = [(t, e) for t in range(num_tokens) for e in range(num_experts)]
    for e, coefficients, _ in layout.slack:
        order.extend(f"slack[expert {e}][{j}]" for j in range(coefficients.size))
    linear, (rows, cols, data), offset = bqm.to_numpy_vectors(variable_order=order)  # type: ignore[misc]
    return RoutingVectors(
        linear=np.asarray(linear, dtype=float),
        rows=np.asarray(rows, dtype=np.int64),
        cols=np.asarray(cols, dtype=np.int64),
        data=np.asarray(data, dtype=float),
        offset=float(offset),
        slack=layout.slack,
    )


def _block_diagonal(
    blocks: list[RoutingVectors], num_decisions: int, groups: list[np.ndarray], num_experts: int
) -> tuple[dimod.BinaryQuadraticModel, list[int]]:
    """All groups in one BQM over integers: decisions ``t * E + e`` (global ``t``), then slack.

    Returns the BQM and, per group, the index of its first slack variable.
    """
    size = [b.linear.size for b in blocks]
    remap: list[np.ndarray] = []
    slack_starts: list[int] = []
    next_slack = num_decisions
    for g, n in zip(groups, size, strict=True):
        local = g.size * num_experts
        mapping = np.empty(n, dtype=np.int64)
        mapping[:local] = int(g[0]) * num_experts + np.arange(local)  # groups are contiguous
        mapping[local:] = next_slack + np.arange(n - local)
        slack_starts.append(next_slack)
        next_slack += n - local
        remap.append(mapping)
    linear = np.zeros(next_slack)
    for b, mapping in zip(blocks, remap, strict=True):
        linear[mapping] = b.linear
    bqm = dimod.BinaryQuadraticModel.from_numpy_vectors(
        linear,
        (
            np.concatenate([m[b.rows] for b, m in zip(blocks, remap, strict=True)]),
            np.concatenate([m[b.cols] for b, m in zip(blocks, remap, strict=True)]),
            np.concatenate([b.data for b in blocks]),
        ),
        sum(b.offset for b in blocks),
        dimod.BINARY,
    )
    return bqm, slack_starts


def _warm_state(
    warm: np.ndarray,
    slacks: list[list[tuple[int, np.ndarray, int]]],
    slack_starts: list[int],
    groups: list[np.ndarray],
    group_caps: list[np.ndarray],
    num_variables: int,
) -> np.ndarray:
    """The warm start as a state of the block-diagonal BQM, every slack at its best value.

    The warm start fits each group's capacity share, so each capacity constraint's slack
    takes ``capacity - load`` and its penalty is exactly zero.
    """
    num_experts = group_caps[0].size
    state = np.zeros(num_variables, dtype=np.int8)
    matrix = as_matrix(warm, num_experts)
    state[: matrix.size] = matrix.reshape(-1)
    for slack, start, g, c in zip(slacks, slack_starts, groups, group_caps, strict=True):
        load = matrix[g].sum(axis=0)
        position = start
        for e, coefficients, _ in slack:
            bits = slack_bits(int(c[e] - load[e]), coefficients)
            state[position : position + bits.size] = bits
            position += bits.size
    return state


def _split_capacity(
    cap: np.ndarray, groups: list[np.ndarray], k: int, warm: np.ndarray | None
) -> list[np.ndarray]:
    """Share each expert's capacity among token groups so every group stays feasible.

    With a warm start, each group first gets the load the warm start gives it (so the warm
    start stays feasible in every group); otherwise a share proportional to its size. Groups
    still short of ``size * k`` slots then take spare slots (the expert with the most room
    first); what is left is shared in proportion to group size, the last slots going to the
    groups with the smallest share of that expert relative to their size.
    """
    num_experts = cap.size
    sizes = np.array([g.size for g in groups], dtype=np.int64)
    total_tokens = int(sizes.sum())
    if warm is not None:
        matrix = as_matrix(warm, num_experts)
        shares = np.stack([matrix[g].sum(axis=0) for g in groups]).astype(np.int64)
    else:
        shares = np.floor(cap[None, :] * sizes[:, None] / total_tokens).astype(np.int64)
    shares = np.minimum(shares, sizes[:, None])
    spare = cap - shares.sum(axis=0)
    for g in np.flatnonzero(shares.sum(axis=1) < sizes * k):
        need = int(sizes[g] * k - shares[g].sum())
        while need > 0:
            room = np.minimum(spare, sizes[g] - shares[g])
            e = int(np.argmax(room))
            if room[e] <= 0:
                break
            take = min(need, int(room[e]))
            shares[g, e] += take
            spare[e] -= take
            need -= take
    extra = np.floor(spare[None, :] * sizes[:, None] / total_tokens).astype(np.int64)
    extra = np.clip(np.minimum(extra, sizes[:, None] - shares), 0, None)
    shares += extra
    spare -= extra.sum(axis=0)
    for expert in np.flatnonzero(spare > 0):
        while spare[expert] > 0:
            open_groups = np.flatnonzero(shares[:, expert] < sizes)
            if open_groups.size == 0:
                break
            ratio = shares[open_groups, expert] / sizes[open_groups]
            chosen = open_groups[np.argsort(ratio, kind="stable")][: int(spare[expert])]
            shares[chosen, expert] += 1
            spare[expert] -= chosen.size
    return [shares[i] for i in range(len(groups))]
