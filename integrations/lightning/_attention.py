"""``QuboAttentionCallback``: block-sparse attention selection solved as a QUBO during training."""

from __future__ import annotations

import math
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import dimod
import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from qopt._validation import check_float, check_int
from qopt.background import background_executor
from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.problems.attention import (
    ATTENTION_SOLVER_DEFAULTS,
    even_share,
    greedy_selection,
    minimum_budget,
    remaining_budget,
    selection_value,
    solve_attention,
)
from qopt.solvers import QoptFallbackWarning, resolve_solver
from qopt.sparse_attention import BlockSelectable, block_statistics

__all__ = ["QuboAttentionCallback"]

SelectionMethod = Literal["qubo", "greedy"]


class _Statistics(NamedTuple):
    """What one module's selection is made from: mean scores and redundancy ``(H, N, N)``."""

    scores: np.ndarray
    redundancy: np.ndarray
    #: Most pairs the module's own selector attended in one sequence, or None (no selector).
    spent: int | None


@dataclass
class _Answer:
    """One module's selection with what it cost; computed off the callback (maybe in a thread)."""

    selection: np.ndarray
    record: dict[str, float]
    warning: str | None = None


class QuboAttentionCallback(Callback):
    """Choose the key blocks of every block-sparse attention module with a QUBO solver.

    In :meth:`setup` the callback finds every submodule that satisfies
    :class:`qopt.sparse_attention.BlockSelectable` (such as
    :class:`qopt.sparse_attention.BlockSparseAttention`). After each training step it reads the
    module's block-pooled queries and keys and accumulates the block scores (pooled attention
    mass, as :func:`qopt.problems.attention.block_scores`, averaged over the sequences) and key
    redundancy (as :func:`~qopt.problems.attention.block_redundancy`), in torch where the
    module's tensors live (:func:`qopt.sparse_attention.block_statistics`). Every
    ``every_n_steps`` steps it selects blocks from what it gathered since the last selection
    (:func:`~qopt.problems.attention.solve_attention`: a shared budget of
    ``attended_fraction`` of the causal block pairs over all heads and query blocks,
    redundancy, per-query limits; always feasible and within the budget) and installs the
    selection with ``set_selection``: from then on the module attends those blocks for every
    sequence, until the next selection. Until the first selection, modules keep what they had
    (dense attention for a fresh :class:`~qopt.sparse_attention.BlockSparseAttention`).

    The selection is one pattern for all sequences, learned from the model's recent
    attention. Beside a per-sequence selector on the module (such as
    ``BlockSparseAttention(selector=TopKSelector(k, block_size))``, each sequence's own top-k)
    the callback places only what that selector leaves: the module's ``covered_blocks()``
    count against the budget (the most any sequence took since the last selection), the
    scores are the attention mass they leave, and the installed selection adds its blocks to
    the selector's in every sequence, so each sequence attends at most the budget.
    ``min_blocks`` and ``window`` then apply to the added blocks.

    The solver starts from the greedy selection and never installs a worse one on the
    objective (``solve_attention``'s ``warm_start="greedy"``; ``sample_params={"warm_start":
    None}`` gives the solver's own answer); ``num_above_greedy`` counts the selections where
    it found better. Where greedy already reaches the optimum, as it did on most statistics
    measured in the benchmark (``docs/benchmarks/attention.md``), ``method="greedy"``
    installs the same blocks without the solve.

    Schedule. ``asynchronous=True`` moves each solve to a background thread: the statistics
    are taken at the due step, training goes on, and the answer is installed at the end of
    the next training step (waiting for it if it is not ready), so selections lag one step.

    DDP: at a due step the statistics are averaged across ranks, rank 0 solves (one solver
    call, one QPU job) and the selection is broadcast, so every rank attends the same blocks.

    A remote solver named by ``solver`` (``"dwave"``, ...) that fails falls back to the local
    annealer inside the registry (:func:`qopt.solvers.get_solver`, one
    :class:`~qopt.solvers.QoptFallbackWarning`), so training never stops because of it; such
    solves are counted in ``num_fallbacks``. A solver instance is used as given: its errors
    are not hidden. Steps with non-finite queries or keys are left out of
    the statistics, with a warning.

    Logged with ``pl_module.log`` at each installation: ``attention/attended_fraction`` (with a
    selector, the most any sequence attends: the selector's pairs and the added ones),
    ``attention/objective`` (:func:`~qopt.problems.attention.selection_value` of the
    selection), ``attention/greedy_objective`` (the greedy selection's, the classical control),
    ``attention/solve_s`` and ``attention/fallbacks``.

    Args:
        attended_fraction: Share of the causal block pairs each module attends, in (0, 1]; the
            budget is ``floor(fraction x heads x N (N + 1) / 2)``, at least the diagonal blocks.
        every_n_steps: Select after every N-th training step.
        method: ``"qubo"`` (the solver) or ``"greedy"`` (the classical control, no solver).
        solver: A registry name (``qopt solvers``) or a :class:`dimod.Sampler`.
        solver_options: Options of :func:`qopt.solvers.get_solver` for a named solver, checked
            here; ``num_reads`` and ``num_sweeps`` default to
            :data:`~qopt.problems.attention.ATTENTION_SOLVER_DEFAULTS` where not set.
        redundancy_weight: Weight of the key-redundancy terms (0: none).
        min_blocks: Fewest key blocks per query block (own block included), or ``"even"``:
            as many as the budget gives every query block alike
            (:func:`~qopt.problems.attention.even_share`, the ``k`` of top-k at this budget),
            so that only the rest of the budget is shared.
        max_blocks: Most key blocks per query block, or None.
        window: The ``window`` nearest key blocks of every query block (its own and the
            ``window - 1`` before it) are always attended, as in BigBird's sliding window; the
            solver chooses the rest of the budget among the blocks before them.
        sample_params: Extra keyword arguments for
            :func:`~qopt.problems.attention.solve_attention` at every solve: ``warm_start``
            and the solver's ``sample`` parameters (``seed``, ...).
        asynchronous: Solve in a background thread (see Schedule).

    Raises:
        SolverConfigurationError: At construction, for an invalid option.
        InvalidProblemError: In :meth:`setup`, when the model has no block-selectable module.

    Examples:
        >>> import lightning.pytorch as pl, torch
        >>> from qopt.integrations.lightning import QuboAttentionCallback
        >>> from qopt.sparse_attention import BlockSparseAttention
        >>> class Model(pl.LightningModule):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.attention = BlockSparseAttention(8, num_heads=2, block_size=4)
        ...     def training_step(self, batch, batch_idx):
        ...         return self.attention(batch[0]).pow(2).mean()
        ...     def configure_optimizers(self):
        ...         return torch.optim.SGD(self.parameters(), lr=0.1)
        >>> data = torch.utils.data.DataLoader(
        ...     torch.utils.data.TensorDataset(torch.randn(8, 32, 8)), batch_size=4)
        >>> callback = QuboAttentionCallback(attended_fraction=0.5, every_n_steps=1,
        ...                                  solver_options={"seed": 0})
        >>> trainer = pl.Trainer(max_steps=2, callbacks=[callback], logger=False,
        ...     enable_checkpointing=False, enable_progress_bar=False,
        ...     enable_model_summary=False, accelerator="cpu")
        >>> trainer.fit(Model(), data)
        >>> callback.num_solves, callback.num_fallbacks, callback.selections["attention"].shape
        (2, 0, (2, 8, 8))
    """

    def __init__(
        self,
        *,
        attended_fraction: float = 0.25,
        every_n_steps: int = 50,
        method: SelectionMethod = "qubo",
        solver: str | dimod.Sampler = "sa",
        solver_options: dict[str, Any] | None = None,
        redundancy_weight: float = 1.0,
        min_blocks: int | Literal["even"] = 1,
        max_blocks: int | None = None,
        window: int = 1,
        sample_params: dict[str, Any] | None = None,
        asynchronous: bool = False,
    ) -> None:
        owner = type(self).__name__
        self.attended_fraction = check_float(
            attended_fraction, "attended_fraction", owner, low=0.0, high=1.0, low_inclusive=False
        )
        self.every_n_steps = check_int(every_n_steps, "every_n_steps", owner, low=1)
        if method not in ("qubo", "greedy"):
            raise SolverConfigurationError(
                f"The 'method' parameter of {owner} must be 'qubo' or 'greedy'. Got {method!r} "
                "instead."
            )
        self.method: SelectionMethod = method
        self.solver = solver
        self.solver_options = dict(solver_options or {})
        # Checked and built now: an unknown name or option fails here, not after an epoch.
        self._sampler = resolve_solver(
            solver, self.solver_options, defaults=ATTENTION_SOLVER_DEFAULTS, owner=owner
        )
        self.redundancy_weight = check_float(redundancy_weight, "redundancy_weight", owner, low=0.0)
        self.min_blocks: int | Literal["even"] = (
            "even" if min_blocks == "even" else check_int(min_blocks, "min_blocks", owner, low=1)
        )
        self.max_blocks = (
            None
            if max_blocks is None
            else check_int(
                max_blocks, "max_blocks", owner, low=1 if min_blocks == "even" else min_blocks
            )
        )
        self.window = check_int(window, "window", owner, low=1)
        if self.max_blocks is not None and self.max_blocks < self.window:
            raise SolverConfigurationError(
                f"The 'max_blocks' parameter of {owner} must be at least window={self.window} "
                f"(the window's blocks are always attended). Got {self.max_blocks} instead."
            )
        self.sample_params = dict(sample_params or {})
        if not isinstance(asynchronous, bool):
            raise SolverConfigurationError(
                f"The 'asynchronous' parameter of {owner} must be a bool. Got {asynchronous!r} "
                "instead."
            )
        self.asynchronous = asynchronous

        #: Selections installed, over the whole run (a fallback counts as one too).
        self.num_solves = 0
        #: Solves that failed and installed the greedy selection instead.
        self.num_fallbacks = 0
        #: Selections that score above the greedy one on the objective (what the solver added).
        self.num_above_greedy = 0
        #: The selection installed in each module, by module name: boolean ``(H, N, N)``.
        self.selections: dict[str, np.ndarray] = {}
        self._modules: dict[str, BlockSelectable] = {}
        self._sums: dict[str, tuple[torch.Tensor, torch.Tensor, int, int]] = {}
        self._pending: tuple[int, Future[dict[str, _Answer]]] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._warned: set[str] = set()

    @property
    def state_key(self) -> str:
        solver = self.solver if isinstance(self.solver, str) else type(self.solver).__name__
        return self._generate_state_key(
            method=self.method,
            solver=solver,
            attended_fraction=self.attended_fraction,
            every_n_steps=self.every_n_steps,
        )

    # ------------------------------------------------------------------ lifecycle

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._modules = {
            name: module
            for name, module in pl_module.named_modules()
            if isinstance(module, BlockSelectable)
        }
        if not self._modules:
            raise InvalidProblemError(
                f"{type(self).__name__} found no block-sparse attention module in "
                f"{type(pl_module).__name__}. Use qopt.sparse_attention.BlockSparseAttention, or "
                "give your attention module the qopt.sparse_attention.BlockSelectable members "
                "(num_heads, block_size, pooled_statistics, set_selection)."
            )
        self._install(self.selections)
        if self.asynchronous and self._executor is None:
            # One worker: selections are installed in order, one solve at a time.
            self._executor = background_executor("qopt-attention")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._pending = None

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        step = trainer.global_step  # already counts this step
        if self._pending is not None and self._pending[0] < step:
            self._finish(trainer, pl_module)
        self._accumulate()
        if step % self.every_n_steps != 0:
            return
        statistics = self._gathered(trainer)
        self._sums = {}
        future: Future[dict[str, _Answer]]
        if not trainer.is_global_zero:
            future = Future()
            future.set_result({})
        elif self._executor is not None:
            future = self._executor.submit(self._select_all, statistics)
        else:
            future = Future()
            future.set_result(self._select_all(statistics))
        self._pending = (step, future)
        if not self.asynchronous:
            self._finish(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is not None:  # an answer still in flight at the last step
            self._finish(trainer, pl_module, log=False)  # Lightning allows no logging here

    def state_dict(self) -> dict[str, Any]:
        return {
            "selections": {name: s.tolist() for name, s in self.selections.items()},
            "num_solves": self.num_solves,
            "num_fallbacks": self.num_fallbacks,
            "num_above_greedy": self.num_above_greedy,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.num_solves = int(state_dict.get("num_solves", 0))
        self.num_fallbacks = int(state_dict.get("num_fallbacks", 0))
        self.num_above_greedy = int(state_dict.get("num_above_greedy", 0))
        self.selections = {
            name: np.asarray(s, dtype=bool) for name, s in state_dict.get("selections", {}).items()
        }
        self._install(self.selections)

    def __getstate__(self) -> dict[str, Any]:
        # ddp_spawn pickles callbacks into the worker processes: a thread pool cannot travel.
        state = dict(self.__dict__)
        state["_executor"] = None
        state["_pending"] = None
        return state

    # ------------------------------------------------------------------ statistics

    def _accumulate(self) -> None:
        """Add this step's block scores and redundancy (means over the sequences).

        Summed in torch where the module's tensors live (:func:`block_statistics`); copied to
        the host only when a selection is due.
        """
        for name, module in self._modules.items():
            pooled = module.pooled_statistics()
            if pooled is None:
                continue
            queries, keys = (t.detach() for t in pooled)
            if not bool(torch.isfinite(queries).all() & torch.isfinite(keys).all()):
                self._warn("nonfinite", f"module '{name}' produced non-finite queries or keys")
                continue
            covered = getattr(module, "covered_blocks", lambda: None)()
            scores, redundancy = block_statistics(queries, keys, covered)
            # Pairs the module's own selector spends per sequence (own blocks included).
            spent = -1
            if covered is not None:
                own = torch.eye(covered.shape[-1], dtype=torch.bool, device=covered.device)
                spent = int((covered | own).sum(dim=(1, 2, 3)).max())
            previous = self._sums.get(name)
            if previous is not None and previous[0].shape == scores.shape:
                scores, redundancy = scores + previous[0], redundancy + previous[1]
                count, spent = previous[2] + 1, max(spent, previous[3])
            else:  # first step, or the sequence length changed: start over
                count = 1
            self._sums[name] = (scores, redundancy, count, spent)

    def _gathered(self, trainer: pl.Trainer) -> dict[str, _Statistics]:
        """Mean scores and redundancy per module since the last selection, across ranks."""
        gathered: dict[str, _Statistics] = {}
        for name in self._modules:
            entry = self._sums.get(name)
            spent = -1 if entry is None else entry[3]  # this rank's: same selector everywhere
            if trainer.world_size > 1:
                # Every rank joins, one that saw nothing with weight 0.
                packed = self._packed(entry, name)
                reduced = trainer.strategy.reduce(
                    packed.to(trainer.strategy.root_device), reduce_op="sum"
                )
                entry = (*self._unpacked(reduced, name), spent)
            if entry is None or entry[2] == 0:
                continue
            count = entry[2]
            scores, redundancy = (t.double().div(count).cpu().numpy() for t in entry[:2])
            gathered[name] = _Statistics(scores, redundancy, None if spent < 0 else spent)
        return gathered

    def _packed(
        self, entry: tuple[torch.Tensor, torch.Tensor, int, int] | None, name: str
    ) -> torch.Tensor:
        shape = self._shape(name)
        if entry is None or tuple(entry[0].shape) != shape:
            return torch.zeros(2 * math.prod(shape) + 1)
        scores, redundancy, count, _ = entry
        return torch.cat([scores.ravel(), redundancy.ravel(), scores.new_tensor([count])])

    def _unpacked(self, packed: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor, int]:
        shape = self._shape(name)
        size = math.prod(shape)
        return (
            packed[:size].reshape(shape),
            packed[size : 2 * size].reshape(shape),
            round(float(packed[-1])),
        )

    def _shape(self, name: str) -> tuple[int, int, int]:
        """The module's statistics shape ``(H, N, N)``, from its last pooled statistics."""
        module = self._modules[name]
        pooled = module.pooled_statistics()
        blocks = 0 if pooled is None else int(pooled[0].shape[2])
        return (module.num_heads, blocks, blocks)

    # ------------------------------------------------------------------ selection

    def budget(self, num_heads: int, num_blocks: int) -> int:
        """Attended block pairs allowed to a module of this size."""
        causal = num_heads * num_blocks * (num_blocks + 1) // 2
        budget = math.floor(self.attended_fraction * causal + 1e-9)
        least = 1 if self.min_blocks == "even" else self.min_blocks
        return max(budget, minimum_budget(num_heads, num_blocks, max(least, self.window)))

    def _select_all(self, statistics: dict[str, _Statistics]) -> dict[str, _Answer]:
        """One selection per module; touches no callback state, so it may run in a thread."""
        return {name: self._select(name, stats) for name, stats in statistics.items()}

    def _select(self, name: str, statistics: _Statistics) -> _Answer:
        started = time.perf_counter()
        scores, redundancy, spent = statistics
        heads, blocks, _ = scores.shape
        budget = self.budget(heads, blocks)
        if spent is not None:  # the module's selector spends part: place the rest
            if spent > budget:
                self._warn(
                    f"over-{name}",
                    f"module '{name}''s own selector attended {spent} block pairs in a "
                    f"sequence, over the budget of {budget} (attended_fraction="
                    f"{self.attended_fraction}); the callback adds no blocks to it. Lower the "
                    "selector's k or raise attended_fraction",
                )
            budget = remaining_budget(heads, blocks, budget, spent)
        least = even_share(heads, blocks, budget) if self.min_blocks == "even" else self.min_blocks
        options: dict[str, Any] = {
            "redundancy": redundancy,
            "redundancy_weight": self.redundancy_weight,
            "min_blocks": least if self.max_blocks is None else min(least, self.max_blocks),
            "max_blocks": self.max_blocks,
            "window": min(self.window, blocks - 1) if blocks > 1 else 1,
        }
        greedy = greedy_selection(scores, budget, **options)
        selection, warning = greedy, None
        if self.method == "qubo" and blocks > 1:
            # A remote solver that fails falls back inside the registry's FallbackComposite
            # (which warns); the solve record says so, and it is counted here.
            solution = solve_attention(
                scores, budget, solver=self._sampler, **options, **self.sample_params
            )
            selection = solution.value
            if solution.record.fallback is not None:
                warning = f"module '{name}': {solution.record.fallback}"
        value = {
            key: selection_value(
                chosen, scores, redundancy=redundancy, redundancy_weight=self.redundancy_weight
            )
            for key, chosen in (("objective", selection), ("greedy_objective", greedy))
        }
        record = {
            **value,
            # With a selector: its most pairs in a sequence plus the added ones.
            "attended_fraction": (
                float(selection.sum()) + (0 if spent is None else spent - heads * blocks)
            )
            / (heads * blocks * (blocks + 1) / 2),
            "solve_s": time.perf_counter() - started,
        }
        return _Answer(selection, record, warning)

    def _finish(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *, log: bool = True
    ) -> None:
        """Wait for the pending answers, broadcast rank 0's, install and (``log``) log them."""
        assert self._pending is not None
        answers = self._pending[1].result()
        self._pending = None
        if trainer.world_size > 1:
            answers = trainer.strategy.broadcast(answers, src=0)
        if not answers:
            return
        for name, answer in answers.items():
            self.num_solves += 1
            if answer.warning is not None:
                self.num_fallbacks += 1
            record = answer.record
            if record["objective"] > record["greedy_objective"] + 1e-9 * abs(
                record["greedy_objective"]
            ):
                self.num_above_greedy += 1
            self.selections[name] = answer.selection
        self._install({name: answers[name].selection for name in answers})
        if not log:
            return
        records = [a.record for a in answers.values()]
        fallbacks = float(sum(a.warning is not None for a in answers.values()))
        logged = {key: float(np.mean([r[key] for r in records])) for key in records[0]}
        logged["fallbacks"] = fallbacks
        for key, value in logged.items():
            # Identical on every rank (broadcast), so no reduction is needed.
            pl_module.log(f"attention/{key}", value, on_step=True, on_epoch=False, batch_size=1)

    def _install(self, selections: dict[str, np.ndarray]) -> None:
        for name, selection in selections.items():
            module = self._modules.get(name)
            if module is not None:
                module.set_selection(torch.from_numpy(np.array(selection, dtype=bool)))

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"{type(self).__name__}: {message}.", QoptFallbackWarning, stacklevel=3)
