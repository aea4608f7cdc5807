"""The ledger restored from Kaggle's list: rows in submission order, an open row settled in place, and "the last
submission" read by time, never by the row's place in the file."""

from __future__ import annotations

from kaggle_digits import runs
from kaggle_digits.errors import Skipped
from kaggle_digits.ledger import Ledger, description, refuse_same_configuration
from kaggle_digits.submission_state import SubmissionState

TASK = "digit-recognizer"


def listed(ref: int, run_id: str, date: str, config: str = "c0ffee000001", status: str = "COMPLETE") -> SubmissionState:
    return SubmissionState(
        ref=ref,
        status=status,
        public_score="0.98000" if status == "COMPLETE" else "",
        date=date,
        description=description(run_id, "cnn", 0.98, "ab" * 32, config, ""),
        file_name=f"{run_id}.csv",
    )


def row(run_id: str, time: str, status: str, ref: str = "", config: str = "c0ffee000002") -> dict:
    return dict(
        run_id=run_id,
        time=time,
        task=TASK,
        file=f"{run_id}.csv",
        checksum="cd" * 32,
        model="cnn",
        kaggle_ref=ref,
        status=status,
        public_score="0.99000" if status == "COMPLETE" else "",
        config=config,
        competition=TASK,
    )


def test_a_rebuilt_ledger_keeps_the_newest_submission_the_newest(tmp_path):
    """An older submission that Kaggle lists and the ledger lacks goes in by its time; "nothing changed" and the
    keep-alive's age are judged against the submission made last, not against the last line of the file."""
    ledger = Ledger(tmp_path / "ledger.csv")
    ledger.add(**row("20261201T000000Z-cnn", "2026-12-01T00:00:00Z", "COMPLETE", ref="100007"))
    added = ledger.restore([listed(100003, "20261101T000000Z-cnn", "2026-11-01T00:00:00Z")], TASK, TASK)
    assert added == 1
    assert [r["run_id"] for r in ledger.rows()] == ["20261101T000000Z-cnn", "20261201T000000Z-cnn"]
    assert runs._last_on_kaggle(ledger, TASK)["kaggle_ref"] == "100007"
    assert runs._last_scored(ledger, TASK)["kaggle_ref"] == "100007"
    # Whatever order the file is in (a ledger rebuilt by an older version appended at the end): time decides.
    ledger._write(list(reversed(ledger.rows())))
    assert ledger.rows()[-1]["kaggle_ref"] == "100003"
    assert runs._last_on_kaggle(ledger, TASK)["kaggle_ref"] == "100007"


def test_rebuild_settles_an_open_row_in_place_instead_of_adding_a_second(tmp_path):
    """A lost CreateSubmission answer leaves a row with no ref; Kaggle's list has it under the same run id. The
    rebuild gives that row its ref: one row, so `status` lists the ref once."""
    ledger = Ledger(tmp_path / "ledger.csv")
    ledger.add(**row("20261202T000000Z-cnn", "2026-12-02T00:00:00Z", "UNKNOWN"))
    remote = [listed(100009, "20261202T000000Z-cnn", "2026-12-02T00:00:01Z", status="PENDING")]
    assert ledger.restore(remote, TASK, TASK) == 1
    (only,) = ledger.rows()
    assert only["run_id"] == "20261202T000000Z-cnn" and only["kaggle_ref"] == "100009" and only["status"] == "PENDING"
    assert ledger.restore(remote, TASK, TASK) == 0  # known by its ref from now on


def test_the_same_configuration_on_kaggle_is_refused_in_one_line_unless_forced(tmp_path):
    ledger = Ledger(tmp_path / "ledger.csv")
    ledger.add(**row("a", "2026-12-01T00:00:00Z", "ERROR", ref="100001", config="aaaaaaaaaaaa"))
    ledger.add(**row("b", "2026-12-01T00:00:00Z", "FAILED", config="bbbbbbbbbbbb"))
    ledger.add(**row("c", "2026-12-02T00:00:00Z", "UNKNOWN", config="cccccccccccc"))
    ledger.add(**row("d", "2026-12-03T00:00:00Z", "COMPLETE", ref="100004", config="dddddddddddd"))
    for refused_nothing in ("aaaaaaaaaaaa", "bbbbbbbbbbbb", "eeeeeeeeeeee"):  # Kaggle holds nothing of these
        refuse_same_configuration(ledger, TASK, TASK, refused_nothing, "cnn", force=False)
    refuse_same_configuration(ledger, TASK, "another-competition", "dddddddddddd", "cnn", force=False)
    refuse_same_configuration(ledger, TASK, TASK, "dddddddddddd", "cnn", force=True)
    for config, says in (("dddddddddddd", "d.csv (ref 100004, scored, public 0.99000)"), ("cccccccccccc", "UNKNOWN")):
        try:
            refuse_same_configuration(ledger, TASK, TASK, config, "cnn", force=False)
        except Skipped as refusal:
            message = str(refusal)
        else:
            raise AssertionError("refused")
        assert says in message and f"config {config}" in message and "--force (FORCE=1)" in message
        assert "\n" not in message
