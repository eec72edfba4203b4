"""``QuboRoutingCallback``: mixture-of-experts routing solved as a QUBO inside a Lightning run."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any, Literal

import dimod
import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from qopt._validation import check_float, check_int
from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.moe import Routable, RouterHook, RoutingDecision
from qopt.problems.routing import (
    PairwiseTerms,
    affinity,
    exact_assignment,
    knn_similarity,
    routing_stats,
    solve_routing,
)
from qopt.solvers import QoptFallbackWarning, get_solver

__all__ = ["QuboRoutingCallback"]

RoutingMode = Literal["assign", "bias", "distill"]
PairwiseSpec = (
    PairwiseTerms | Literal["similarity"] | Callable[[np.ndarray, np.ndarray | None], PairwiseTerms]
)
_MODES = ("assign", "bias", "distill")


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

    A solve that fails for any reason (solver error, non-finite logits, capacity too small for
    ``k``) leaves the layer's own routing in place for that batch, warns once per cause
    (:class:`~qopt.solvers.QoptFallbackWarning`) and is counted in ``routing/fallbacks``:
    training never stops because of the solver.

    Logged with ``pl_module.log`` on every solving step (reduced across DDP ranks):
    ``routing/max_violation`` (fullest expert over the balanced load, max), ``routing/dropped``
    (slots over capacity, sum), ``routing/dead_experts`` (max), ``routing/infeasible_fraction``
    (raw solver samples infeasible before repair), ``routing/solver_s`` and ``routing/route_s``
    (solver and whole-routing seconds), ``routing/fallbacks`` and, when the objective is linear
    and ``compare_exact`` is set, ``routing/objective``, ``routing/exact_objective`` and
    ``routing/optimality_gap`` (relative shortfall from the exact linear-assignment optimum, in
    log-probability units).

    For purely linear routing the exact assignment or Sinkhorn is optimal and faster; use this
    callback for pairwise objectives or to run routing on annealing hardware.

    Args:
        solver: A registry name (``qopt solvers``) or any :class:`dimod.Sampler`.
        solver_options: Options for :func:`qopt.solvers.get_solver` when ``solver`` is a name.
        mode: ``"assign"``, ``"bias"`` or ``"distill"``.
        every_n_steps: Solve on training steps whose global step is a multiple of this.
        group_size: Tokens per QUBO group (see :func:`~qopt.problems.routing.solve_routing`).
        pairwise: ``None`` (linear), a :class:`~qopt.problems.routing.PairwiseTerms`,
            ``"similarity"`` (tokens whose router inputs are cosine nearest neighbours within
            a group are rewarded for sharing an expert), or a callable
            ``(log_probs, hidden) -> PairwiseTerms`` on numpy arrays.
        similarity_weight: Weight of the ``"similarity"`` terms, in log-probability units.
        num_neighbors: Neighbours per token for ``"similarity"``.
        warm_start: ``"sinkhorn"``, ``"greedy"`` or ``None``.
        penalty: Constraint penalty of the formulation, ``"auto"`` to scale it.
        sample_params: Extra keyword arguments for the solver's ``sample``.
        compare_exact: Log the gap to the exact linear-assignment optimum (linear objective).
        bias_update_rate: Bias step in ``"bias"`` mode.
        distill_weight: Weight of the distillation loss in ``"distill"`` mode.

    Raises:
        SolverConfigurationError: At construction, for an invalid option.
        InvalidProblemError: In :meth:`setup`, when the model has no routable module.

    Example:
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
        group_size: int | None = 64,
        pairwise: PairwiseSpec | None = None,
        similarity_weight: float = 0.1,
        num_neighbors: int = 4,
        warm_start: Literal["sinkhorn", "greedy"] | None = "sinkhorn",
        penalty: float | Literal["auto"] = "auto",
        sample_params: dict[str, Any] | None = None,
        compare_exact: bool = True,
        bias_update_rate: float = 1e-3,
        distill_weight: float = 0.1,
    ) -> None:
        owner = type(self).__name__
        if mode not in _MODES:
            raise SolverConfigurationError(
                f"The 'mode' parameter of {owner} must be one of {', '.join(_MODES)}. "
                f"Got {mode!r} instead."
            )
        self.solver = solver
        self.solver_options = dict(solver_options or {})
        if isinstance(solver, str):
            self._sampler: dimod.Sampler = get_solver(solver, **self.solver_options)
        elif isinstance(solver, dimod.Sampler):
            if self.solver_options:
                raise SolverConfigurationError(
                    f"{owner} got solver_options for a solver instance; configure the "
                    "instance itself, or pass a registry name."
                )
            self._sampler = solver
        else:
            raise SolverConfigurationError(
                f"The 'solver' parameter of {owner} must be a registry name or a dimod.Sampler. "
                f"Got {type(solver).__name__} instead."
            )
        self.mode: RoutingMode = mode
        self.every_n_steps = check_int(every_n_steps, "every_n_steps", owner, low=1)
        self.group_size = (
            None if group_size is None else check_int(group_size, "group_size", owner, low=1)
        )
        if not (
            pairwise is None
            or pairwise == "similarity"
            or isinstance(pairwise, PairwiseTerms)
            or callable(pairwise)
        ):
            raise SolverConfigurationError(
                f"The 'pairwise' parameter of {owner} must be None, 'similarity', a "
                f"PairwiseTerms or a callable. Got {pairwise!r} instead."
            )
        self.pairwise = pairwise
        self.similarity_weight = check_float(similarity_weight, "similarity_weight", owner)
        self.num_neighbors = check_int(num_neighbors, "num_neighbors", owner, low=1)
        if warm_start not in ("sinkhorn", "greedy", None):
            raise SolverConfigurationError(
                f"The 'warm_start' parameter of {owner} must be 'sinkhorn', 'greedy' or None. "
                f"Got {warm_start!r} instead."
            )
        self.warm_start = warm_start
        self.penalty = penalty
        self.sample_params = dict(sample_params or {})
        self.compare_exact = bool(compare_exact)
        self.bias_update_rate = check_float(bias_update_rate, "bias_update_rate", owner, low=0.0)
        self.distill_weight = check_float(distill_weight, "distill_weight", owner, low=0.0)

        #: Solves that produced an assignment, over the whole run.
        self.num_solves = 0
        #: Solves that failed and left the layer's own routing in place.
        self.num_fallbacks = 0
        self._modules: dict[str, Routable] = {}
        self._biases: dict[str, torch.Tensor] = {}
        self._restored_biases: dict[str, list[float]] = {}
        self._step = 0
        self._step_records: list[dict[str, float]] = []
        self._pending_loads: dict[str, tuple[np.ndarray, np.ndarray]] = {}
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
        for name, module in self._modules.items():
            module.set_router_hook(self._make_hook(name, module))
            if name not in self._biases:
                self._biases[name] = torch.zeros(module.num_experts)
        self._apply_restored_biases()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for module in self._modules.values():
            module.set_router_hook(None)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._step = trainer.global_step
        self._step_records = []
        self._pending_loads = {}

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self._step % self.every_n_steps != 0:
            return
        if self.mode == "bias":
            self._update_biases(trainer)
        self._log(trainer, pl_module)

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

    # ------------------------------------------------------------------ routing

    def _make_hook(self, name: str, module: Routable) -> RouterHook:
        def hook(scores: torch.Tensor, hidden: torch.Tensor | None) -> RoutingDecision | None:
            return self._route(name, module, scores, hidden)

        return hook

    def _route(
        self, name: str, module: Routable, scores: torch.Tensor, hidden: torch.Tensor | None
    ) -> RoutingDecision | None:
        training = bool(getattr(module, "training", True))
        k = module.top_k
        biased: torch.Tensor | None = None
        if self.mode == "bias":
            bias = self._biases[name].to(scores.device, scores.dtype)
            biased = torch.topk(scores.detach() + bias, k, dim=-1).indices
        if not training or self._step % self.every_n_steps != 0:
            return None if biased is None else RoutingDecision(assignment=biased)

        solved = self._solve(name, module, scores.detach(), hidden)
        if solved is None:  # fallback: the layer's own routing (or the biased top-k)
            return None if biased is None else RoutingDecision(assignment=biased)
        assignment = torch.as_tensor(solved, device=scores.device)
        if self.mode == "assign":
            return RoutingDecision(assignment=assignment)
        if self.mode == "bias":
            assert biased is not None
            e = module.num_experts
            solved_load = np.bincount(solved.reshape(-1), minlength=e)[:e]
            biased_load = np.bincount(biased.cpu().numpy().reshape(-1), minlength=e)[:e]
            self._pending_loads[name] = (solved_load, biased_load)
            return RoutingDecision(assignment=biased)
        # distill: cross-entropy of the router against the solved experts (uniform over k).
        log_probs = torch.log_softmax(scores.float(), dim=-1)
        target = log_probs.gather(1, assignment)
        loss = -self.distill_weight * target.mean()
        return RoutingDecision(aux_loss=loss)

    def _warn_once(self, key: str, message: str) -> None:
        self.num_fallbacks += 1
        self._step_records.append({"fallback": 1.0})
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, QoptFallbackWarning, stacklevel=3)

    def _pairwise_terms(
        self, log_probs: np.ndarray, hidden: np.ndarray | None
    ) -> PairwiseTerms | None:
        if self.pairwise is None or isinstance(self.pairwise, PairwiseTerms):
            return self.pairwise
        if self.pairwise == "similarity":
            features = log_probs if hidden is None else hidden
            return PairwiseTerms(
                token_similarity=knn_similarity(
                    features, num_neighbors=self.num_neighbors, block_size=self.group_size
                ),
                similarity_weight=self.similarity_weight,
            )
        return self.pairwise(log_probs, hidden)

    def _solve(
        self, name: str, module: Routable, scores: torch.Tensor, hidden: torch.Tensor | None
    ) -> np.ndarray | None:
        started = time.perf_counter()
        logits = scores.float().cpu().numpy()
        if not np.isfinite(logits).all():
            self._warn_once(
                "nonfinite",
                f"QuboRoutingCallback: module '{name}' produced non-finite router logits; "
                "it routes this batch by itself. The router has probably diverged.",
            )
            return None
        num_tokens = logits.shape[0]
        k = module.top_k
        capacity = module.expert_capacity(num_tokens)
        log_probs = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        try:
            pairwise = self._pairwise_terms(
                log_probs, None if hidden is None else hidden.float().cpu().numpy()
            )
            result = solve_routing(
                log_probs,
                k,
                capacity,
                solver=self._sampler,
                pairwise=pairwise,
                group_size=self.group_size,
                warm_start=self.warm_start,
                penalty=self.penalty,
                **self.sample_params,
            )
        except InvalidProblemError as error:  # e.g. capacity too small for k
            self._warn_once(
                f"problem:{error}",
                f"QuboRoutingCallback: module '{name}' cannot be routed as a QUBO ({error}); "
                "it routes by itself instead.",
            )
            return None
        except Exception as error:  # any solver failure: training must go on
            self._warn_once(
                f"solver:{type(error).__name__}",
                f"QuboRoutingCallback: the solver failed on module '{name}' "
                f"({type(error).__name__}: {error}); the layer routes by itself this step.",
            )
            return None
        stats = routing_stats(result.assignment, module.num_experts, capacity)
        record: dict[str, float] = {
            "max_violation": stats.max_violation,
            "dropped": float(stats.capacity_violation + stats.dropped),
            "dead_experts": float(stats.dead_experts),
            "infeasible_fraction": result.infeasible_fraction,
            "solver_s": result.solver_wall_s,
            "warm_start_kept": float(result.warm_start_kept),
        }
        if self.compare_exact and (pairwise is None or pairwise.is_empty()):
            optimum = affinity(exact_assignment(log_probs, k, capacity), log_probs)
            record["objective"] = result.affinity
            record["exact_objective"] = optimum
            record["optimality_gap"] = (optimum - result.affinity) / max(abs(optimum), 1e-12)
        record["route_s"] = time.perf_counter() - started
        self._step_records.append(record)
        self.num_solves += 1
        return result.assignment

    # ------------------------------------------------------------------ bias mode, logging

    def _update_biases(self, trainer: pl.Trainer) -> None:
        for name, bias in self._biases.items():
            if name not in self._modules:
                continue
            loads = self._pending_loads.get(name)
            e = bias.numel()
            # Every rank joins the reduction, even one whose solve fell back (zero weight).
            solved, current = loads if loads is not None else (np.zeros(e), np.zeros(e))
            packed = torch.tensor(
                np.concatenate([solved, current, [1.0 if loads is not None else 0.0]]),
                dtype=torch.float32,
            )
            packed = self._reduce(trainer, packed, "sum")
            if float(packed[-1]) == 0:
                continue
            direction = torch.sign(packed[:e] - packed[e : 2 * e])
            self._biases[name] = bias + self.bias_update_rate * direction

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
        solved = [r for r in records if "fallback" not in r]
        sync = trainer.world_size > 1
        values: dict[str, tuple[float, str]] = {"fallbacks": (fallbacks, "sum")}
        if solved:

            def pick(key: str, fx: Callable[[list[float]], float]) -> float:
                return fx([r[key] for r in solved if key in r])

            values.update(
                {
                    "max_violation": (pick("max_violation", max), "max"),
                    "dropped": (pick("dropped", sum), "sum"),
                    "dead_experts": (pick("dead_experts", max), "max"),
                    "infeasible_fraction": (pick("infeasible_fraction", _mean), "mean"),
                    "solver_s": (pick("solver_s", sum), "mean"),
                    "route_s": (pick("route_s", sum), "mean"),
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
