"""Large-neighbourhood search: solve a BQM bigger than a solver can take, a piece at a time.

:class:`DecompositionSolver` wraps any :class:`dimod.Sampler` (QAOA, a QPU, SA, ...) limited
to small problems. It follows the loop of D-Wave's Kerberos hybrid workflow (dwave-hybrid's
reference workflow; Booth, Reinhardt & Roy, "Partitioning optimization problems for hybrid
classical/quantum execution", D-Wave technical report 14-1006A (2017)): a classical tabu
search over the whole problem and subproblems sampled by the child. Where Kerberos races
its branches on threads and keeps the better result, here they run one after the other on
one thread, each from the state the other left, so the child's share can be counted. Each
iteration

1. **the classical part moves** (perturbs and polishes): ``tabu_moves`` one-flip tabu moves
   on the whole problem (Glover, "Tabu search - part I", ORSA J. Computing 1(3), 1989):
   each flips the variable whose flip lowers the energy most or raises it least, among the
   variables not flipped within their tabu tenure, unless the flip reaches a new best
   energy (aspiration). Uphill moves are how the search leaves a local minimum; the tenure
   keeps it from walking straight back. The tabu memory persists across iterations;
2. **the child repairs**, ``repairs`` times: a connected subproblem of ``subproblem_size``
   variables is grown from the variable whose flip would gain most (with noise), by the
   neighbour that makes flipping the whole set cheapest; every other variable is fixed at
   its current value (conditioning the BQM on them); the child solves the small BQM that
   remains, and its lowest answer, judged on that conditioned BQM (boundary fields
   included), is applied only if it lowers the energy. A child answer never makes the
   state worse; the variables it changed become tabu, so the classical moves do not undo
   it at once;

and the best state seen (during the tabu moves or after a repair) is returned.

Why a tabu search: the previous search (an annealed destroy-and-repair loop, Shaw 1998 /
Ropke & Pisinger 2006, whose perturbations were 6-variable flips followed by greedy
descents) stalled at 0.97-0.985 of the best known cut on the +/-1-weighted G-set graphs
G6-G10 whatever the child, an exact one included: the search, not the child, was the
bottleneck. A one-flip tabu search with a long tenure (``[n/20, n/10]`` moves) makes about
30 000 moves a second in numpy and passes 0.99 there; Breakout Local Search (Benlic & Hao,
"Breakout local search for the Max-Cut problem", Eng. Appl. of AI 26(3), 2013), whose
strength is millions of cheap iterations, stalled near 0.985-0.99 in numpy, and so did the
tabu search with a short tenure. With a search this strong the child has little left to add
on G-set: docs/benchmarks/qaoa.md measures the same search without a child (``repairs=0``) and
with random answers beside it.

Implemented with numpy and scipy on dimod rather than on dwave-hybrid: importing ``hybrid``
pulls in dwave-system and the cloud client (about 2 s), its runnables add thread and
state-copy overhead to every iteration, qopt's base install (where the ``qaoa`` backend
lives) does not include the ``dwave`` extra, and dwave-samplers' C++ tabu restarted from the
current state for a few milliseconds per iteration stalled near 0.985 on G6 at about 70 ms
per call (most of it converting the BQM). The pieces are small: flip energies (as
``hybrid.utils.flip_energy_gains``), a tabu move, a connected neighbourhood grown from a
seed variable, and the conditioning of the BQM.
"""

from __future__ import annotations

import time
from typing import Any

import dimod
import numpy as np

from qopt._validation import check_bqm, check_float, check_int
from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.solvers.classical import SimulatedAnnealingSolver

__all__ = ["DecompositionSolver"]

_INITIAL = ("steepest", "sa", "random")

#: Default subproblem size: QAOA solves 12 variables in tens of milliseconds.
_DEFAULT_SUBPROBLEM = 12

#: Child calls (repairs) per iteration by default.
_REPAIRS = 2

#: Tabu moves per iteration by default: about 3 ms of numpy on an 800-variable G-set graph,
#: a fraction of one QAOA child call.
_TABU_MOVES = 100

#: Per-call parameters of the search itself; every other sample() parameter goes to the child.
_OWN_PARAMETERS = ("max_iterations", "patience", "time_limit", "seed", "initial_state")


