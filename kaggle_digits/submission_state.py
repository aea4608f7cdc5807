"""One submission as Kaggle lists it: the type the Kaggle edge writes and the ledger reads.

At the ground, so that the ledger (which never talks to Kaggle) and the edge (which never imports the
ledger) can both use it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SubmissionState:
    """One submission as Kaggle lists it (GetSubmission, ListSubmissions); dates are UTC text."""

    ref: int
    status: str  # PENDING, COMPLETE or ERROR
    public_score: str = ""
    private_score: str = ""
    error: str = ""
    date: str = ""
    description: str = ""
    file_name: str = ""
    team_name: str = ""  # the name the public leaderboard shows for the submitting team (not the user name)
