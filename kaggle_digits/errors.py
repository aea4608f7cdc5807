"""The toolkit's failures and the exit codes cron and scripts see. The codes are stable: see README.md (Exit codes)."""

from __future__ import annotations


class ToolkitError(Exception):
    """A failure the user can act on: printed as one line, never as a traceback (by cli.main alone)."""

    exit_code = 1
    # A command that gives its own one-line account of how it ended (the scheduled run's summary,
    # which cron mails) sets it; the CLI prints it as is instead of "error: <message>".
    summary: str | None = None


class UsageError(ToolkitError):
    """Bad option, bad task file, missing model: the command line or configuration needs fixing."""

    exit_code = 2


class DataError(ToolkitError):
    """A competition file is missing, corrupt or not in Kaggle's layout."""

    exit_code = 3


class AuthError(ToolkitError):
    """No credentials, or Kaggle rejected them."""

    exit_code = 4


class KaggleError(ToolkitError):
    """Kaggle failed after retries, refused the request, or scoring failed."""

    exit_code = 5


class KaggleUnavailable(KaggleError):
    """Kaggle stayed rate-limited, failing or unreachable through every retry: likely to pass later."""


class SubmissionOutcomeUnknown(KaggleError):
    """CreateSubmission's answer was lost: the submission may exist. Settled from Kaggle's list, never resent."""


class AlreadyRunning(ToolkitError):
    """Another scheduled run holds the lock."""

    exit_code = 6


class NotRanked(ToolkitError):
    """The team is not on the public leaderboard (no scored submission in its window), or the board is empty."""

    exit_code = 7


class StudyStorageError(ToolkitError):
    """The tuning study's database (--storage) is unreachable or refuses us."""

    exit_code = 8


class Skipped(ToolkitError):
    """Nothing to do (no quota, identical predictions, too soon): not a failure, but not a submission."""

    exit_code = 10


EXIT_CODES = {
    0: "success",
    1: "unexpected internal error (a bug: please report it with the log)",
    UsageError.exit_code: "usage or configuration error",
    DataError.exit_code: "data error",
    AuthError.exit_code: "authentication error",
    KaggleError.exit_code: "Kaggle failure after retries",
    AlreadyRunning.exit_code: "already running",
    NotRanked.exit_code: "not on the public leaderboard (leaderboard)",
    StudyStorageError.exit_code: "the tuning study's database is unreachable or refused (tune --storage)",
    Skipped.exit_code: "skipped: nothing to do",
    130: "interrupted (Ctrl-C / SIGINT)",
}
