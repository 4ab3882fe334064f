"""``mailbot report``'s figures over a few hundred cases built through the real intake pipeline
at controlled times, against figures computed independently from the cases' stories
(tests/report_world.py): on-time shares, medians, 90th percentiles, breaches, per month and in
total; business days across a weekend, a holiday and both DST changes."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from mailbot.app import App
from mailbot.cli import main
from mailbot.report.export import to_csv, to_json_dict
from mailbot.report.service import Period, build_figures
from tests import report_world as world

SINCE, UNTIL = date(2026, 3, 1), date(2026, 12, 2)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, list[world.Story]]]:
    app, stories = world.make_world(tmp_path_factory.mktemp("report"), count=300)
    yield app, stories
    app.close()


def report_json(app: App, since: date = SINCE, until: date = UNTIL) -> dict[str, Any]:
    figures = build_figures(app.db, app.calendar, app.settings.policy, Period(since, until),
                            world.NOW)
    return to_json_dict(figures)


def story(stories: list[world.Story], key: str) -> world.Story:
    return next(s for s in stories if s.key == key)


def assert_bucket(got: dict[str, Any], want: world.Expected) -> None:
    assert got["received"] == want.received
    assert got["acknowledged_on_time"] == want.ack_on_time
    assert got["acknowledged_late"] == want.ack_late
    assert got["ack_open"] == want.ack_open
    assert got["assessed_on_time"] == want.assess_on_time
    assert got["assessed_late"] == want.assess_late
    assert got["assess_open"] == want.assess_open
    for name, values in (("ack", want.ack_days), ("assess", want.assess_days)):
        if values:
            assert got[f"{name}_median_business_days"] == pytest.approx(
                statistics.median(values), abs=0.01)
            assert got[f"{name}_p90_business_days"] == pytest.approx(world.p90(values), abs=0.01)
        else:
            assert got[f"{name}_median_business_days"] is None
    for name, values in (("ack", want.ack_hours), ("assess", want.assess_hours)):
        if values:
            assert got[f"{name}_median_hours"] == pytest.approx(
                statistics.median(values), abs=0.02)
            assert got[f"{name}_p90_hours"] == pytest.approx(world.p90(values), abs=0.02)
    judged = want.ack_on_time + want.ack_late
    if judged:
        assert got["ack_on_time_share"] == pytest.approx(want.ack_on_time / judged, abs=1e-4)
    breaches = {(b["case"], b["deadline"]): b["late_by_hours"] for b in got["breaches"]}
    assert breaches.keys() == want.breaches.keys()
    for key, hours in want.breaches.items():
        assert breaches[key] == pytest.approx(hours, abs=0.01), key
    assert {k: v for k, v in got["excluded"].items() if v} == want.excluded
    assert got["by_severity"] == want.severity


def test_world_has_a_few_hundred_cases_of_every_kind(built: tuple[App, list[world.Story]]) -> None:
    _app, stories = built
    assert len(stories) >= 300
    total, _ = world.expected(stories, SINCE, UNTIL)
    assert total.received > 200
    assert total.ack_late > 10 and total.ack_on_time > 50 and total.ack_open > 5
    assert total.assess_late > 5 and total.assess_on_time > 20 and total.assess_open > 5
    assert set(total.excluded) == {"automatic", "spam", "duplicate"}


def test_totals_equal_the_independently_computed_figures(
        built: tuple[App, list[world.Story]]) -> None:
    app, stories = built
    got = report_json(app)
    total, _ = world.expected(stories, SINCE, UNTIL)
    assert got["period"] == {"since": "2026-03-01", "until": "2026-12-02"}
    assert_bucket(got["totals"], total)


def test_every_month_equals_the_independently_computed_figures(
        built: tuple[App, list[world.Story]]) -> None:
    app, stories = built
    got = report_json(app)
    _, months = world.expected(stories, SINCE, UNTIL)
    assert [m["month"] for m in got["months"]] == [f"2026-{m:02d}" for m in range(3, 13)]
    for bucket in got["months"]:
        assert_bucket(bucket, months.get(bucket["month"], world.Expected()))


def test_a_period_counts_only_reports_received_in_it(built: tuple[App, list[world.Story]]) -> None:
    app, stories = built
    since, until = date(2026, 5, 10), date(2026, 7, 20)
    got = report_json(app, since, until)
    total, _ = world.expected(stories, since, until)
    assert_bucket(got["totals"], total)
    assert [m["month"] for m in got["months"]] == ["2026-05", "2026-06", "2026-07"]


def single_day(app: App, day: date) -> dict[str, Any]:
    return dict(report_json(app, day, day)["totals"])


def test_spring_dst_weekend_counts_three_business_days_and_113_real_hours(
        built: tuple[App, list[world.Story]]) -> None:
    app, _ = built
    got = single_day(app, date(2026, 3, 27))
    assert (got["received"], got["acknowledged_on_time"], got["acknowledged_late"]) == (1, 1, 0)
    assert got["ack_median_business_days"] == 3
    assert got["ack_median_hours"] == 113  # Fri 16:00 CET to Wed 10:00 CEST
    # Acknowledged Wed 1 April, assessed Wed 8 April: 5 business days, 167 hours.
    assert got["assess_median_business_days"] == 5
    assert got["assessed_on_time"] == 1


def test_a_holiday_moves_the_deadline_so_a_thursday_answer_is_on_time(
        built: tuple[App, list[world.Story]]) -> None:
    app, _ = built
    got = single_day(app, date(2026, 4, 24))
    assert (got["acknowledged_on_time"], got["acknowledged_late"]) == (1, 0)
    assert got["ack_median_business_days"] == 3  # Tue 28, Wed 29, Thu 30 (Mon 27 a holiday)
    assert [b for b in got["breaches"] if b["deadline"] == "ack"] == []


def test_a_saturday_report_answered_on_thursday_is_late_by_nine_hours(
        built: tuple[App, list[world.Story]]) -> None:
    app, stories = built
    got = single_day(app, date(2026, 6, 13))
    assert (got["acknowledged_on_time"], got["acknowledged_late"]) == (0, 1)
    assert got["ack_median_business_days"] == 4
    [breach] = got["breaches"]
    assert breach["case"] == story(stories, "weekend").case_id
    assert breach["deadline"] == "ack"
    assert breach["late_by_hours"] == pytest.approx(9.0, abs=0.01)
    assert breach["still_open"] is False


def test_autumn_dst_weekend_is_one_business_day_and_73_real_hours(
        built: tuple[App, list[world.Story]]) -> None:
    app, _ = built
    got = single_day(app, date(2026, 10, 23))
    assert got["ack_median_business_days"] == 1
    assert got["ack_median_hours"] == 73  # Fri 18:00 CEST to Mon 18:00 CET


def test_open_case_due_today_is_listed_at_risk(built: tuple[App, list[world.Story]]) -> None:
    app, stories = built
    got = report_json(app)
    hostile = story(stories, "hostile").case_id
    at_risk = {a["case"]: a for a in got["at_risk"]}
    assert at_risk[hostile]["stage"] == "at-risk"
    assert at_risk[hostile]["deadline"] == "ack"
    # No subject (report content) in the machine-readable figures.
    assert "subject" not in at_risk[hostile]
    assert got["at_risk_total"] == len(got["at_risk"])


def test_a_policy_change_later_does_not_rewrite_history(
        built: tuple[App, list[world.Story]]) -> None:
    app, stories = built
    import dataclasses

    from mailbot.deadlines.calendar import BusinessCalendar

    stricter = dataclasses.replace(app.settings.policy, ack_business_days=1)
    figures = build_figures(app.db, BusinessCalendar.from_policy(stricter), stricter,
                            Period(SINCE, UNTIL), world.NOW)
    total, _ = world.expected(stories, SINCE, UNTIL)
    got = to_json_dict(figures)["totals"]
    assert (got["acknowledged_on_time"], got["acknowledged_late"]) == (
        total.ack_on_time, total.ack_late)


def test_csv_carries_the_same_figures_as_json(built: tuple[App, list[world.Story]]) -> None:
    app, _ = built
    figures = build_figures(app.db, app.calendar, app.settings.policy, Period(SINCE, UNTIL),
                            world.NOW)
    data = to_json_dict(figures)
    rows = list(csv.DictReader(io.StringIO(to_csv(figures))))
    [total] = [r for r in rows if r["section"] == "total"]
    for key in ("received", "acknowledged_on_time", "acknowledged_late", "ack_open",
                "assessed_on_time", "assessed_late", "assess_open"):
        assert int(total[key]) == data["totals"][key]
    assert float(total["ack_median_business_days"]) == data["totals"]["ack_median_business_days"]
    months = [r for r in rows if r["section"] == "month"]
    assert [int(r["received"]) for r in months] == [m["received"] for m in data["months"]]
    breaches = {(r["case"], r["deadline"]) for r in rows if r["section"] == "breach"}
    assert breaches == {(b["case"], b["deadline"]) for b in data["totals"]["breaches"]}


def test_cli_writes_json_for_the_period(built: tuple[App, list[world.Story]], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    app, stories = built
    config = tmp_path / "mailbot.toml"
    config.write_text(
        '[mailbox]\nhost = "127.0.0.1"\nsecurity = "none"\nusername = "s@example.test"\n'
        'password = "unused"\n'
        '[smtp]\nhost = "127.0.0.1"\nsecurity = "none"\nfrom = "s@example.test"\n'
        f'[database]\nurl = "{app.settings.database.url}"\n'
        '[policy]\ntimezone = "Europe/Amsterdam"\nholidays = ["2026-04-27", "2026-05-14"]\n'
        f'[storage]\nkey_file = "{app.settings.storage.key_file}"\n')
    out = tmp_path / "r.json"
    code = main(["--config", str(config), "report", "--since", "2026-06-01", "--until",
                 "2026-06-30", "--format", "json", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    got = json.loads(out.read_text())
    total, _ = world.expected(stories, date(2026, 6, 1), date(2026, 6, 30),
                              now=world.NOW)
    # The CLI judges open cases at the real time; the closed figures do not depend on it.
    assert got["totals"]["received"] == total.received
    assert got["totals"]["acknowledged_on_time"] == total.ack_on_time
    assert got["totals"]["acknowledged_late"] == total.ack_late


def test_cli_refuses_a_period_that_ends_before_it_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "mailbot.toml"
    config.write_text(
        '[mailbox]\nhost = "127.0.0.1"\nsecurity = "none"\nusername = "s@example.test"\n'
        'password = "unused"\n'
        '[smtp]\nhost = "127.0.0.1"\nsecurity = "none"\nfrom = "s@example.test"\n')
    code = main(["--config", str(config), "report", "--since", "2026-06-02", "--until",
                 "2026-06-01"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--since 2026-06-02 is after --until 2026-06-01" in err
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(config), "report", "--since", "June"])
    assert exit_.value.code == 2
    assert "expected a date such as 2026-12-15, got 'June'" in capsys.readouterr().err


def test_cli_on_a_database_never_migrated_says_to_migrate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "mailbot.toml"
    config.write_text(
        '[mailbox]\nhost = "127.0.0.1"\nsecurity = "none"\nusername = "s@example.test"\n'
        'password = "unused"\n'
        '[smtp]\nhost = "127.0.0.1"\nsecurity = "none"\nfrom = "s@example.test"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "new.db"}"\n')
    assert main(["--config", str(config), "report", "--format", "json"]) == 2
    err = capsys.readouterr().err
    assert "run: mailbot migrate" in err and "Traceback" not in err


def test_postgresql_gives_the_same_figures(tmp_path: Path, pg_url: str) -> None:
    """The database computes the epoch seconds itself: PostgreSQL's way must agree too."""
    app, stories = world.make_world(tmp_path, count=60, database_url=pg_url)
    try:
        got = report_json(app)
        total, months = world.expected(stories, SINCE, UNTIL)
        assert_bucket(got["totals"], total)
        for bucket in got["months"]:
            assert_bucket(bucket, months.get(bucket["month"], world.Expected()))
    finally:
        app.close()
