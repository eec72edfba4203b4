"""``QuboRoutingCallback``: mixture-of-experts routing solved as a QUBO inside a Lightning run."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import dimod
import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from qopt._validation import check_float, check_int
from qopt.background import background_executor
from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.moe import Routable, RouterHook, RoutingDecision, bias_step, distillation_loss
from qopt.problems.routing import ROUTING_SOLVER_DEFAULTS, BatchRouter, PairwiseSpec, RoutingStats
from qopt.solvers import QoptFallbackWarning, resolve_solver

__all__ = ["QoptRoutingWarning", "QuboRoutingCallback"]

RoutingMode = Literal["assign", "bias", "distill"]
_MODES = ("assign", "bias", "distill")


class QoptRoutingWarning(UserWarning):
    """A routed layer changed under the routing callback (e.g. pruned); training goes on.

    Silence it with ``warnings.filterwarnings("ignore", category=QoptRoutingWarning)``.
    """


def _active_experts(module: Routable) -> np.ndarray | None:
    """The experts a layer lets take tokens (its optional ``active_experts``), or ``None``
    when every expert may."""
    active = getattr(module, "active_experts", None)
    if active is None:
        return None
    flags = torch.as_tensor(active).detach().cpu().numpy().astype(bool).reshape(-1)
    return None if flags.all() else np.flatnonzero(flags)


@dataclass
class _Outcome:
    """One layer's solve, computed without touching the callback (it may run in a thread)."""

    assignment: np.ndarray | None
    record: dict[str, float] = field(default_factory=dict)
    warning: tuple[str, str] | None = None


@dataclass
class _Pending:
    """A bias-mode solve whose answer is still to be applied to the biases."""

    step: int
    name: str
    future: Future[_Outcome]
    biased_load: np.ndarray


