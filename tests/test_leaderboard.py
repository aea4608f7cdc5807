"""`kaggle-digits leaderboard` (and the rank in `status`) against the local server's public leaderboard.

The server's board is synthetic, shaped like Digit Recognizer's (about 1,400 teams, a leak plateau of
1.00000 and 0.999x on top, the honest top at 0.99757), plus the account's own best score under its team
name. The team's own check: the rank and honest rank that --json prints equal what the paged board says,
read separately through the official `kaggle` CLI.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import DIGITS, SAMPLE_ZIP, SECRETS, TEST_TOKEN, official_kaggle, run_cli

from kaggle_digits import cli, data, local_kaggle
from kaggle_digits.errors import NotRanked
from kaggle_digits.kaggle_api import Credentials, Kaggle, LeaderboardEntry, RetryPolicy
from kaggle_digits.leaderboard import standing, summary
from kaggle_digits.local_kaggle.competitions import synthetic_rivals

TEAM = "the-digit-whisperers"  # the account's team on the board: not its user name (demo-user)


def entry(team: str, score: str) -> LeaderboardEntry:
    return LeaderboardEntry(team_id=0, team_name=team, score=score)


BOARD = [
    entry("leak-a", "1.00000"),
    entry("leak-b", "1.00000"),
    entry("near-leak", "0.99957"),
    entry("committee", "0.99757"),
    entry("us", "0.99500"),
    entry("tied-later", "0.99500"),
    entry("tail", "0.99000"),
]


def test_ranks_count_the_board_in_kaggles_order_and_the_honest_rank_leaves_the_plateau_out():
    found = standing(BOARD, "us", 0.999, "digit-recognizer")
    assert (found.rank, found.teams, found.percentile) == (5, 7, round(100 * 2 / 7, 2))
    assert (found.honest_rank, found.honest_teams, found.plateau_teams) == (2, 4, 3)
    assert found.honest_top == 0.99757 and found.gap_to_honest_top == 0.00257
    # A stricter threshold counts 0.99957 as honest: it becomes the honest top.
    stricter = standing(BOARD, "us", 0.9999, "digit-recognizer")
    assert (stricter.honest_rank, stricter.honest_teams, stricter.honest_top) == (3, 5, 0.99957)
    # A team on the plateau has no honest rank, and the summary says why.
    leak = standing(BOARD, "leak-b", 0.999, "digit-recognizer")
    assert leak.rank == 2 and leak.honest_rank is None and leak.gap_to_honest_top is None
    assert "at or above the leak threshold" in summary(leak)[1]
    # The honest top itself: no gap to show.
    top = standing(BOARD, "committee", 0.999, "digit-recognizer")
    assert (top.honest_rank, top.gap_to_honest_top) == (1, 0.0) and "(yours)" in summary(top)[1]


def test_a_team_not_on_the_board_or_an_empty_board_is_not_ranked():
    with pytest.raises(
        NotRanked, match="team 'nobody' is not on the public leaderboard of 'digit-recognizer' \\(7 teams\\)"
    ):
        standing(BOARD, "nobody", 0.999, "digit-recognizer")
    with pytest.raises(NotRanked, match="has no public leaderboard entries"):
        standing([], "us", 0.999, "digit-recognizer")
    with pytest.raises(
        NotRanked, match="team 'rescoring' is on the public leaderboard of 'digit-recognizer' without a score"
    ):
        standing([*BOARD, entry("rescoring", "")], "rescoring", 0.999, "digit-recognizer")
    # Another team's missing score ranks nowhere and counts as no honest score; ours still ranks.
    assert standing([*BOARD, entry("rescoring", "")], "us", 0.999, "digit-recognizer").honest_teams == 4
    assert NotRanked.exit_code == 7


def test_the_synthetic_board_looks_like_digit_recognizers():
    rivals = synthetic_rivals()
    scores = sorted((float(team.score) for team in rivals), reverse=True)
    assert len(rivals) == 1400 and len({team.name for team in rivals}) == 1400
    assert scores[0] == 1.0 and 80 <= sum(score == 1.0 for score in scores) <= 90  # the plateau of perfect scores
    assert max(score for score in scores if score < 0.999) == 0.99757  # the best published honest score
    assert all(round(float(team.score) * 7000) / 7000 == pytest.approx(float(team.score), abs=5e-6) for team in rivals)


# --- against the local server -----------------------------------------------------------------------


def nearest_neighbour_file(competition, path: Path) -> Path:
    """A real prediction of the served test.csv: 1-nearest-neighbour on the served train.csv (no test labels)."""
    folder = path.parent / "served"
    folder.mkdir(exist_ok=True)
    for name, content in competition.files.items():
        (folder / name).write_bytes(content)
    served = data.load(folder, DIGITS, use_cache=False)
    train = served.train_images.astype(np.float32)
    test = served.test_images.astype(np.float32)
    distances = (test**2).sum(1)[:, None] - 2 * test @ train.T + (train**2).sum(1)[None, :]
    labels = served.train_labels[np.argmin(distances, axis=1)]
    path.write_text("ImageId,Label\n" + "".join(f"{index},{label}\n" for index, label in enumerate(labels, start=1)))
    return path


def quick_retries(monkeypatch):
    """In this process the retry settings were read at import: two quick retries instead of five slow ones."""
    monkeypatch.setattr(RetryPolicy, "from_environment", classmethod(lambda cls: cls(retries=2, backoff=0.01)))


@pytest.fixture
def board_server(monkeypatch, workdir):
    """The local server on localhost:80 (kagglesdk's LOCALHOST endpoint, which the official CLI also takes), a
    digit-recognizer competition with ~1,400 synthetic teams, and this account's team named apart from its user."""
    competition = local_kaggle.competition_from_labeled(SAMPLE_ZIP, max_rows=1500)
    competition.rivals = synthetic_rivals()
    home = workdir / "home"
    home.mkdir()
    for name, value in {
        "HOME": str(home),
        "KAGGLE_CONFIG_DIR": str(home / "kaggle"),
        "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
        "KAGGLE_API_TOKEN": TEST_TOKEN,
        "KAGGLE_DIGITS_BACKOFF": "0.05",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    quick_retries(monkeypatch)
    with local_kaggle.LocalKaggleServer(
        [competition], port=80, scoring_delay=0.1, visibility_delay=0.0, teams={local_kaggle.DEMO_USER: TEAM}, **SECRETS
    ) as server:
        yield server, competition


def scored_submission(competition, workdir: Path) -> str:
    client = Kaggle(DIGITS, Credentials(source="test", token=TEST_TOKEN), RetryPolicy(backoff=0.05))
    ref = client.submit(nearest_neighbour_file(competition, workdir / "knn.csv"), "1-NN")
    state = client.wait(ref, timeout=30, poll=0.1)
    assert state.status == "COMPLETE", state
    return state.public_score


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error(err: str) -> bool:
    """One error line, and no traceback (the log's progress lines may come before it, as on a terminal)."""
    return sum(line.startswith("error:") for line in err.splitlines()) == 1 and "Traceback" not in err


def official_board(tmp_path: Path) -> list[dict[str, str]]:
    """The whole public board as the official `kaggle` CLI pages it (200 a page, following its page tokens)."""
    rows: list[dict[str, str]] = []
    token = ""
    for _ in range(20):
        command = ["competitions", "leaderboard", "digit-recognizer", "--show", "--csv", "--page-size", "200"]
        out = official_kaggle(
            *command, *(["--page-token", token] if token else []), env=os.environ.copy(), cwd=tmp_path
        )
        lines = out.splitlines()
        token = next((line.split("=", 1)[1].strip() for line in lines if line.startswith("Next Page Token")), "")
        rows += list(
            csv.DictReader(io.StringIO("\n".join(line for line in lines if not line.startswith("Next Page Token"))))
        )
        if not token:
            return rows
    raise AssertionError("the official CLI kept finding more pages")


def test_json_rank_and_honest_rank_equal_what_the_paged_board_says(board_server, workdir, capsys):
    server, competition = board_server
    public = scored_submission(competition, workdir)
    code, out, err = run(capsys, "leaderboard", "--json")
    assert code == 0, err
    found = json.loads(out)
    # The README lists every key it prints, and no other.
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    listed = re.search(r"prints one JSON object\s*\(([^)]*)\)", readme).group(1)
    assert set(re.findall(r"`(\w+)`", listed)) == set(found)

    board = official_board(workdir)
    assert len(board) == 1401  # ~1,400 synthetic teams and ours: eight pages of 200
    names = [row["teamName"] for row in board]
    assert names.count(TEAM) == 1 and local_kaggle.DEMO_USER not in names  # the team's name, not the user's
    position = names.index(TEAM)
    honest = [row for row in board if float(row["score"]) < 0.999]
    assert found["team"] == TEAM and found["score"] == float(public) == float(board[position]["score"])
    assert found["rank"] == position + 1 and found["teams"] == len(board)
    assert found["honest_rank"] == [row["teamName"] for row in honest].index(TEAM) + 1
    assert found["honest_teams"] == len(honest) and found["honest_top"] == 0.99757
    assert found["threshold"] == 0.999
    assert Path(found["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A threshold of 1 counts the near-leaks (0.999x) as honest: more honest teams, a higher honest top.
    code, out, _ = run(capsys, "leaderboard", "--json", "--threshold", "1")
    looser = json.loads(out)
    assert looser["honest_teams"] == len([row for row in board if float(row["score"]) < 1]) > found["honest_teams"]
    assert 0.999 <= looser["honest_top"] < 1 and looser["rank"] == found["rank"]

    # The text form says the same in words, and names the picture.
    code, out, _ = run(capsys, "leaderboard")
    assert code == 0
    assert (
        f"rank {found['rank']:,} of {found['teams']:,}" in out
        and f"rank {found['honest_rank']:,} of {found['honest_teams']:,}" in out
    )
    assert "the honest top is 0.99757" in out and "leak plateau:" in out and "leaderboard.png" in out


def test_the_board_pages_as_kaggle_pages_it(board_server, workdir):
    server, _ = board_server
    client = Kaggle(DIGITS, Credentials(source="test", token=TEST_TOKEN), RetryPolicy(backoff=0.05))
    board = client.leaderboard()
    assert len(board) == 1400  # no submission yet: the rivals only
    assert server.state.requests.count("POST GetLeaderboard") == 7  # 200 a page, the largest page Kaggle gives
    scores = [float(item.score) for item in board]
    assert scores == sorted(scores, reverse=True)
    ties = [(a, b) for a, b in zip(board, board[1:], strict=False) if a.score == b.score]
    assert ties and all(a.date <= b.date for a, b in ties)  # ties: the earlier submission first


def test_status_adds_the_rank_after_a_scored_submission(board_server, workdir, capsys):
    _, competition = board_server
    code, out, err = run(capsys, "submit", "--file", str(nearest_neighbour_file(competition, workdir / "knn.csv")))
    assert code == 0, err
    code, out, err = run(capsys, "status")
    assert code == 0, err
    rank_lines = [line for line in out.splitlines() if line.startswith("leaderboard:")]
    assert len(rank_lines) == 2 and f"team '{TEAM}'" in rank_lines[0] and "of 1,401" in rank_lines[0]
    assert "among honest scores (below 0.999)" in rank_lines[1]


def test_no_submission_no_board_and_no_network_each_get_one_line(board_server, workdir, capsys):
    server, competition = board_server
    code, out, err = run(capsys, "leaderboard")
    assert code == 7 and out == ""
    assert one_error(err) and "has no submissions on 'digit-recognizer'" in err and "Fix: 'make submit'" in err

    scored_submission(competition, workdir)
    code, _, err = run(capsys, "leaderboard", "--team", "no-such-team")
    assert code == 7 and one_error(err) and "team 'no-such-team' is not on the public leaderboard" in err

    competition.rivals = []  # a competition that shows no leaderboard
    code, _, err = run(capsys, "leaderboard")
    assert code == 7 and one_error(err) and "has no public leaderboard entries" in err

    code, _, err = run(capsys, "leaderboard", "--competition", "no-such-competition")
    assert code == 5 and one_error(err) and "Kaggle has no competition 'no-such-competition'" in err

    server.inject(method="GetLeaderboard", status=503, count=100)
    code, _, err = run(capsys, "leaderboard", "--team", TEAM)
    assert code == 5 and one_error(err) and "kept failing while reading the public leaderboard" in err

    with pytest.raises(SystemExit) as refused:
        cli.main(["leaderboard", "--threshold", "1.5"])
    assert refused.value.code == 2 and "'1.5' is not a score between 0 and 1" in capsys.readouterr().err


def test_an_unreachable_kaggle_is_one_line_with_the_kaggle_exit_code(workdir, monkeypatch, capsys):
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")  # nothing listens on localhost:80 here
    monkeypatch.setenv("KAGGLE_API_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("HOME", str(workdir))
    quick_retries(monkeypatch)
    code, out, err = run(capsys, "leaderboard", "--team", TEAM)
    assert code == 5 and out == "" and one_error(err) and "cannot reach Kaggle at http://localhost" in err
    assert TEST_TOKEN not in err


def test_the_official_cli_downloads_the_whole_board(board_server, workdir):
    """`kaggle competitions leaderboard --download` (DownloadLeaderboard): a zip of one CSV, the board as it pages."""
    server, competition = board_server
    scored_submission(competition, workdir)
    official_kaggle(
        "competitions", "leaderboard", "digit-recognizer", "--download", "-p", "lb", env=os.environ.copy(), cwd=workdir
    )
    with zipfile.ZipFile(workdir / "lb" / "digit-recognizer.zip") as archive:
        (name,) = archive.namelist()
        rows = list(csv.DictReader(io.StringIO(archive.read(name).decode())))
    assert list(rows[0]) == ["TeamId", "TeamName", "SubmissionDate", "Score"]
    board = official_board(workdir)
    assert [(row["TeamName"], row["Score"]) for row in rows] == [(row["teamName"], row["score"]) for row in board]


def test_a_first_run_that_draws_prints_nothing_of_its_libraries(board_server, workdir, tmp_path):
    """In a fresh home matplotlib builds its font cache and says so ("generated new fontManager") at INFO: that
    line is its own, not the toolkit's: stderr keeps the toolkit's lines, stdout the JSON alone."""
    server, competition = board_server
    scored_submission(competition, workdir)
    fresh = {"MPLCONFIGDIR": str(tmp_path / "fresh-mpl"), "XDG_CACHE_HOME": str(tmp_path / "fresh-cache")}
    result = run_cli("leaderboard", "--json", cwd=workdir, env=fresh)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "fresh-mpl").is_dir(), "matplotlib really started afresh"
    # Only the toolkit's own line (which endpoint gets which credential) comes before the JSON.
    assert [line.split(":", 1)[0] for line in result.stderr.splitlines()] == ["Kaggle"], result.stderr
    assert "fontManager" not in result.stderr
    assert json.loads(result.stdout)["team"] == TEAM
