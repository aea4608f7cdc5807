"""`kaggle-digits leaderboard`: where the team stands on the public leaderboard, and among honest scores.

Digit Recognizer's test images are MNIST images, so a model fed MNIST's own test labels scores 1.00000:
the top of the board is a plateau of perfect and near-perfect scores that no model learned from the
train.csv given reaches (the best published honest committee, 15 CNNs, scores 0.99757). A rank among
all teams therefore says little near the top; the rank among scores below a leak threshold says how
far a competitor is from the honest top. Both come from the whole board, read page by page.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass

from .errors import NotRanked
from .kaggle_api import Kaggle, LeaderboardEntry

DEFAULT_THRESHOLD = 0.999  # scores at or above it are taken for leaks (MNIST's own labels), not models


def threshold_value(text: str) -> float:
    """--threshold: a score between 0 and 1 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a score between 0 and 1 (e.g. {DEFAULT_THRESHOLD})")
    return value


@dataclass(frozen=True)
class Standing:
    """One team's place on the public leaderboard. Ranks count from 1, in Kaggle's own order."""

    competition: str
    team: str
    score: float
    rank: int
    teams: int
    percentile: float  # the share of teams ranked below this one, in percent
    honest_rank: int | None  # None when the team's own score is at or above the threshold
    honest_teams: int
    honest_percentile: float | None
    honest_top: float | None  # the best score below the threshold; None when there is none
    gap_to_honest_top: float | None  # honest_top - score, when the team's score is honest
    plateau_teams: int  # teams at or above the threshold
    threshold: float

    def as_json(self) -> dict:
        return asdict(self)


def _score(entry: LeaderboardEntry) -> float:
    try:
        return float(entry.score)
    except ValueError:
        return math.nan  # a row without a number (Kaggle leaves it empty while rescoring) ranks nowhere


def standing(entries: list[LeaderboardEntry], team: str, threshold: float, competition: str) -> Standing:
    """The team's standing on `entries` (the board in Kaggle's order); NotRanked when it is not there."""
    if not entries:
        raise NotRanked(
            f"'{competition}' has no public leaderboard entries (no team is ranked on it). Fix: check the "
            f"competition's name"
        )
    position = next((index for index, entry in enumerate(entries) if entry.team_name == team), None)
    if position is None:
        raise NotRanked(
            f"team '{team}' is not on the public leaderboard of '{competition}' ({len(entries):,} teams): it has no "
            f"scored "
            f"submission there, or its submissions are older than the rolling leaderboard keeps (about two months). "
            f"Fix: 'make submit', then run this again once the submission is scored"
        )
    scores = [_score(entry) for entry in entries]
    score = scores[position]
    if math.isnan(score):  # on the board, but Kaggle shows no number for it (yet): no rank to give
        raise NotRanked(
            f"team '{team}' is on the public leaderboard of '{competition}' without a score "
            f"('{entries[position].score}'). Fix: run this again once Kaggle shows it"
        )
    honest = [index for index, value in enumerate(scores) if value < threshold]
    honest_rank = honest.index(position) + 1 if position in honest else None
    honest_top = max((scores[index] for index in honest), default=None)
    teams, honest_teams = len(entries), len(honest)
    return Standing(
        competition=competition,
        team=team,
        score=score,
        rank=position + 1,
        teams=teams,
        percentile=round(100 * (teams - position - 1) / teams, 2),
        honest_rank=honest_rank,
        honest_teams=honest_teams,
        honest_percentile=round(100 * (honest_teams - honest_rank) / honest_teams, 2) if honest_rank else None,
        honest_top=honest_top,
        gap_to_honest_top=round(honest_top - score, 5) if honest_rank and honest_top is not None else None,
        plateau_teams=sum(1 for value in scores if value >= threshold),
        threshold=threshold,
    )


def team_name(kaggle: Kaggle) -> str:
    """The name the board shows for this account's team: the teamName on its own submissions (not the user name)."""
    for item in kaggle.submissions():
        if item.team_name:
            return item.team_name
    raise NotRanked(
        f"this account has no submissions on '{kaggle.name}', so it has no team on the leaderboard. "
        f"Fix: 'make submit' (or pass --team NAME to look up another team)"
    )


def read(kaggle: Kaggle, threshold: float = DEFAULT_THRESHOLD, team: str | None = None) -> tuple[Standing, list[float]]:
    """The team's standing and every team's score (for the picture), from the whole board."""
    name = team or team_name(kaggle)
    entries = kaggle.leaderboard()
    return standing(entries, name, threshold, kaggle.name), [_score(entry) for entry in entries]


def summary(standing: Standing) -> list[str]:
    """The lines `leaderboard` prints; `status` prints the first two."""
    lines = [
        f"team '{standing.team}': best public score {standing.score:.5f}, rank {standing.rank:,} of {standing.teams:,} "
        f"(top {100 - standing.percentile:.1f}%)",
    ]
    if standing.honest_rank is not None:
        gap = f", {standing.gap_to_honest_top:.5f} above yours" if standing.gap_to_honest_top else " (yours)"
        lines.append(
            f"among honest scores (below {standing.threshold:g}): rank {standing.honest_rank:,} of "
            f"{standing.honest_teams:,} "
            f"(top {100 - (standing.honest_percentile or 0):.1f}%); the honest top is {standing.honest_top:.5f}{gap}"
        )
    else:
        lines.append(
            f"your score is at or above the leak threshold {standing.threshold:g}: among the "
            f"{standing.plateau_teams:,} teams of "
            f"the plateau, not among honest scores (a model learned from train.csv alone does not score there)"
        )
    lines.append(
        f"leak plateau: {standing.plateau_teams:,} teams at {standing.threshold:g} or more (MNIST's own test labels "
        f"score 1.00000)"
    )
    return lines
