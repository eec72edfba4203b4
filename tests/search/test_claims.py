"""qopt.search.claims: workers sharing a store settle who evaluates a point."""

from __future__ import annotations

from collections.abc import Callable

from qopt.encoding import IntParameter, SpaceEncoding
from qopt.search import (
    Claim,
    History,
    Proposal,
    ProposalEngine,
    claim_key,
    claim_proposal,
    settle,
)


def test_the_lower_number_wins_a_tie_and_a_held_claim_always_wins() -> None:
    mine = Claim(5, "k", held=False)
    assert settle(mine, []) == "hold"
    assert settle(mine, [Claim(5, "k", held=True)]) == "hold"  # its own earlier claim
    assert settle(mine, [Claim(3, "other", held=False)]) == "hold"
    assert settle(mine, [Claim(3, "k", held=False)]) == "yield"
    assert settle(mine, [Claim(9, "k", held=True)]) == "yield"
    assert settle(mine, [Claim(9, "k", held=False)]) == "wait"
    assert Claim.from_attr(5, mine.to_attr()) == mine
    assert Claim.from_attr(5, None) is None and Claim.from_attr(5, "junk") is None


class Store:
    """Claims by owner, as trial attributes of one study would hold them."""

    def __init__(self) -> None:
        self.claims: dict[int, Claim] = {}

    def writer(self, owner: int) -> Callable[[Claim], None]:
        return lambda claim: self.claims.__setitem__(owner, claim)

    def reader(
        self, owner: int, before_read: Callable[[], None] | None = None
    ) -> Callable[[], list[Claim]]:
        def read() -> list[Claim]:
            if before_read is not None:
                before_read()
            return [c for o, c in self.claims.items() if o != owner]

        return read

    def propose(
        self,
        owner: int,
        engine: ProposalEngine,
        space: SpaceEncoding,
        history: History | None = None,
        before_read: Callable[[], None] | None = None,
        **options: float,
    ) -> Proposal:
        """``owner``'s claimed proposal, with the claims of this store."""
        return claim_proposal(
            engine,
            space,
            History() if history is None else history,
            [1.0],
            owner=owner,
            write=self.writer(owner),
            others=self.reader(owner, before_read),
            **options,
        )


def engine_and_space() -> tuple[ProposalEngine, SpaceEncoding]:
    # A start design of one point: two workers with the same seed propose the same one.
    return ProposalEngine(seed=0, n_startup_trials=1), SpaceEncoding({"x": IntParameter(0, 7)})


def test_two_workers_that_read_the_same_history_never_hold_one_point() -> None:
    store = Store()
    (first_engine, space), (second_engine, _) = engine_and_space(), engine_and_space()
    # Worker 1 has written its claim and not checked it yet when worker 2 (a higher trial
    # number) proposes the same point from the same history: worker 2 gives it up.
    point = first_engine.propose(space, History(), [1.0]).indices
    store.claims[1] = Claim(1, claim_key(point), held=False)
    second = store.propose(2, second_engine, space)
    assert second.indices != point and second.info["claim_conflicts"] == 1
    assert store.claims[2] == Claim(2, claim_key(second.indices), held=True)
    # Worker 1's check then finds no rival on its point: it holds it.
    assert settle(store.claims[1], store.reader(1)()) == "hold"


def test_a_lower_number_waits_for_a_higher_one_checking_the_same_point() -> None:
    store = Store()
    engine, space = engine_and_space()
    point = engine_and_space()[0].propose(space, History(), [1.0]).indices
    store.claims[7] = Claim(7, claim_key(point), held=False)

    def rival_gives_up() -> None:  # worker 7 saw worker 3's claim and proposed elsewhere
        if 3 in store.claims:
            store.claims[7] = Claim(7, claim_key({"x": -1}), held=False)

    proposal = store.propose(3, engine, space, before_read=rival_gives_up, poll_s=0.0)
    assert proposal.indices == point and "claim_conflicts" not in proposal.info
    assert store.claims[3].held


def test_a_rival_that_never_settles_is_given_up_after_the_timeout() -> None:
    store = Store()
    engine, space = engine_and_space()
    point = engine_and_space()[0].propose(space, History(), [1.0]).indices
    store.claims[9] = Claim(9, claim_key(point), held=False)  # its worker died checking
    proposal = store.propose(4, engine, space, timeout_s=0.01, poll_s=0.0)
    assert proposal.indices != point and proposal.info["claim_conflicts"] == 1


def test_an_exhausted_space_returns_its_repeat_unclaimed_instead_of_looping() -> None:
    store = Store()
    engine, space = engine_and_space()
    history = History()
    for x in range(8):
        history.add_complete({"x": x}, space.encode_indices({"x": x}), (float(x),))
        store.claims[x] = Claim(x, claim_key({"x": x}), held=True)
    proposal = store.propose(8, engine, space, history)
    assert proposal.indices["x"] in range(8) and store.claims[8].held
