from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI replays the same examples on every run (derandomized): a red build then means a change
# broke something, not that a random draw found an old bug. Locally the draws vary, so the
# fuzz and property tests keep searching.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """The public benchmark instances: $QOPT_DATA, or ../shared/data beside the checkout."""
    candidates = [
        os.environ.get("QOPT_DATA"),
        REPO.parent / "shared" / "data",
        REPO / "shared" / "data",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "gset").is_dir():
            return Path(candidate)
    return None


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip(
            "benchmark instances not found: set QOPT_DATA or put shared/data beside the repo"
        )
    return path
