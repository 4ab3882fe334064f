"""``mailbot cases advisory ID --format csaf|osv``: a draft advisory from a case on real servers.

The credit appears only when the reporter agreed to be named; every document written is checked
against the published CSAF 2.0 / OSV schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import mailflow
from tests.advisory_schemas import CSAF, OSV, errors
from tests.integration.test_commands import (
    cli,  # noqa: F401  (a fixture)
    send_commands,
)
from tests.integration.test_credit_consent import reporter_reply
from tests.mailflow import Mailflow
from tests.servers.dovecot import ImapAccount
from tests.servers.smtp_sink import SmtpSink

VECTOR = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


@pytest.fixture
def flow(tmp_path: Path, imap_account: ImapAccount, smtp_sink: SmtpSink) -> Iterator[Mailflow]:
    yield from mailflow.running(tmp_path, imap_account, smtp_sink)


def prepared_case(flow: Mailflow, credit_line: str) -> str:
    case, report_id = flow.open_report(body=f"Remote code execution, {VECTOR}\n")
    send_commands(flow, report_id, "/assess severity=critical\n/cve CVE-2026-5555\n"
                                   "/disclose 2027-01-15\n")
    reporter_reply(flow, f"{credit_line}\n", answering=flow.receipt_id(case.id))
    return case.id


def advisory(cli: Any, case_id: str, fmt: str, tmp_path: Path) -> dict[str, Any]:  # noqa: F811
    out = tmp_path / f"advisory.{fmt}.json"
    status, stdout, err = cli("cases", "advisory", case_id, "--format", fmt, "--out", str(out))
    assert (status, stdout, err) == (0, "", "")
    loaded: dict[str, Any] = json.loads(out.read_text())
    assert errors(CSAF if fmt == "csaf" else OSV, loaded) == []
    return loaded


def test_osv_carries_cve_vector_dates_and_the_named_credit(
    flow: Mailflow, cli: Any, tmp_path: Path  # noqa: F811
) -> None:
    case_id = prepared_case(flow, '/credit "Rita Reporter, Example Labs"')
    doc = advisory(cli, case_id, "osv", tmp_path)
    assert doc["id"] == f"x_{case_id}" and doc["schema_version"] == "1.7.5"
    assert doc["modified"].endswith("Z") and doc["published"] == "2027-01-15T00:00:00Z"
    assert doc["aliases"] == ["CVE-2026-5555"]
    assert doc["severity"] == [{"type": "CVSS_V3", "score": VECTOR}]
    assert doc["credits"] == [{"name": "Rita Reporter, Example Labs", "type": "FINDER"}]
    assert doc["summary"] == "XSS in the login form"
    assert doc["database_specific"]["severity"] == "critical"


def test_csaf_is_a_draft_with_acknowledgments_only_when_named(
    flow: Mailflow, cli: Any, tmp_path: Path  # noqa: F811
) -> None:
    named = prepared_case(flow, '/credit "Rita Reporter"')
    doc = advisory(cli, named, "csaf", tmp_path)
    document = doc["document"]
    assert (document["category"], document["csaf_version"]) == ("csaf_security_advisory", "2.0")
    assert document["tracking"]["status"] == "draft"
    assert document["tracking"]["initial_release_date"] == "2027-01-15T00:00:00Z"
    assert document["acknowledgments"] == [{"names": ["Rita Reporter"]}]
    assert document["aggregate_severity"] == {"text": "critical"}
    assert [v["cve"] for v in doc["vulnerabilities"]] == ["CVE-2026-5555"]
    assert doc["vulnerabilities"][0]["scores"][0]["cvss_v3"]["vectorString"] == VECTOR

    anonymous = prepared_case(flow, "/anonymous")
    for fmt in ("csaf", "osv"):
        text = json.dumps(advisory(cli, anonymous, fmt, tmp_path))
        assert "Rita" not in text and "acknowledgments" not in text and "credits" not in text


def test_an_unknown_case_is_one_line_and_exit_2(flow: Mailflow, cli: Any) -> None:  # noqa: F811
    status, out, err = cli("cases", "advisory", "SEC-1999-0001", "--format", "osv")
    assert (status, out) == (2, "") and len(err.splitlines()) == 1 and "no case" in err
