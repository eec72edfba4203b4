"""The policy-search loop: propose a policy, run its episodes, tell the return, until the
budget of environment steps is spent; logged to an append-only file that a resumed search
replays."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from qopt._validation import check_int
from qopt.encoding import SpaceEncoding
from qopt.exceptions import InvalidProblemError, ProblemTooLargeError, SolverConfigurationError
from qopt.policy_search.baselines import CrossEntropySearch, EvolutionStrategy, RandomSearch
from qopt.policy_search.episodes import EpisodeEvaluator
from qopt.policy_search.policies import Policy

__all__ = ["MAX_BITS", "METHODS", "PolicySearchResult", "make_proposer", "search_policy"]

#: The proposers :func:`search_policy` takes: the QUBO surrogate search and three baselines.
METHODS = ("qubo", "random", "cem", "es")
#: Largest policy encoding the QUBO search takes unless ``search_options["max_bits"]`` says
#: otherwise: beyond it each surrogate fit and solve slows every proposal down.
MAX_BITS = 1024


class Proposer(Protocol):
    """What the loop drives: :class:`qopt.search.QuboSearch` or a baseline."""

    def ask(self) -> dict[str, Any]: ...

    def tell(self, params: Mapping[str, Any], value: float) -> None: ...


@dataclass
class PolicySearchResult:
    """What a policy search evaluated, in order.

    Attributes:
        params: Each evaluated policy's parameters.
        returns: Each one's mean return.
        steps: Environment steps each evaluation took.
        replayed: How many of the evaluations were read from the log instead of run.
    """

    params: list[dict[str, Any]] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    replayed: int = 0

    @property
    def total_steps(self) -> int:
        """Environment steps spent in all."""
        return sum(self.steps)

    @property
    def best_return(self) -> float:
        """The best mean return (``-inf`` before any evaluation)."""
        return max(self.returns, default=-math.inf)

    @property
    def best_params(self) -> dict[str, Any] | None:
        """The parameters of the first policy with the best return."""
        if not self.returns:
            return None
        return self.params[self.returns.index(self.best_return)]

    def steps_to(self, target: float) -> int | None:
        """Environment steps spent up to and including the first evaluation whose return
        reached ``target``; None if none did."""
        spent = 0
        for value, steps in zip(self.returns, self.steps, strict=True):
            spent += steps
            if value >= target:
                return spent
        return None


def make_proposer(
    method: str,
    policy: Policy,
    *,
    seed: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> Proposer:
    """The ask/tell proposer of ``method`` over ``policy``'s parameters.

    Args:
        method: ``"qubo"`` (:class:`qopt.search.QuboSearch`, maximizing), ``"random"``
            (:class:`~qopt.policy_search.RandomSearch`), ``"cem"``
            (:class:`~qopt.policy_search.CrossEntropySearch`) or ``"es"``
            (:class:`~qopt.policy_search.EvolutionStrategy`).
        policy: The policy family.
        seed: Seed of the proposer.
        options: Keyword options of the proposer's class.

    Raises:
        SolverConfigurationError: An unknown method or option.
        ProblemTooLargeError: The policy encodes to more bits than the QUBO search takes.
    """
    options = dict(options or {})
    parameters = policy.parameters()
    try:
        if method == "qubo":
            from qopt.search import QuboSearch

            options.setdefault("max_bits", MAX_BITS)
            return QuboSearch(parameters, directions=("maximize",), seed=seed, **options)
        classes = {"random": RandomSearch, "cem": CrossEntropySearch, "es": EvolutionStrategy}
        if method not in classes:
            raise SolverConfigurationError(
                f"The 'method' parameter of search_policy must be a str among {list(METHODS)}. "
                f"Got {method!r} instead."
            )
        return classes[method](parameters, seed=seed, **options)
    except ProblemTooLargeError as error:
        n_bits = SpaceEncoding(parameters).n_bits
        raise ProblemTooLargeError(
            f"The {type(policy).__name__} ({len(parameters)} parameters) encodes to {n_bits} "
            f"bits, over the QUBO search's limit max_bits={options['max_bits']}. Use fewer "
            "states (TabularPolicy: fewer bins, or bins=1 to ignore a dimension) or fewer "
            "levels (LinearPolicy), or raise the limit with search_options={'max_bits': ...} "
            "(each proposal then takes longer)."
        ) from error
    except TypeError as error:
        raise SolverConfigurationError(
            f"The 'search_options' parameter of search_policy has an option that method "
            f"{method!r} does not take: {error}."
        ) from error


def _read_log(path: Path, header: dict[str, Any]) -> list[dict[str, Any]]:
    """The records of an existing log written by the same search; rewrites the file without
    a torn last line (a kill in the middle of a write)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        return []
    try:
        written = json.loads(lines[0])["header"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise InvalidProblemError(
            f"The log {str(path)!r} is not a policy-search log (its first line has no header). "
            "Pass another 'log' path."
        ) from error
    if written != header:
        differ = sorted(k for k in {*written, *header} if written.get(k) != header.get(k))
        raise InvalidProblemError(
            f"The log {str(path)!r} was written by a different search (it differs in {differ}). "
            "Resume with the same settings, or pass another 'log' path."
        )
    records = []
    for line in lines[1:]:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    text = [lines[0], *(json.dumps(r) for r in records)]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return records


def search_policy(
    policy: Policy,
    episodes: EpisodeEvaluator,
    *,
    budget_steps: int,
    method: str = "qubo",
    seed: int | None = 0,
    target_return: float | None = None,
    log: str | os.PathLike[str] | None = None,
    progress: bool = False,
    search_options: Mapping[str, Any] | None = None,
) -> PolicySearchResult:
    """Search ``policy``'s parameters for the highest mean return within a budget of steps.

    Each round asks the proposer for a policy, runs its episodes (:class:`EpisodeEvaluator`)
    and tells it the mean return, until ``budget_steps`` environment steps are spent (the last
    evaluation may overrun) or a return reaches ``target_return``. With ``log`` every
    evaluation is appended to a JSON-lines file as it ends; a search started again on the same
    file with the same settings replays it: the proposer is asked again (same seed, same
    answers) and told the logged return, without running an episode, and the search goes on
    where it stopped, with the results an uninterrupted search would have had.

    Args:
        policy: The policy family (:class:`TabularPolicy`, :class:`LinearPolicy`).
        episodes: How a policy is evaluated.
        budget_steps: Environment steps to spend.
        method: One of :data:`METHODS`.
        seed: Seed of the proposer.
        target_return: Stop once a policy's mean return reaches this.
        log: Path of the JSON-lines log (created if absent, replayed if present).
        progress: Show a tqdm progress bar over the steps.
        search_options: Keyword options of the proposer (:func:`make_proposer`).

    Raises:
        InvalidProblemError: The log belongs to another search, or replaying it asked for a
            different policy than it holds.
        ProblemTooLargeError: The policy is too large for the QUBO search.

    Examples:
        >>> from qopt.policy_search import EpisodeEvaluator, LinearPolicy, search_policy
        >>> episodes = EpisodeEvaluator("CartPole-v1", n_episodes=2)
        >>> policy = LinearPolicy(episodes.observation_space, episodes.action_space,
        ...                       levels=(-1, 0, 1))
        >>> result = search_policy(policy, episodes, budget_steps=20_000, method="random",
        ...                        target_return=500, seed=0)
        >>> result.best_return
        500.0
    """
    owner = "search_policy"
    budget_steps = check_int(budget_steps, "budget_steps", owner, low=1)
    if method not in METHODS:
        raise SolverConfigurationError(
            f"The 'method' parameter of {owner} must be a str among {list(METHODS)}. "
            f"Got {method!r} instead."
        )
    proposer = make_proposer(method, policy, seed=seed, options=search_options)
    header = {
        "method": method,
        "seed": seed,
        "policy": policy.describe(),
        "episodes": episodes.describe(),
        "search_options": json.loads(json.dumps(dict(search_options or {}), default=repr)),
    }
    result = PolicySearchResult()
    path = None if log is None else Path(log)
    records: list[dict[str, Any]] = []
    if path is not None and path.exists():
        records = _read_log(path, header)
    if path is not None and not records:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"header": header}) + "\n", encoding="utf-8")

    from tqdm.auto import tqdm

    bar = tqdm(
        total=budget_steps, desc=f"policy search ({method})", unit="step", disable=not progress
    )
    try:
        while result.total_steps < budget_steps:
            if target_return is not None and result.best_return >= target_return:
                break
            params = proposer.ask()
            k = len(result.returns)
            if k < len(records):
                record = records[k]
                if json.loads(json.dumps(params)) != record["params"]:
                    raise InvalidProblemError(
                        f"Replaying the log {str(path)!r}: evaluation {k} asked for "
                        f"{params}, but the log holds {record['params']}. The search is not "
                        "reproducible with these settings; pass another 'log' path."
                    )
                value, steps = float(record["return"]), int(record["steps"])
                result.replayed += 1
            else:
                value, steps = episodes.evaluate(policy, params)
                if path is not None:
                    line = {"params": params, "return": value, "steps": steps}
                    with path.open("a", encoding="utf-8") as handle:
                        handle.write(json.dumps(line) + "\n")
            proposer.tell(params, value)
            result.params.append(params)
            result.returns.append(value)
            result.steps.append(steps)
            bar.update(min(steps, budget_steps - bar.n))
            bar.set_postfix(best=result.best_return)
    finally:
        bar.close()
    return result
