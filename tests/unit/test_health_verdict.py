"""What ``mailbot health`` concludes from its records (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailbot.health.records import Problem, Status
from mailbot.health.verdict import judge

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def status(*, beat_ago: float | None = 5, read_ago: float | None = 10, read_by: str = "b",
           problems: list[Problem] | None = None) -> Status:
    return Status(
        heartbeats={} if beat_ago is None else {"a": NOW - timedelta(seconds=beat_ago)},
        read_by=None if read_ago is None else read_by,
        read_at=None if read_ago is None else NOW - timedelta(seconds=read_ago),
        problems=problems or [],
    )


def test_alive_here_and_read_by_another_host_is_healthy_and_names_the_reader() -> None:
    verdict = judge(status(), now=NOW, host="a", poll_seconds=60)
    assert verdict.healthy
    assert "this host (a): daemon alive" in verdict.lines[0]
    assert "mailbox: read by b 10 s ago" in verdict.lines[1]


def test_a_mailbox_nobody_read_within_three_poll_intervals_is_unhealthy() -> None:
    verdict = judge(status(read_ago=3 * 600 + 1), now=NOW, host="a", poll_seconds=600)
    assert not verdict.healthy
    assert "nobody has read it for 30 min" in verdict.lines[1]
    assert judge(status(read_ago=3 * 600 - 1), now=NOW, host="a", poll_seconds=600).healthy


def test_a_host_whose_daemon_never_ran_is_unhealthy_even_when_another_reads() -> None:
    verdict = judge(status(beat_ago=None), now=NOW, host="a", poll_seconds=60)
    assert not verdict.healthy
    assert "no mailbot daemon has run here" in verdict.lines[0]


def test_a_refused_login_is_unhealthy_and_names_the_key_to_fix() -> None:
    problem = Problem(service="imap", host="a", since=NOW - timedelta(minutes=3),
                      error="IMAP login refused by imap:993", key="mailbox.password_env (X)")
    verdict = judge(status(problems=[problem]), now=NOW, host="a", poll_seconds=60)
    assert not verdict.healthy
    assert any("IMAP login refused" in line for line in verdict.lines)
    assert any("to fix: mailbox.password_env (X)" in line for line in verdict.lines)


def test_a_mailbox_nobody_could_read_says_why_the_last_try_failed() -> None:
    failed = Status(heartbeats={"a": NOW}, read_by=None, read_at=None, problems=[],
                    last_failure=(NOW - timedelta(seconds=20), "cannot connect to imap:993"))
    verdict = judge(failed, now=NOW, host="a", poll_seconds=60)
    assert not verdict.healthy
    assert verdict.lines[1] == ("mailbox: nobody has read it yet; the last try failed 20 s ago: "
                                "cannot connect to imap:993")