class QuboRoutingCallback(Callback):
    """Route the tokens of every routable module through a QUBO solver during training.

    In :meth:`setup` the callback finds every submodule that satisfies
    :class:`qopt.moe.Routable` (such as :class:`qopt.moe.MoE`) and installs a router hook on
    it. Every ``every_n_steps`` training steps, each hook takes the router logits of the batch,
    turns their log-softmax into a routing problem (:func:`qopt.problems.routing.solve_routing`:
    tokens x experts binaries, ``k`` experts per token, the layer's expert capacity, optional
    pairwise terms, token groups solved as one batch, warm start, repair) and feeds the solved
    assignment back in one of three modes:

    - ``"assign"``: the layer dispatches this batch by the solved assignment. At evaluation
      the layer routes greedily by itself, so inference stays causal.
    - ``"bias"``: the layer always routes by top-k of ``logits + bias`` (also at evaluation);
      each solve moves every expert's bias by ``bias_update_rate`` toward the solved load
      (the aux-loss-free update of Wang et al. 2024, with the QUBO solution as the target).
    - ``"distill"``: the layer routes itself and the hook returns a cross-entropy loss pulling
      the router toward the solved assignment; it reaches the optimizer only if the
      ``training_step`` adds the layer's auxiliary loss (``MoE.aux_loss``).

    Schedule. ``every_n_steps`` solves on every N-th step only (in ``"assign"`` and
    ``"distill"`` modes the other steps use the layer's own routing; in ``"bias"`` mode every
    step routes by the current biases). In ``"bias"`` mode, ``asynchronous=True`` also moves
    each solve to a background thread: the batch is routed by the current biases at once,
    the solve overlaps the rest of the step (the annealer releases the GIL) and its answer
    moves the biases at the end of the *next* training step, so the biases lag one step
    behind the synchronous schedule. Ranks apply answers at the same steps, so DDP stays in
    step. Answers still in flight when training ends are applied in ``on_train_end``.

    Fallbacks. A remote backend given by name (``"dwave"``, ...) is built by
    :func:`qopt.solvers.get_solver`, which falls back to the local ``"sa"`` when it fails
    (:class:`~qopt.solvers.FallbackComposite`: one warning, the reason in the solve record), so
    training never stops because a remote solver did. A batch that cannot be routed as a QUBO
    (non-finite logits, capacity too small for ``k``) keeps the layer's own routing and warns
    once per cause (:class:`~qopt.solvers.QoptFallbackWarning`). Both are counted in
    ``num_fallbacks`` and ``routing/fallbacks``. Any other solver error is raised: a solver
    instance is used as given, so wrap a remote one in a fallback yourself or pass its name.

    Logged with ``pl_module.log`` on every solving step (reduced across DDP ranks). What the
    layers did in that step, after capacity, in every mode (from each layer's ``last_stats``
    where it has one, as :class:`~qopt.moe.MoE` does): ``routing/max_violation`` (fullest
    expert over the balanced load, max), ``routing/dropped`` (slots dropped for lack of
    capacity, sum) and ``routing/dead_experts`` (max). What the solver answered:
    ``routing/solver_max_violation``, ``routing/infeasible_fraction`` (raw solver samples
    infeasible before repair), ``routing/solver_s`` and ``routing/route_s`` (solver and
    whole-routing seconds), ``routing/polish_gain`` (energy the classical polish removed below
    the better of the solver's answer and the warm start, log-probability units; 0 means the
    solver's answer was already locally optimal), ``routing/fallbacks`` and, when the
    objective is linear and ``compare_exact`` is set, ``routing/objective``,
    ``routing/exact_objective`` and ``routing/optimality_gap`` (relative shortfall from the
    exact linear-assignment optimum, in log-probability units). In ``"assign"`` mode the
    layer dispatches the solver's answer, so the two agree; in ``"bias"`` and ``"distill"``
    modes the layer routes by itself and may drop tokens the answer would not have.

    Pruned experts. A layer with ``active_experts`` (a :class:`~qopt.moe.MoE` whose experts
    :class:`~qopt.integrations.lightning.QuboPruningCallback` masks) is routed over its
    active experts only: no token goes to a masked expert. When a layer's number of experts
    changes (:meth:`~qopt.moe.MoE.keep_experts`), the callback warns once
    (:class:`QoptRoutingWarning`) and starts that layer's biases again.

    For purely linear routing the exact assignment is optimal and faster (Sinkhorn is close
    and faster still); use this callback for pairwise objectives or to run routing on
    annealing hardware. On a linear objective the routes it returns are optimal because of
    the classical polish (``polish``), not the annealer.

    Args:
        solver: A registry name (``qopt solvers``) or any :class:`dimod.Sampler`.
        solver_options: Options for :func:`qopt.solvers.get_solver` when ``solver`` is a name,
            checked here. Where the backend has them and they are not set here,
            ``num_reads`` and ``num_sweeps`` default to 1 and 20
            (:data:`~qopt.problems.routing.ROUTING_SOLVER_DEFAULTS`: the solver refines a
            warm start); a remote backend falls back to the local ``"sa"`` when it fails.
        mode: ``"assign"``, ``"bias"`` or ``"distill"``.
        every_n_steps: Solve on training steps whose global step is a multiple of this.
        group_size: Tokens per QUBO group (see :func:`~qopt.problems.routing.solve_routing`).
            32 is the cheapest at 1024 tokens x 8 experts (``benchmarks/moe/routing_time.py
            --group-size``): larger groups grow the capacity cliques, smaller ones the slack.
        pairwise: ``None`` (linear), a :class:`~qopt.problems.routing.PairwiseTerms`,
            ``"similarity"`` (tokens whose router inputs are cosine nearest neighbours within
            a group are rewarded for sharing an expert), or a callable
            ``(log_probs, hidden) -> PairwiseTerms`` on numpy arrays.
        similarity_weight: Weight of the ``"similarity"`` terms, in log-probability units.
        num_neighbors: Neighbours per token for ``"similarity"``.
        warm_start: ``"sinkhorn"``, ``"greedy"`` or ``None``.
        penalty: Constraint penalty of the formulation: ``None`` (half the largest change one
            flip makes to the objective; see :func:`~qopt.problems.routing.routing_problem`),
            a float, or ``"auto"`` for the provable weights (far from the optimum on
            simulated annealing).
        polish: Classical polish after the solver (see
            :func:`~qopt.problems.routing.solve_routing`): ``"global"`` (default) moves tokens
            along negative cycles inside each group and then across groups, ``"groups"``
            only inside each group's capacity share, ``None`` not at all. On a linear
            objective the global polish, not the annealer, is what reaches the exact optimum.
        sample_params: Extra keyword arguments for the solver's ``sample`` at every solve.
        compare_exact: Log the gap to the exact linear-assignment optimum (linear objective).
        bias_update_rate: Bias step in ``"bias"`` mode.
        distill_weight: Weight of the distillation loss in ``"distill"`` mode.
        asynchronous: ``"bias"`` mode only: solve in a background thread and apply each
            answer one step later (see Schedule above). The thread runs at a lower CPU
            priority (10 nice levels lower on Linux) so that it fills idle CPU rather than
            slowing the training step.

    Raises:
        SolverConfigurationError: At construction, for an invalid option.
        InvalidProblemError: In :meth:`setup`, when the model has no routable module.

    Examples:
        >>> import lightning.pytorch as pl, torch
        >>> from qopt.integrations.lightning import QuboRoutingCallback
        >>> from qopt.moe import MoE
        >>> class Model(pl.LightningModule):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.moe = MoE(8, 4, capacity_factor=1.0)
        ...     def training_step(self, batch, batch_idx):
        ...         return self.moe(batch[0]).pow(2).mean() + self.moe.aux_loss
        ...     def configure_optimizers(self):
        ...         return torch.optim.SGD(self.parameters(), lr=0.1)
        >>> data = torch.utils.data.DataLoader(
        ...     torch.utils.data.TensorDataset(torch.randn(64, 8)), batch_size=16)
        >>> callback = QuboRoutingCallback(solver="sa", solver_options={"seed": 0, "num_reads": 4})
        >>> trainer = pl.Trainer(max_steps=2, callbacks=[callback], logger=False,
        ...     enable_checkpointing=False, enable_progress_bar=False,
        ...     enable_model_summary=False, accelerator="cpu")
        >>> trainer.fit(Model(), data)
        >>> callback.num_solves, callback.num_fallbacks
        (2, 0)
    """

    def __init__(
        self,
        *,
        solver: str | dimod.Sampler = "sa",
        solver_options: dict[str, Any] | None = None,
        mode: RoutingMode = "assign",
        every_n_steps: int = 1,
        group_size: int | None = 32,
        pairwise: PairwiseSpec | None = None,
        similarity_weight: float = 0.1,
        num_neighbors: int = 4,
        warm_start: Literal["sinkhorn", "greedy"] | None = "sinkhorn",
        penalty: float | Literal["auto"] | None = None,
        polish: Literal["global", "groups"] | None = "global",
        sample_params: dict[str, Any] | None = None,
        compare_exact: bool = True,
        bias_update_rate: float = 1e-3,
        distill_weight: float = 0.1,
        asynchronous: bool = False,
    ) -> None:
        owner = type(self).__name__
        if mode not in _MODES:
            raise SolverConfigurationError(
                f"The 'mode' parameter of {owner} must be one of {', '.join(_MODES)}. "
                f"Got {mode!r} instead."
            )
        self.solver = solver
        self.solver_options = dict(solver_options or {})
        self.mode: RoutingMode = mode
        self.every_n_steps = check_int(every_n_steps, "every_n_steps", owner, low=1)
        #: The core router: the solver and every routing setting, checked here.
        self.router = BatchRouter(
            solver=resolve_solver(
                solver, self.solver_options, defaults=ROUTING_SOLVER_DEFAULTS, owner=owner
            ),
            group_size=group_size,
            pairwise=pairwise,
            similarity_weight=similarity_weight,
            num_neighbors=num_neighbors,
            warm_start=warm_start,
            penalty=penalty,
            polish=polish,
            sample_params=sample_params,
            compare_exact=compare_exact,
            owner=owner,
        )
        if not isinstance(asynchronous, bool):
            raise SolverConfigurationError(
                f"The 'asynchronous' parameter of {owner} must be a bool. "
                f"Got {asynchronous!r} instead."
            )
        if asynchronous and mode != "bias":
            raise SolverConfigurationError(
                f"The 'asynchronous' parameter of {owner} needs mode='bias': in {mode!r} mode "
                "the answer is needed in the same forward pass. Got asynchronous=True with "
                f"mode={mode!r}."
            )
        self.asynchronous = asynchronous
        self.bias_update_rate = check_float(bias_update_rate, "bias_update_rate", owner, low=0.0)
        self.distill_weight = check_float(distill_weight, "distill_weight", owner, low=0.0)

        #: Solves that produced an assignment, over the whole run.
        self.num_solves = 0
        #: Solves that did not run as asked: the remote solver fell back to the local one,
        #: or the layer routed by itself.
        self.num_fallbacks = 0
        self._modules: dict[str, Routable] = {}
        self._biases: dict[str, torch.Tensor] = {}
        self._restored_biases: dict[str, list[float]] = {}
        self._step = 0
        self._step_records: list[dict[str, float]] = []
        self._pending: list[_Pending] = []
        self._executor: ThreadPoolExecutor | None = None
        self._warned: set[str] = set()

    @property
    def state_key(self) -> str:
        solver = self.solver if isinstance(self.solver, str) else type(self.solver).__name__
        return self._generate_state_key(
            mode=self.mode, solver=solver, every_n_steps=self.every_n_steps
        )

    # ------------------------------------------------------------------ lifecycle

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._modules = {
            name or "root": module
            for name, module in pl_module.named_modules()
            if isinstance(module, Routable)
        }
        if not self._modules:
            raise InvalidProblemError(
                f"{type(self).__name__} found no routable module in "
                f"{type(pl_module).__name__}. Use qopt.moe.MoE, or give your MoE layer the "
                "qopt.moe.Routable members (num_experts, top_k, expert_capacity, "
                "router_scores, set_router_hook); see the qopt.moe documentation."
            )
        self._apply_restored_biases()
        for name, module in self._modules.items():
            module.set_router_hook(self._make_hook(name, module))
            self._layer_bias(name, module)
        if self.asynchronous and self._executor is None:
            # One worker: solves are applied in order, and one solve at a time is all the
            # spare CPU a training step leaves.
            self._executor = background_executor("qopt-routing")

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for module in self._modules.values():
            module.set_router_hook(None)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        self._pending = []

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._step = trainer.global_step
        self._step_records = []

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.mode == "bias":
            # Synchronous: this step's answers. Asynchronous: those of earlier steps. Which
            # steps are due depends on the step number only, so every DDP rank joins the
            # same reductions.
            due = [p for p in self._pending if p.step < self._step or not self.asynchronous]
            if not due:
                return
            self._apply_pending(trainer, due)
        elif self._step % self.every_n_steps != 0:
            return
        self._log(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending:  # answers still in flight at the last step
            self._apply_pending(trainer, list(self._pending))

    def state_dict(self) -> dict[str, Any]:
        return {
            "biases": {name: bias.tolist() for name, bias in self._biases.items()},
            "num_solves": self.num_solves,
            "num_fallbacks": self.num_fallbacks,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.num_solves = int(state_dict.get("num_solves", 0))
        self.num_fallbacks = int(state_dict.get("num_fallbacks", 0))
        self._restored_biases = {k: list(v) for k, v in state_dict.get("biases", {}).items()}
        self._apply_restored_biases()

    def _apply_restored_biases(self) -> None:
        for name, values in list(self._restored_biases.items()):
            if name in self._modules or not self._modules:
                self._biases[name] = torch.tensor(values, dtype=torch.float32)
                if self._modules:
                    del self._restored_biases[name]

    def __getstate__(self) -> dict[str, Any]:
        # ddp_spawn pickles callbacks into the worker processes: a thread pool cannot travel.
        state = dict(self.__dict__)
        state["_executor"] = None
        state["_pending"] = []
        return state

    # ------------------------------------------------------------------ routing

    def _layer_bias(self, name: str, module: Routable) -> torch.Tensor:
        """The layer's bias-mode biases, started again if its number of experts changed."""
        bias = self._biases.get(name)
        if bias is not None and bias.numel() == module.num_experts:
            return bias
        if bias is not None:
            # Pruned (e.g. MoE.keep_experts): which experts survived is not known here.
            key = f"{name}:experts"
            if key not in self._warned:
                self._warned.add(key)
                what = "its bias-mode biases start again from 0" if self.mode == "bias" else ""
                warnings.warn(
                    f"{type(self).__name__}: module '{name}' now has {module.num_experts} "
                    f"experts (it had {bias.numel()}); it is routed over those from now on"
                    + (f" and {what}" if what else "")
                    + ".",
                    QoptRoutingWarning,
                    stacklevel=4,
                )
        bias = torch.zeros(module.num_experts)
        self._biases[name] = bias
        return bias

    def _make_hook(self, name: str, module: Routable) -> RouterHook:
        def hook(scores: torch.Tensor, hidden: torch.Tensor | None) -> RoutingDecision | None:
            return self._route(name, module, scores, hidden)

        return hook

    def _route(
        self, name: str, module: Routable, scores: torch.Tensor, hidden: torch.Tensor | None
    ) -> RoutingDecision | None:
        training = bool(getattr(module, "training", True))
        k = module.top_k
        bias = self._layer_bias(name, module)
        biased: torch.Tensor | None = None
        if self.mode == "bias":
            steered = scores.detach() + bias.to(scores.device, scores.dtype)
            biased = torch.topk(steered, k, dim=-1).indices
        if not training or self._step % self.every_n_steps != 0:
            return None if biased is None else RoutingDecision(assignment=biased)

        logits = scores.detach().float().cpu().numpy()
        features = None if hidden is None else hidden.detach().float().cpu().numpy()
        capacity = module.expert_capacity(logits.shape[0])
        e = module.num_experts
        experts = _active_experts(module)
        args = (name, k, capacity, logits, features, experts)
        if biased is not None:  # bias mode
            future: Future[_Outcome]
            if self._executor is not None:
                future = self._executor.submit(self._solve, *args)
            else:
                future = Future()
                future.set_result(self._solve(*args))
            biased_load = np.bincount(biased.cpu().numpy().reshape(-1), minlength=e)[:e]
            self._pending.append(_Pending(self._step, name, future, biased_load))
            return RoutingDecision(assignment=biased)

        outcome = self._solve(*args)
        self._collect(outcome)
        solved = outcome.assignment
        if solved is None:  # fallback: the layer's own routing
            return None
        assignment = torch.as_tensor(solved, device=scores.device)
        if self.mode == "assign":
            return RoutingDecision(assignment=assignment)
        return RoutingDecision(aux_loss=distillation_loss(scores, assignment, self.distill_weight))

    def _collect(self, outcome: _Outcome) -> None:
        """Book a finished solve (main thread): its record, its warning, the counters."""
        if outcome.warning is not None:
            key, message = outcome.warning
            if key not in self._warned:
                self._warned.add(key)
                warnings.warn(message, QoptFallbackWarning, stacklevel=4)
        if outcome.assignment is not None:
            self.num_solves += 1
        self.num_fallbacks += int(outcome.record.get("fallback", 0.0))
        self._step_records.append(outcome.record)

    def _solve(
        self,
        name: str,
        k: int,
        capacity: int,
        logits: np.ndarray,
        hidden: np.ndarray | None,
        experts: np.ndarray | None,
    ) -> _Outcome:
        """Route one layer's batch; touches no callback state, so it may run in a thread."""
        try:
            routed = self.router.route(logits, k, capacity, hidden, experts=experts)
        except InvalidProblemError as error:  # non-finite logits, capacity too small for k
            cause = re.sub(r"[0-9]+", "#", str(error))  # one warning per cause, not per count
            return _Outcome(
                None,
                {"fallback": 1.0},
                warning=(
                    f"{name}:{cause}",
                    f"QuboRoutingCallback: module '{name}' cannot be routed as a QUBO "
                    f"({error}); it routes by itself instead.",
                ),
            )
        # A remote solver that failed was replaced by the local fallback, which warned: the
        # solve record says so, and the step counts it.
        fallback = {"fallback": 1.0} if routed.fallback is not None else {}
        return _Outcome(routed.assignment, {**routed.record, **fallback})

    # ------------------------------------------------------------------ bias mode, logging

    def _apply_pending(self, trainer: pl.Trainer, due: list[_Pending]) -> None:
        """Wait for the due solves and move the biases, one update per solving step."""
        self._pending = [p for p in self._pending if p not in due]
        for step in sorted({p.step for p in due}):
            loads: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for p in due:
                if p.step != step:
                    continue
                outcome = p.future.result()
                self._collect(outcome)
                if outcome.assignment is not None:
                    e = p.biased_load.size
                    solved = np.bincount(outcome.assignment.reshape(-1), minlength=e)[:e]
                    loads[p.name] = (solved, p.biased_load)
            self._update_biases(trainer, loads)

    def _update_biases(
        self, trainer: pl.Trainer, loads: dict[str, tuple[np.ndarray, np.ndarray]]
    ) -> None:
        for name, bias in self._biases.items():
            if name not in self._modules:
                continue
            pair = loads.get(name)
            e = bias.numel()
            # Every rank joins the reduction, even one whose solve fell back (zero weight).
            solved, current = pair if pair is not None else (np.zeros(e), np.zeros(e))
            packed = torch.tensor(
                np.concatenate([solved, current, [1.0 if pair is not None else 0.0]]),
                dtype=torch.float32,
            )
            packed = self._reduce(trainer, packed, "sum")
            if float(packed[-1]) == 0:
                continue
            # Toward the solved load, summed over the ranks like the current load.
            self._biases[name] = bias + bias_step(
                packed[e : 2 * e], packed[:e], self.bias_update_rate
            )

    @staticmethod
    def _reduce(trainer: pl.Trainer, tensor: torch.Tensor, op: str) -> torch.Tensor:
        if trainer.world_size <= 1:
            return tensor
        device = trainer.strategy.root_device
        reduced: torch.Tensor = trainer.strategy.reduce(tensor.to(device), reduce_op=op)
        return reduced.cpu()

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        records = self._step_records
        fallbacks = float(sum(r.get("fallback", 0.0) for r in records))
        solved = [r for r in records if "max_violation" in r]
        sync = trainer.world_size > 1
        values: dict[str, tuple[float, str]] = {"fallbacks": (fallbacks, "sum")}
        # What the layers did (after any capacity drops), in every mode.
        layers = [
            stats
            for module in self._modules.values()
            if isinstance(stats := getattr(module, "last_stats", None), RoutingStats)
        ]
        if layers:
            values.update(
                {
                    "max_violation": (max(s.max_violation for s in layers), "max"),
                    "dropped": (float(sum(s.dropped for s in layers)), "sum"),
                    "dead_experts": (float(max(s.dead_experts for s in layers)), "max"),
                }
            )
        if solved:

            def pick(key: str, fx: Callable[[list[float]], float]) -> float:
                return fx([r[key] for r in solved if key in r])

            values.update(
                {
                    # The solver's answer: what "assign" dispatches, "bias" steers toward
                    # and "distill" teaches.
                    "solver_max_violation": (pick("max_violation", max), "max"),
                    "infeasible_fraction": (pick("infeasible_fraction", _mean), "mean"),
                    "solver_s": (pick("solver_s", sum), "mean"),
                    "route_s": (pick("route_s", sum), "mean"),
                    "polish_gain": (pick("polish_gain", sum), "mean"),
                }
            )
            if all("optimality_gap" in r for r in solved):
                values["objective"] = (pick("objective", sum), "mean")
                values["exact_objective"] = (pick("exact_objective", sum), "mean")
                values["optimality_gap"] = (pick("optimality_gap", max), "max")
        for key, (value, reduce_fx) in values.items():
            if not math.isfinite(value):
                continue
            pl_module.log(
                f"routing/{key}",
                value,
                on_step=True,
                on_epoch=False,
                sync_dist=sync,
                reduce_fx=reduce_fx,
                batch_size=1,
            )


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0