def _default_tenure(n: int) -> tuple[int, int]:
    """Tabu tenure range for ``n`` variables: ``[n/20, n/10]``, at least ``[5, 10]``.

    On large problems, the upper half of Breakout Local Search's range ``[3, n/10]`` (Benlic
    & Hao 2013): a shorter tenure (``n/100`` plus up to 10) cycled near 0.98 of the best
    known cut on G6 in our runs. On small ones, at least 5 to 10 moves (capped below ``n``):
    with ``[2, 4]`` the search cycled on a 40-variable +/-1 MaxCut.
    """
    high = max(1, min(n - 1, max(n // 10, min(n // 4, 10))))
    low = max(1, min(high, max(n // 20, high // 2)))
    return low, high


class _Search:
    """State of one search over a BQM in its own vartype.

    Keeps the local fields ``field = linear + coupling @ x`` and the flip energies
    ``gain = step * field`` (``step`` the change a flip makes to each variable) up to date,
    so that a one-flip move costs one pass over the flipped variable's neighbours.
    """

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
        # Imported here, not at the top: ``qopt.solvers`` (and so ``qopt --help``) would pay
        # for scipy.sparse on every start.
        import scipy.sparse

        self.coupling = scipy.sparse.csr_matrix((both, (both_rows, both_cols)), shape=(n, n))
        self.coupling.sum_duplicates()
        indptr, indices, data = self.coupling.indptr, self.coupling.indices, self.coupling.data
        self.rows = [
            (indices[indptr[i] : indptr[i + 1]], data[indptr[i] : indptr[i + 1]]) for i in range(n)
        ]
        self.x = state.astype(float)
        self.field = self.linear + self.coupling @ self.x
        self.energy = (
            self.offset
            + float(self.linear @ self.x)
            + 0.5 * float(self.x @ (self.coupling @ self.x))
        )
        self._refresh()
        self.best_x = self.x.copy()
        self.best_energy = self.energy
        # Tabu memory: a variable may not be flipped again before move number tabu_until[i].
        self.clock = 0
        self.tabu_until = np.zeros(n, dtype=np.int64)

    def _refresh(self) -> None:
        self.step = -2.0 * self.x if self.spin else 1.0 - 2.0 * self.x
        self.gain = self.step * self.field

    def tolerance(self) -> float:
        return 1e-9 * max(1.0, abs(self.energy))

    def neighbours(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.rows[i]

    def flip(self, i: int) -> None:
        """Flip variable ``i`` (one move)."""
        d = self.step[i]
        self.energy += self.gain[i]
        self.x[i] += d
        self.step[i] = -d
        self.gain[i] = -self.gain[i]
        indices, weights = self.rows[i]
        change = weights * d
        self.field[indices] += change
        self.gain[indices] += change * self.step[indices]
        self.clock += 1

    def keep_if_best(self) -> bool:
        if self.energy < self.best_energy - self.tolerance():
            self.best_x = self.x.copy()
            self.best_energy = self.energy
            return True
        return False

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
        self._refresh()

    def descend(self) -> None:
        """Steepest descent: flip the variable that lowers the energy most, until none does."""
        while True:
            i = int(self.gain.argmin())
            if self.gain[i] >= -self.tolerance():
                return
            self.flip(i)

    def tabu_search(self, moves: int, tenure: tuple[int, int], rng: np.random.Generator) -> None:
        """``moves`` one-flip tabu moves (Glover 1989), keeping the best state seen.

        Each move flips the variable whose flip lowers the energy most or raises it least,
        among those not flipped within their tenure (drawn from ``tenure``, inclusive) unless
        the flip reaches a new best energy (aspiration).
        """
        low, high = tenure
        tenures = rng.integers(low, high + 1, size=moves)
        for k in range(moves):
            allowed = self.tabu_until <= self.clock
            allowed |= self.energy + self.gain < self.best_energy - self.tolerance()
            i = int(np.where(allowed, self.gain, np.inf).argmin())
            if not allowed[i]:  # every variable is tabu (a tiny problem): take the best move
                i = int(self.gain.argmin())
            self.flip(i)
            self.tabu_until[i] = self.clock + int(tenures[k])
            if self.gain[i] > 0:  # the move lowered the energy: it may be a new best
                self.keep_if_best()

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
        step = self.step
        flips = self.gain
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


def _check_not_clock_bound(seed: int | None, time_limit: float | None, owner: str) -> None:
    """A seeded search is bounded by counts, never by the clock: within a fixed time a loaded
    machine gets through fewer iterations than an idle one, so the seed would not decide."""
    if seed is not None and time_limit is not None:
        raise SolverConfigurationError(
            f"The 'time_limit' parameter of {owner} cannot be combined with a seed: a seeded "
            "result must not depend on the clock. Bound a seeded search with 'max_iterations' "
            f"or 'patience' instead, or drop the seed. Got time_limit={time_limit!r} and "
            f"seed={seed!r}."
        )


class DecompositionSolver(dimod.ComposedSampler):
    """Solve a BQM of any size with a child limited to ``subproblem_size`` variables.

    Tabu search over the whole problem, with subproblems sampled by the child (the Kerberos
    loop, see the module docstring): start from simulated annealing (or a steepest-descent
    local minimum, or random), then each iteration

    1. makes ``tabu_moves`` one-flip tabu moves on the whole problem (the best non-tabu
       flip, uphill when nothing is downhill; a tabu flip only if it reaches a new best);
    2. ``repairs`` times: grows a connected subproblem of ``subproblem_size`` variables from
       the variable whose flip would gain most (with noise), fixes every other variable, has
       the child solve the conditioned BQM, and applies the child's lowest answer (judged on
       the conditioned BQM) if and only if it lowers the energy; the variables it changed
       become tabu;

    and stops after ``max_iterations``, after ``patience`` iterations without a new best, or
    after ``time_limit`` seconds, returning the best state seen. A BQM no larger than
    ``subproblem_size`` goes to the child whole.

    Args:
        child: Any :class:`dimod.Sampler`; its lowest-energy sample per subproblem is used.
        subproblem_size: Variables per subproblem; at most the child's ``max_qubits`` when
            it has that attribute. ``None``: 12 (or the child's ``max_qubits`` if smaller),
            where a QAOA child takes tens of milliseconds per subproblem.
        max_iterations: Iterations (tabu moves and repairs) at most.
        patience: Stop after this many iterations without a lower energy.
        time_limit: Seconds after which to stop (checked between iterations and before each
            child call); ``None``: none. Only for an unseeded search: with a ``seed`` it is
            refused, since a seeded result must not depend on the clock (use
            ``max_iterations`` or ``patience``).
        initial: ``"sa"`` (default: the best of qopt's default simulated annealing, as
            ``get_solver("sa")`` builds it, so the search never returns worse than that; the
            child's subproblems refine its state), ``"steepest"`` (steepest descent from a
            random state: shows what the search achieves on its own) or ``"random"``.
            ``info["decomposition"]["initial_energy"]`` records where the search started and
            ``child_gain`` how much energy the child's answers removed, so the child's share
            can be reported.
        tabu_moves: One-flip tabu moves per iteration (the classical part). ``0``: none, so
            that the child's answers are the only moves (after an initial steepest descent).
        tenure: Tabu tenure, in moves, as an ``int`` or an inclusive ``(low, high)`` range
            drawn from per move. ``None``: ``[n/20, n/10]`` for ``n`` variables (at least
            ``[5, 10]`` when ``n`` allows).
        repairs: Child calls per iteration. ``0`` runs the tabu search alone (no child):
            the control that shows what the child adds.
        seed: Seed of the search's choices and of the initial state; ``None`` draws one.

    Raises:
        SolverConfigurationError: An option is out of range, both ``tabu_moves`` and
            ``repairs`` are 0 (the search would never move), or ``time_limit`` is given with a
            ``seed``.

    Examples:
        >>> import dimod
        >>> from qopt.solvers import ExactSolver
        >>> from qopt.solvers.decomposition import DecompositionSolver
        >>> bqm = dimod.generators.ran_r(1, 40, seed=4)
        >>> solver = DecompositionSolver(
        ...     ExactSolver(), subproblem_size=8, max_iterations=50, initial="steepest", seed=0
        ... )
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
        tabu_moves: int = _TABU_MOVES,
        tenure: int | tuple[int, int] | None = None,
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
        self.tabu_moves = check_int(tabu_moves, "tabu_moves", owner, low=0)
        self.tenure = self._check_tenure(tenure, owner)
        self.repairs = check_int(repairs, "repairs", owner, low=0)
        if self.tabu_moves == 0 and self.repairs == 0:
            raise SolverConfigurationError(
                f"The 'tabu_moves' and 'repairs' parameters of {owner} cannot both be 0: the "
                "search would never move. Got tabu_moves=0 and repairs=0 instead."
            )
        self.seed = None if seed is None else check_int(seed, "seed", owner, low=0, high=2**32 - 1)
        _check_not_clock_bound(self.seed, self.time_limit, owner)

    @staticmethod
    def _check_tenure(tenure: Any, owner: str) -> tuple[int, int] | None:
        if tenure is None:
            return None
        if isinstance(tenure, tuple) and len(tenure) == 2:
            low = check_int(tenure[0], "tenure", owner, low=1)
            high = check_int(tenure[1], "tenure", owner, low=low)
            return low, high
        if isinstance(tenure, int) and not isinstance(tenure, bool):
            value = check_int(tenure, "tenure", owner, low=1)
            return value, value
        raise SolverConfigurationError(
            f"The 'tenure' parameter of {owner} must be None, an int in [1, inf) or a "
            f"(low, high) tuple of ints with 1 <= low <= high. Got {tenure!r} instead."
        )

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
            # qopt's 'sa' as get_solver("sa") builds it, its defaults included: the search
            # then never returns worse than get_solver("sa") would.
            result = SimulatedAnnealingSolver(seed=seed).sample(bqm)
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
                all variables) replaces the initial state, to warm-start from a known
                solution. Everything else is passed to the child's ``sample``.

        Returns:
            One sample, the best found, with ``info["decomposition"]``: ``initial_energy``
            (after the initial steepest descent), ``iterations``, ``improvements``
            (iterations that found a new best state), ``moves`` (tabu moves made),
            ``tenure`` (its range), ``stopped`` (why), ``trace`` (``[iteration, energy]``
            at each new best), ``subproblem_size``, ``child_calls``, ``child_improvements``
            (child answers that lowered the energy and were applied), ``child_gain`` (the
            energy they removed), ``child_best`` (new best states reached by a child answer)
            and ``child_seconds``; and ``info["timing"]``.
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
        _check_not_clock_bound(seed, time_limit, call)
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
        search.descend()
        search.keep_if_best()
        initial_energy = search.best_energy
        initial_moves = search.clock
        t1 = time.perf_counter_ns()

        n = bqm.num_variables
        size = min(self.subproblem_size, n)
        low, high = self.tenure or _default_tenure(n)
        tenure = (min(low, max(1, n - 1)), min(high, max(1, n - 1)))
        trace: list[list[float]] = [[0, initial_energy]]
        stale = improvements = iteration = 0
        child_calls = child_improvements = child_best = 0
        child_gain = 0.0
        child_ns = 0
        stopped = "max_iterations"
        start = time.perf_counter()

        def out_of_time() -> bool:
            return time_limit is not None and time.perf_counter() - start >= time_limit

        while iteration < max_iterations:
            if stale >= patience:
                stopped = "patience"
                break
            if out_of_time():
                stopped = "time_limit"
                break
            iteration += 1
            best_before = search.best_energy
            # The classical part: tabu moves on the whole problem perturb (uphill moves out
            # of a local minimum) and polish (downhill moves), keeping the best state seen.
            search.tabu_search(self.tabu_moves, tenure, rng)
            # The child: re-solve the subproblems where a flip would gain most; an answer
            # is applied only if it lowers the energy, so the child can help but never hurt.
            for _ in range(self.repairs):
                if out_of_time():
                    break
                spread = float(np.abs(search.gain).mean()) or 1.0
                noisy = search.gain + 0.1 * spread * rng.standard_normal(n)
                index = search.grow(int(np.argmin(noisy)), size, rng, 0.1)
                sub = search.subproblem(index)
                c0 = time.perf_counter_ns()
                result = self.child.sample(sub, **parameters)
                result.resolve()
                child_ns += time.perf_counter_ns() - c0
                child_calls += 1
                answer = search.best_answer(index, sub, result)
                current = search.energy
                if answer is None or answer[1] >= current - search.tolerance():
                    continue  # the current assignment of the subproblem is kept
                changed = index[search.x[index] != answer[0]]
                search.change(index, answer[0])
                search.tabu_until[changed] = search.clock + high
                child_improvements += 1
                child_gain += current - search.energy
                child_best += search.keep_if_best()
            if search.best_energy < best_before - 1e-9 * max(1.0, abs(best_before)):
                improvements += 1
                stale = 0
                trace.append([iteration, search.best_energy])
            else:
                stale += 1
        t2 = time.perf_counter_ns()

        sample = search.best_x.astype(np.int8)[None, :]
        info = {
            "decomposition": {
                "initial_energy": initial_energy,
                "iterations": iteration,
                "improvements": improvements,
                "moves": search.clock - initial_moves,
                "tenure": list(tenure),
                "stopped": stopped,
                "trace": trace,
                "subproblem_size": size,
                "child_calls": child_calls,
                "child_improvements": child_improvements,
                "child_gain": child_gain,
                "child_best": child_best,
                "child_seconds": child_ns / 1e9,
            },
            "timing": {
                "preprocessing_ns": t1 - t0,
                "sampling_ns": t2 - t1,
                "postprocessing_ns": 0,
            },
        }
        return dimod.SampleSet.from_samples_bqm((sample, search.labels), bqm, info=info)
