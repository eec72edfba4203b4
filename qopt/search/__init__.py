"""The search core: one proposal engine behind ask/tell, the Optuna sampler and ``qopt nas``.

Framework-free (numpy, dimod): a space of parameters is encoded into bits
(:mod:`qopt.encoding`), a quadratic surrogate (:mod:`qopt.surrogates`) is fitted to what has
been observed, and its minimum under the known constraints (and, optionally, inside a Hamming
trust region around the incumbent) is found through :func:`qopt.pipeline.solve`.

* :class:`QuboSearch`: ``ask()`` / ``tell(params, value)``, no framework needed.
* :class:`ProposalEngine`: the proposal loop over an encoded space and a :class:`History`,
  for integrations that keep their own records (Optuna trials, NAS studies).
* :func:`targets`, :func:`scalarize`, :func:`rank_infeasible`: observations to the values the
  surrogate minimizes (ParEGO for several objectives, black-box constraints ranked last).
* :class:`HammingBall`, :func:`trust_centre`: the trust region.
* :func:`is_exhausted`, :func:`exhaustion_message`: when every point of a (gridded) space has
  been tried, and how to make the grid finer.
* :func:`claim_proposal`, :class:`Claim`: a proposal claimed in a store shared by workers, so
  no two of them evaluate one point.

Examples:
    >>> from qopt.encoding import IntParameter
    >>> from qopt.search import QuboSearch
    >>> search = QuboSearch({"x": IntParameter(0, 3)}, seed=0, n_startup_trials=2)
    >>> params = search.ask()
    >>> search.tell(params, float(params["x"]))
    >>> len(search.history.points)
    1
"""

from __future__ import annotations

from qopt.search.ask_tell import QuboSearch
from qopt.search.claims import (
    CLAIM_ATTR,
    Claim,
    claim_key,
    claim_of,
    claim_proposal,
    settle,
)
from qopt.search.engine import (
    SOLVER_DEFAULTS,
    SURROGATES,
    TARGET_TRANSFORMS,
    TRUST_METHODS,
    Proposal,
    ProposalEngine,
    RepairedReads,
    largest_flip,
)
from qopt.search.exhaustion import exhaustion_message, feasible_points, is_exhausted
from qopt.search.history import (
    History,
    outcome_quantile,
    point_key,
    proposal_attrs,
    read_proposal,
)
from qopt.search.neighbourhood import best_neighbour, random_untaken
from qopt.search.space import (
    ENCODINGS,
    EncodingOptions,
    check_constraint_names,
    check_constraints,
    share_violations,
    too_large_message,
)
from qopt.search.targets import rank_infeasible, scalarize, targets
from qopt.search.trust_region import HammingBall, trust_centre

__all__ = [
    "CLAIM_ATTR",
    "ENCODINGS",
    "SOLVER_DEFAULTS",
    "SURROGATES",
    "TARGET_TRANSFORMS",
    "TRUST_METHODS",
    "Claim",
    "EncodingOptions",
    "HammingBall",
    "History",
    "Proposal",
    "ProposalEngine",
    "QuboSearch",
    "RepairedReads",
    "best_neighbour",
    "check_constraint_names",
    "check_constraints",
    "claim_key",
    "claim_of",
    "claim_proposal",
    "exhaustion_message",
    "feasible_points",
    "is_exhausted",
    "largest_flip",
    "outcome_quantile",
    "point_key",
    "proposal_attrs",
    "random_untaken",
    "rank_infeasible",
    "read_proposal",
    "scalarize",
    "settle",
    "share_violations",
    "targets",
    "too_large_message",
    "trust_centre",
]
