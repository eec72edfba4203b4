"""Large-neighbourhood search: solve a BQM bigger than a solver can take, a piece at a time.

:class:`DecompositionSolver` wraps any :class:`dimod.Sampler` (QAOA, a QPU, SA, ...) limited
to small problems. It is a destroy-and-repair large-neighbourhood search (Shaw, CP 1998;
Ropke & Pisinger, "An adaptive large neighborhood search heuristic for the pickup and
delivery problem with time windows", Transportation Science 40(4), 2006) in which the
search destroys and the child repairs. Each iteration

1. **perturbs** the state (the search's own move): it flips a small connected set of
   variables that are cheap to flip together, grown from a random variable, and lets a
   greedy one-flip descent settle the variables around it;
2. **repairs** it with the child, ``repairs`` times: it picks a connected subproblem of
   ``subproblem_size`` variables next to the disturbance, seeded where a flip would gain
   most; fixes every other variable at its current value (conditioning the BQM on them);
   has the child solve the small BQM that remains; and applies the child's lowest answer,
   judged on that conditioned BQM (boundary fields included), only if it lowers the energy
   (then descends around it). A child answer never makes the state worse;
3. **accepts** the perturbed-and-repaired state if its energy did not rise, or, with
   ``acceptance="anneal"`` (default), with probability ``exp(-rise / T)``, ``T`` falling
   over the run (a simulated-annealing acceptance criterion, as in Ropke & Pisinger);
   otherwise it returns to the state before the perturbation. The best state seen is
   returned.

Why this split: an earlier version used the child's answers themselves as the moves to
anneal over. A good child (QAOA, an exact solver) answers with the subproblem's optimum and
a few states near it, often the current assignment itself; random answers are large random
perturbations, which is what an annealed search needs to leave a local minimum, so that
search did better fed random answers than QAOA's on 9 of 10 G-set graphs. Here the
perturbation is the search's and the optimization the child's: with QAOA as the child the
search ends above the same search without a child on every G-set graph, and above it fed
random answers on most, by a small margin (benchmarks/qaoa, ``gset --controls random none``).

This is the decomposition loop of D-Wave's hybrid workflows (``EnergyImpactDecomposer``
feeding a QPU subsampler; Booth, Reinhardt & Roy, "Partitioning optimization problems for
hybrid classical/quantum execution", D-Wave technical report 14-1006A (2017)), implemented
with numpy and scipy on dimod rather than on dwave-hybrid: importing ``hybrid`` pulls in
dwave-system and the cloud client (about 2 s), its runnables add thread and state-copy
overhead to every iteration, and qopt's base install (where the ``qaoa`` backend lives) does
not include the ``dwave`` extra. The pieces are small: flip energies (as
``hybrid.utils.flip_energy_gains``), a connected neighbourhood grown from a seed variable,
and the conditioning of the BQM.
"""

from __future__ import annotations

import math
import time
from typing import Any

import dimod
import numpy as np
import scipy.sparse

from qopt._validation import check_bqm, check_float, check_int
from qopt.exceptions import InvalidProblemError, SolverConfigurationError

__all__ = ["DecompositionSolver"]

_INITIAL = ("steepest", "sa", "random")

#: Default subproblem size: QAOA solves 12 variables in tens of milliseconds.
_DEFAULT_SUBPROBLEM = 12

#: Child calls (repairs) per iteration by default.
_REPAIRS = 2

_ACCEPTANCE = ("anneal", "greedy")

#: Annealing acceptance: probability of accepting a typical (median) energy rise at the start
#: and at the end of the schedule; the temperature falls geometrically in between.
_ACCEPT_START = 0.3
_ACCEPT_END = 1e-3

#: Number of recent energy rises whose median sets the temperature's scale.
_RISE_WINDOW = 64


