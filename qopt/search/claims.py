"""Claims: workers that share a store never evaluate one point twice.

A worker proposes a point from what it has read of the store, then *claims* it there before
evaluating it. Reading and claiming are two steps, so two workers that read the same history
can claim the same point at once; a check after claiming settles it. Each claimant is
numbered (its trial number) and a claim is first ``checking``, then ``held``:

* a worker that sees the point held by another, or claimed by a lower-numbered worker that
  is still checking, gives it up and proposes again (the point then counts as taken);
* a worker that sees only higher-numbered workers checking the point waits until they have
  given it up or hold it (they will see its claim: it was written before it read theirs);
* otherwise it holds the point.

Of two workers that claim one point, at least one reads the other's claim (each writes
before it reads), so at most one of them holds it; waiting only on higher numbers cannot
deadlock. A worker killed while checking is waited on for at most ``timeout_s``, after which
the point is given up (never evaluated twice; at worst proposed once more later).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from qopt.encoding import SpaceEncoding
from qopt.search.engine import Proposal, ProposalEngine
from qopt.search.history import History, point_key

__all__ = [
    "CLAIM_ATTR",
    "Claim",
    "claim_key",
    "claim_of",
    "claim_point",
    "claim_proposal",
    "settle",
]

#: The attribute (an Optuna trial system attribute) that holds a worker's claim.
CLAIM_ATTR = "qopt:claim"
#: Longest wait for a higher-numbered worker to settle a claim on the same point.
CLAIM_TIMEOUT_S = 30.0
#: Pause between reads while waiting.
CLAIM_POLL_S = 0.05
#: Proposals given up in a row before a proposal is returned unclaimed (a safety stop: each
#: give-up means another worker holds or is about to hold that point).
MAX_CONFLICTS = 64


def claim_key(point: Mapping[str, Any]) -> str:
    """A point's identity in a store: a digest of its parameter names and values.

    Examples:
        >>> claim_key({"x": 1, "y": 2}) == claim_key({"y": 2, "x": 1})
        True
        >>> len(claim_key({"x": 1}))
        40
    """
    text = json.dumps(sorted(point.items()), default=str)
    return hashlib.sha1(text.encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """A worker's claim on a point: who (``owner``, lower wins), which point (``key``, from
    :func:`claim_key`) and whether it passed its check (``held``).

    Examples:
        >>> claim = Claim(3, claim_key({"x": 1}), held=False)
        >>> Claim.from_attr(3, claim.to_attr()) == claim
        True
    """

    owner: int
    key: str
    held: bool

    def to_attr(self) -> list[Any]:
        """The claim as a JSON-able attribute value (the owner is the trial that bears it)."""
        return [self.key, self.held]

    @classmethod
    def from_attr(cls, owner: int, value: Any) -> Claim | None:
        """The claim of trial ``owner`` stored by :meth:`to_attr`, or None if ``value`` is not
        one."""
        if isinstance(value, Sequence) and len(value) == 2 and isinstance(value[0], str):
            return cls(owner, value[0], bool(value[1]))
        return None


def claim_of(
    owner: int,
    finished: bool,
    attr: Any,
    point: Callable[[], Mapping[str, Any] | None],
) -> Claim | None:
    """Another worker's claim as a reader sees it: while its work runs, the claim it stored
    (``attr``, :meth:`Claim.to_attr`); once finished, or without a claim, the ``point`` it
    has (held), or None when it has none.

    Examples:
        >>> claim_of(2, False, ["k", False], lambda: {"x": 1})
        Claim(owner=2, key='k', held=False)
        >>> claim_of(2, True, ["k", False], lambda: {"x": 1}).held
        True
        >>> claim_of(2, False, None, lambda: None) is None
        True
    """
    claim = None if finished else Claim.from_attr(owner, attr)
    if claim is not None:
        return claim
    known = point()
    return None if known is None else Claim(owner, claim_key(known), held=True)


def settle(mine: Claim, others: Iterable[Claim]) -> Literal["hold", "yield", "wait"]:
    """What the worker behind ``mine`` does, given the other workers' claims it has read.

    Examples:
        >>> settle(Claim(5, "k", False), [Claim(2, "k", True)])
        'yield'
        >>> settle(Claim(5, "k", False), [Claim(2, "k", False)])
        'yield'
        >>> settle(Claim(5, "k", False), [Claim(8, "k", False)])
        'wait'
        >>> settle(Claim(5, "k", False), [Claim(8, "k", True), Claim(9, "other", True)])
        'yield'
        >>> settle(Claim(5, "k", False), [Claim(9, "other", True)])
        'hold'
    """
    rivals = [c for c in others if c.key == mine.key and c.owner != mine.owner]
    if any(c.held or c.owner < mine.owner for c in rivals):
        return "yield"
    return "wait" if rivals else "hold"


def claim_point(
    mine: Claim,
    *,
    write: Callable[[Claim], None],
    others: Callable[[], Iterable[Claim]],
    timeout_s: float = CLAIM_TIMEOUT_S,
    poll_s: float = CLAIM_POLL_S,
) -> bool:
    """Claim one point (``mine``, not yet held) in a shared store: True when this worker now
    holds it, False when another worker holds it or is about to (then evaluate something else).

    ``write`` and ``others`` are those of :func:`claim_proposal`, which claims each proposal
    this way; a point that was not proposed (a queued one) is claimed directly.

    Examples:
        >>> store = {}
        >>> mine = Claim(4, claim_key({"x": 1}), held=False)
        >>> claim_point(mine, write=lambda c: store.update(mine=c), others=lambda: [])
        True
        >>> store["mine"].held
        True
        >>> rival = Claim(2, mine.key, held=False)  # a lower-numbered worker is checking it
        >>> claim_point(mine, write=lambda c: None, others=lambda: [rival])
        False
    """
    write(mine)
    verdict = settle(mine, others())
    deadline = time.monotonic() + timeout_s
    while verdict == "wait" and time.monotonic() < deadline:
        time.sleep(poll_s)
        verdict = settle(mine, others())
    if verdict != "hold":
        return False
    write(Claim(mine.owner, mine.key, held=True))
    return True


def claim_proposal(
    engine: ProposalEngine,
    space: SpaceEncoding,
    history: History,
    signs: Sequence[float],
    *,
    owner: int,
    write: Callable[[Claim], None],
    others: Callable[[], Iterable[Claim]],
    key: Hashable = None,
    timeout_s: float = CLAIM_TIMEOUT_S,
    poll_s: float = CLAIM_POLL_S,
) -> Proposal:
    """The engine's next proposal, claimed in a shared store so no other worker evaluates it.

    ``write`` stores this worker's claim (replacing its earlier one); ``others`` reads every
    other worker's claim, and the points of finished work as held claims. A proposal another
    worker has claimed first is added to ``history`` as pending and the engine proposes again
    (``info["claim_conflicts"]`` counts how often). A point the engine proposes though it is
    taken already (the space is exhausted) is returned unclaimed.

    Examples:
        >>> from qopt.encoding import IntParameter
        >>> space = SpaceEncoding({"x": IntParameter(0, 3)})
        >>> engine, store = ProposalEngine(seed=0, n_startup_trials=4), {}
        >>> rival = Claim(0, claim_key({"x": 1}), held=True)  # another worker holds x = 1
        >>> proposal = claim_proposal(
        ...     engine, space, History(), [1.0], owner=1,
        ...     write=lambda c: store.update(mine=c), others=lambda: [rival],
        ... )
        >>> proposal.indices != {"x": 1}, store["mine"].held
        (True, True)
    """
    conflicts = 0
    while True:
        proposal = engine.propose(space, history, signs, key=key)
        mine = Claim(owner, claim_key(proposal.indices), held=False)
        if point_key(proposal.indices) in history.taken() or conflicts >= MAX_CONFLICTS:
            write(Claim(owner, mine.key, held=True))  # replaces a claim given up, if any
            return _with_conflicts(proposal, conflicts)
        if claim_point(mine, write=write, others=others, timeout_s=timeout_s, poll_s=poll_s):
            return _with_conflicts(proposal, conflicts)
        conflicts += 1
        history.add_pending(proposal.indices, space.encode_indices(proposal.indices))


def _with_conflicts(proposal: Proposal, conflicts: int) -> Proposal:
    if not conflicts:
        return proposal
    return Proposal(proposal.indices, {**proposal.info, "claim_conflicts": conflicts})