def _temperature(rises: list[float], progress: float) -> float:
    """The annealing temperature at ``progress`` in [0, 1] of the schedule.

    A move that raises the energy by the median of the recent rises is accepted with a
    probability falling geometrically from ``_ACCEPT_START`` to ``_ACCEPT_END``: the scale
    adapts to the problem's energy units and to how far the state is from a local minimum,
    with nothing to tune per instance.
    """
    scale = float(np.median(rises))
    progress = min(max(progress, 0.0), 1.0)
    probability = _ACCEPT_START ** (1.0 - progress) * _ACCEPT_END**progress
    return scale / math.log(1.0 / probability)


#: Per-call parameters of the search itself; every other sample() parameter goes to the child.
_OWN_PARAMETERS = ("max_iterations", "patience", "time_limit", "seed", "initial_state")


class _Search:
    """State of one large-neighbourhood search over a BQM in its own vartype."""

    def __init__(self, bqm: dimod.BinaryQuadraticModel, state: np.ndarray) -> None:
        self.bqm = bqm
        self.labels = list(bqm.variables)
        self.spin = bqm.vartype is dimod.SPIN
        vectors: Any = bqm.to_numpy_vectors(variable_order=self.labels)
        linear, (rows, cols, values), offset = vectors
        n = len(self.labels)
        self.linear = np.asarray(linear, dtype=float)
        self.offset = float(offset)
        both_rows = np.concatenate([rows, cols])
        both_cols = np.concatenate([cols, rows])
        both = np.concatenate([values, values]).astype(float)
        # Symmetric coupling matrix; row i holds variable i's neighbours and weights.
        self.coupling = scipy.sparse.csr_matrix((both, (both_rows, both_cols)), shape=(n, n))
        self.coupling.sum_duplicates()
        self.x = state.astype(float)
        self.field = self.linear + self.coupling @ self.x
        self.energy = (
            self.offset
            + float(self.linear @ self.x)
            + 0.5 * float(self.x @ (self.coupling @ self.x))
        )

    def neighbours(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        start, stop = self.coupling.indptr[i], self.coupling.indptr[i + 1]
        return self.coupling.indices[start:stop], self.coupling.data[start:stop]

    def flip_energies(self, index: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Energy change of flipping each variable alone (negative: the flip helps)."""
        x = self.x[index]
        step = -2.0 * x if self.spin else 1.0 - 2.0 * x
        return np.asarray(step * self.field[index])

    def change(self, index: np.ndarray, values: np.ndarray) -> None:
        """Set ``x[index] = values``, updating fields and energy."""
        delta = values - self.x[index]
        moved = delta != 0
        if not moved.any():
            return
        index, delta = index[moved], delta[moved]
        self.energy += float(delta @ self.field[index]) + 0.5 * float(
            delta @ (self.coupling[index][:, index] @ delta)
        )
        self.x[index] += delta
        self.field += np.asarray(self.coupling[index].T @ delta).ravel()

    def descend(self, around: np.ndarray, frozen: np.ndarray | None = None) -> None:
        """Greedy one-flip descent, started from the variables ``around`` a change; the
        ``frozen`` variables are not flipped."""
        fixed = set() if frozen is None else set(frozen.tolist())
        candidates = set(around.tolist())
        for i in around.tolist():
            candidates.update(self.neighbours(i)[0].tolist())
        candidates -= fixed
        while candidates:
            pool = np.fromiter(candidates, dtype=np.int64)
            gains = self.flip_energies(pool)
            best = int(np.argmin(gains))
            if gains[best] >= -1e-12 * max(1.0, abs(self.energy)):
                return
            i = int(pool[best])
            self.change(np.array([i]), np.array([-self.x[i] if self.spin else 1.0 - self.x[i]]))
            candidates = {int(j) for j in pool[gains < 0]} | set(self.neighbours(i)[0].tolist())
            candidates -= fixed

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, float]:
        return self.x.copy(), self.field.copy(), self.energy

    def restore(self, saved: tuple[np.ndarray, np.ndarray, float]) -> None:
        self.x, self.field, self.energy = saved[0].copy(), saved[1].copy(), saved[2]

    def flip(self, index: np.ndarray) -> None:
        """Flip every variable of ``index``."""
        self.change(index, -self.x[index] if self.spin else 1.0 - self.x[index])

    def best_answer(
        self, index: np.ndarray, sub: dimod.BinaryQuadraticModel, result: dimod.SampleSet
    ) -> tuple[np.ndarray, float] | None:
        """The child's lowest answer for the variables ``index``, and its energy.

        Energies are recomputed on the conditioned subproblem ``sub`` (whose offset makes
        them full-problem energies, boundary fields included) rather than read from the
        child's sample set, so a child that reports energies of its own (a QPU's, a scaled
        model's) is judged like any other.
        """
        if not len(result):
            return None
        position = [result.variables.index(self.labels[i]) for i in index.tolist()]
        samples = result.record.sample[:, position].astype(float)
        energies = sub.energies((samples, [self.labels[i] for i in index.tolist()]))
        row = int(np.argmin(energies))
        return samples[row], float(energies[row])

    def grow(
        self,
        seed: int,
        size: int,
        rng: np.random.Generator,
        noise: float,
        blocked: set[int] | frozenset[int] = frozenset(),
    ) -> np.ndarray:
        """A connected subproblem: from ``seed``, add the neighbour that makes flipping the
        whole set cheapest.

        Flipping a set ``T`` changes the energy by ``sum_i d_i f_i + sum_{i<j in T} Q_ij d_i
        d_j`` (``d`` the flip steps, ``f`` the local fields), so a candidate ``j`` scores its
        own flip energy plus its couplings to the chosen set weighted by both flips. Sets
        that are nearly free to flip together are where a joint change can pay, and where a
        one-flip descent cannot go. ``noise`` (relative to the typical flip energy)
        randomizes the choice so the search does not cycle. When the component is
        exhausted, a random variable restarts the growth. ``blocked`` variables are never
        added.
        """
        n = len(self.labels)
        chosen = [seed]
        in_set = {seed, *blocked}
        joint: dict[int, float] = {}
        step = -2.0 * self.x if self.spin else 1.0 - 2.0 * self.x
        flips = step * self.field
        spread = float(np.abs(flips).mean()) or 1.0
        current = seed
        while len(chosen) < size:
            indices, weights = self.neighbours(current)
            pair = (weights * step[current] * step[indices]).tolist()
            for j, w in zip(indices.tolist(), pair, strict=True):
                if j not in in_set:
                    joint[j] = joint.get(j, 0.0) + w
            if joint:
                keys = list(joint)
                scores = flips[keys] + np.fromiter(joint.values(), float, len(keys))
                scores += noise * spread * rng.standard_normal(len(keys))
                current = keys[int(np.argmin(scores))]
                del joint[current]
            else:
                free = np.setdiff1d(np.arange(n), np.fromiter(in_set, np.int64, len(in_set)))
                if not len(free):
                    break
                current = int(rng.choice(free))
            chosen.append(current)
            in_set.add(current)
        return np.array(chosen, dtype=np.int64)

    def subproblem(self, index: np.ndarray) -> dimod.BinaryQuadraticModel:
        """The BQM over ``index`` with every other variable fixed at its current value.

        Its offset makes its energies the full BQM's energies.
        """
        block = self.coupling[index][:, index].toarray()
        x = self.x[index]
        linear = self.field[index] - block @ x
        inside = float(linear @ x) + 0.5 * float(x @ block @ x)
        rows, cols = np.nonzero(np.triu(block, 1))
        return dimod.BinaryQuadraticModel.from_numpy_vectors(
            linear,
            (rows, cols, block[rows, cols]),
            self.energy - inside,
            self.bqm.vartype,
            variable_order=[self.labels[i] for i in index.tolist()],
        )


class DecompositionSolver(dimod.ComposedSampler):
    """Solve a BQM of any size with a child limited to ``subproblem_size`` variables.

    Destroy-and-repair large-neighbourhood search (see the module docstring): start from
    simulated annealing (or a steepest-descent local minimum, or random), then each iteration

    1. flips a connected set of ``perturbation_size`` variables (default: half the
       subproblem size) grown from a random variable by the neighbour that makes flipping
       the whole set cheapest (with noise), and descends the variables around it by greedy
       one-flip moves, the flipped set held fixed;
    2. ``repairs`` times: grows a connected subproblem of ``subproblem_size`` variables
       from the neighbour of the flipped set whose flip would gain most, fixes every other
       variable, has the child solve the conditioned BQM, and applies the child's lowest
       answer (judged on the conditioned BQM) if and only if it lowers the energy, followed
       by a descent around it;
    3. keeps the result if the energy did not rise; otherwise, with ``acceptance="anneal"``
       (default), keeps it with probability ``exp(-rise / T)``, ``T`` making the median of
       the recent rises acceptable with probability 0.3 at the start and 0.001 at the end
       (by iterations, or by time under ``time_limit`` if that comes first); else returns
       to the state before step 1. With ``"greedy"`` it never keeps a rise;

    and stops after ``max_iterations``, after ``patience`` iterations without a new best, or
    after ``time_limit`` seconds, returning the best state seen. A BQM no larger than
    ``subproblem_size`` goes to the child whole.

    Args:
        child: Any :class:`dimod.Sampler`; its lowest-energy sample per subproblem is used.
        subproblem_size: Variables per subproblem; at most the child's ``max_qubits`` when
            it has that attribute. ``None``: 12 (or the child's ``max_qubits`` if smaller),
            where a QAOA child takes tens of milliseconds per subproblem.
        max_iterations: Iterations (perturbation and repairs) at most.
        patience: Stop after this many iterations without a lower energy.
        time_limit: Seconds after which to stop (checked between iterations); ``None``: none.
        initial: ``"sa"`` (default: the best of qopt's default simulated annealing, 10 reads
            of 1000 sweeps, so the search never returns worse than ``get_solver("sa")``; the
            hybrid-solver practice of letting a fast classical heuristic do the bulk while the
            child's subproblems refine its state), ``"steepest"`` (steepest descent from a
            random state: shows what the subproblems achieve on their own) or ``"random"``.
            ``info["decomposition"]["initial_energy"]`` records where the search started and
            ``child_gain`` how much energy the child's answers removed, so the child's share
            can be reported: on G-set the SA start is within 0.5% of the best known cut and
            QAOA subproblems add next to nothing to it.
        acceptance: ``"anneal"`` (default) or ``"greedy"``, see above.
        perturbation_size: Variables flipped by each perturbation; ``None``: half of
            ``subproblem_size`` (at least 1).
        repairs: Child calls per iteration. ``0`` runs the search's own moves only (no
            child): the control that shows what the child adds.
        seed: Seed of the search's choices and of the initial state; ``None`` draws one.

    Examples:
        >>> import dimod
        >>> from qopt.solvers import ExactSolver
        >>> from qopt.solvers.decomposition import DecompositionSolver
        >>> bqm = dimod.generators.ran_r(1, 40, seed=4)
        >>> solver = DecompositionSolver(ExactSolver(), subproblem_size=8, initial="steepest", seed=0)
        >>> sampleset = solver.sample(bqm)
        >>> bool(sampleset.first.energy < sampleset.info["decomposition"]["initial_energy"])
        True
    """

    def __init__(
        self,
        child: dimod.Sampler,
        *,
        subproblem_size: int | None = None,
        max_iterations: int = 2000,
        patience: int = 200,
        time_limit: float | None = None,
        initial: str = "sa",
        acceptance: str = "anneal",
        perturbation_size: int | None = None,
        repairs: int = _REPAIRS,
        seed: int | None = None,
    ) -> None:
        owner = type(self).__name__
        if not isinstance(child, dimod.Sampler):
            raise SolverConfigurationError(
                f"The 'child' parameter of {owner} must be a dimod.Sampler. "
                f"Got {type(child).__name__} instead."
            )
        self._children = [child]
        limit = getattr(child, "max_qubits", None)
        if not isinstance(limit, int) or isinstance(limit, bool):
            limit = None
        if subproblem_size is None:
            subproblem_size = (
                _DEFAULT_SUBPROBLEM if limit is None else min(_DEFAULT_SUBPROBLEM, limit)
            )
        self.subproblem_size = check_int(subproblem_size, "subproblem_size", owner, low=1)
        if limit is not None and self.subproblem_size > limit:
            raise SolverConfigurationError(
                f"The 'subproblem_size' parameter of {owner} must be at most the child's "
                f"max_qubits ({limit}). Got {subproblem_size} instead."
            )
        self.max_iterations = check_int(max_iterations, "max_iterations", owner, low=1)
        self.patience = check_int(patience, "patience", owner, low=1)
        self.time_limit = (
            None
            if time_limit is None
            else check_float(time_limit, "time_limit", owner, low=0.0, low_inclusive=False)
        )
        if initial not in _INITIAL:
            raise SolverConfigurationError(
                f"The 'initial' parameter of {owner} must be one of "
                f"{', '.join(repr(c) for c in _INITIAL)}. Got {initial!r} instead."
            )
        self.initial = initial
        if acceptance not in _ACCEPTANCE:
            raise SolverConfigurationError(
                f"The 'acceptance' parameter of {owner} must be one of "
                f"{', '.join(repr(c) for c in _ACCEPTANCE)}. Got {acceptance!r} instead."
            )
        self.acceptance = acceptance
        self.perturbation_size = (
            None
            if perturbation_size is None
            else check_int(perturbation_size, "perturbation_size", owner, low=1)
        )
        self.repairs = check_int(repairs, "repairs", owner, low=0)
        self.seed = None if seed is None else check_int(seed, "seed", owner, low=0, high=2**32 - 1)

    @property
    def children(self) -> list[dimod.Sampler]:
        return self._children

    @property
    def parameters(self) -> dict[str, Any]:
        return {**self.child.parameters, **{name: [] for name in _OWN_PARAMETERS}}

    @property
    def properties(self) -> dict[str, Any]:
        return {
            "child_properties": self.child.properties,
            "subproblem_size": self.subproblem_size,
        }

    def __getattr__(self, attribute: str) -> Any:
        # remote / device / is_mock describe the child that does the work (the composites
        # in qopt.solvers.composites read them).
        if attribute in ("remote", "device", "is_mock"):
            default = "cpu" if attribute == "device" else False
            return getattr(self._children[0], attribute, default)
        raise AttributeError(attribute)

    def _initial_state(
        self,
        bqm: dimod.BinaryQuadraticModel,
        rng: np.random.Generator,
        initial_state: Any,
    ) -> np.ndarray:
        labels = list(bqm.variables)
        if initial_state is not None:
            array, state_labels = dimod.as_samples(initial_state)
            if array.shape[0] < 1 or set(state_labels) != set(labels):
                raise InvalidProblemError(
                    "The 'initial_state' given to DecompositionSolver.sample() must assign "
                    "every variable of the BQM."
                )
            position = {v: i for i, v in enumerate(state_labels)}
            state = np.array([array[0, position[v]] for v in labels], dtype=float)
            allowed = (-1.0, 1.0) if bqm.vartype is dimod.SPIN else (0.0, 1.0)
            if not np.isin(state, allowed).all():
                raise InvalidProblemError(
                    f"The 'initial_state' given to DecompositionSolver.sample() must take "
                    f"values in {allowed} for this {bqm.vartype.name} BQM."
                )
            return state
        low = -1 if bqm.vartype is dimod.SPIN else 0
        start = rng.integers(0, 2, size=len(labels)) * (1 - low) + low
        if self.initial == "random":
            return start.astype(float)
        seed = int(rng.integers(2**31 - 1))  # dwave-samplers wants an int32
        if self.initial == "sa":
            from dwave.samplers import SimulatedAnnealingSampler

            # qopt's default 'sa' (10 reads x 1000 sweeps): the search then never returns
            # worse than get_solver("sa") would.
            result = SimulatedAnnealingSampler().sample(
                bqm, num_reads=10, num_sweeps=1000, seed=seed
            )
        else:
            from dwave.samplers import SteepestDescentSolver

            result = SteepestDescentSolver().sample(
                bqm, initial_states=(start[None, :].astype(np.int8), labels), seed=seed
            )
        position = {v: i for i, v in enumerate(result.variables)}
        row = result.record.sample[int(np.argmin(result.record.energy))]
        return np.array([row[position[v]] for v in labels], dtype=float)

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        """Search for a low-energy sample of ``bqm``.

        Args:
            bqm: The problem, of any size.
            **parameters: ``max_iterations``, ``patience``, ``time_limit`` and ``seed``
                override the constructor's for this call; ``initial_state`` (a sample over
                all variables) replaces the initial descent, to warm-start from a known
                solution. Everything else is passed to the child's ``sample``.

        Returns:
            One sample, the best found, with ``info["decomposition"]``: ``initial_energy``,
            ``iterations``, ``improvements`` (new best states), ``accepted`` (moves, equal
            energy and uphill included), ``uphill`` (accepted moves that raised the energy),
            ``acceptance``, ``stopped`` (why), ``trace`` (``[iteration, energy]`` at each new
            best), ``subproblem_size``, ``perturbation_size``, ``child_calls``,
            ``child_improvements`` (child answers that lowered the energy and were applied),
            ``child_gain`` (the energy they removed, descents after them included) and
            ``child_seconds``; and ``info["timing"]``.
        """
        owner = type(self).__name__
        check_bqm(bqm, owner, allow_empty=True)
        own = {name: parameters.pop(name) for name in _OWN_PARAMETERS if name in parameters}
        call = f"{owner}.sample"
        max_iterations = check_int(
            own.get("max_iterations", self.max_iterations), "max_iterations", call, low=1
        )
        patience = check_int(own.get("patience", self.patience), "patience", call, low=1)
        time_limit = own.get("time_limit", self.time_limit)
        if time_limit is not None:
            time_limit = check_float(time_limit, "time_limit", call, low=0.0, low_inclusive=False)
        seed = own.get("seed", self.seed)
        if seed is not None:
            seed = check_int(seed, "seed", call, low=0, high=2**32 - 1)
        if bqm.num_variables == 0:
            return dimod.SampleSet.from_samples_bqm(([], []), bqm)
        if bqm.num_variables <= self.subproblem_size and own.get("initial_state") is None:
            sampleset = self.child.sample(bqm, **parameters)
            sampleset.resolve()
            sampleset.info["decomposition"] = {"iterations": 0, "stopped": "small enough"}
            return sampleset

        t0 = time.perf_counter_ns()
        rng = np.random.default_rng(seed)
        search = _Search(bqm, self._initial_state(bqm, rng, own.get("initial_state")))
        search.descend(np.arange(bqm.num_variables))
        initial_energy = search.energy
        t1 = time.perf_counter_ns()

        n = bqm.num_variables
        size = min(self.subproblem_size, n)
        kick_size = min(self.perturbation_size or max(1, size // 2), n - 1) or 1
        trace: list[list[float]] = [[0, initial_energy]]
        stale = accepted = uphill = improvements = iteration = 0
        child_calls = child_improvements = 0
        child_gain = 0.0
        best = search.snapshot()
        rises: list[float] = []  # recent energy rises of whole moves: the temperature's scale
        child_ns = 0
        stopped = "max_iterations"
        start = time.perf_counter()
        everything = np.arange(n)
        while iteration < max_iterations:
            if stale >= patience:
                stopped = "patience"
                break
            elapsed = time.perf_counter() - start
            if time_limit is not None and elapsed >= time_limit:
                stopped = "time_limit"
                break
            progress = iteration / max_iterations
            if time_limit is not None:
                progress = max(progress, elapsed / time_limit)
            iteration += 1
            before = search.snapshot()
            # Destroy (the search's own move): flip a connected set that is cheap to flip
            # together, grown from a random variable, and let a one-flip descent settle the
            # variables around it (the flipped ones stay flipped, or it would undo them).
            kicked = search.grow(int(rng.integers(n)), kick_size, rng, 1.0)
            search.flip(kicked)
            search.descend(kicked, frozen=kicked)
            # Repair (the child's job): re-solve the subproblems where flipping a variable
            # would gain most, next to the disturbance; an answer is applied only if it
            # lowers the energy, so the child can help but never hurt.
            blocked = set(kicked.tolist())
            for _ in range(self.repairs):
                if time_limit is not None and time.perf_counter() - start >= time_limit:
                    break
                frontier = np.setdiff1d(
                    np.concatenate([search.neighbours(i)[0] for i in kicked.tolist()]), kicked
                )
                if not len(frontier):
                    frontier = np.setdiff1d(everything, kicked)
                gains = search.flip_energies(frontier)
                spread = float(np.abs(gains).mean()) or 1.0
                noisy = gains + 0.1 * spread * rng.standard_normal(len(frontier))
                index = search.grow(int(frontier[int(np.argmin(noisy))]), size, rng, 0.1, blocked)
                sub = search.subproblem(index)
                c0 = time.perf_counter_ns()
                result = self.child.sample(sub, **parameters)
                result.resolve()
                child_ns += time.perf_counter_ns() - c0
                child_calls += 1
                answer = search.best_answer(index, sub, result)
                current = search.energy
                if answer is None or answer[1] >= current - 1e-9 * max(1.0, abs(current)):
                    continue  # the current assignment of the subproblem is kept
                search.change(index, answer[0])
                search.descend(index, frozen=kicked)
                child_improvements += 1
                child_gain += current - search.energy
            rise = search.energy - before[2]
            tolerance = 1e-9 * max(1.0, abs(before[2]))
            take = rise <= tolerance
            if not take and self.acceptance == "anneal":
                rises = [*rises[-(_RISE_WINDOW - 1) :], rise]
                take = bool(rng.random() < math.exp(-rise / _temperature(rises, progress)))
                uphill += take
            if take:
                accepted += 1
            else:
                search.restore(before)
            if search.energy < best[2] - 1e-9 * max(1.0, abs(best[2])):
                best = search.snapshot()
                improvements += 1
                stale = 0
                trace.append([iteration, search.energy])
            else:
                stale += 1
        search.restore(best)
        t2 = time.perf_counter_ns()

        sample = search.x.astype(np.int8)[None, :]
        info = {
            "decomposition": {
                "initial_energy": initial_energy,
                "iterations": iteration,
                "improvements": improvements,
                "accepted": accepted,
                "uphill": uphill,
                "acceptance": self.acceptance,
                "stopped": stopped,
                "trace": trace,
                "subproblem_size": size,
                "perturbation_size": kick_size,
                "child_calls": child_calls,
                "child_improvements": child_improvements,
                "child_gain": child_gain,
                "child_seconds": child_ns / 1e9,
            },
            "timing": {
                "preprocessing_ns": t1 - t0,
                "sampling_ns": t2 - t1,
                "postprocessing_ns": 0,
            },
        }
        return dimod.SampleSet.from_samples_bqm((sample, search.labels), bqm, info=info)
