"""Draft advisories are valid against the published schemas: CSAF 2.0 (with FIRST's CVSS v2,
v3.0 and v3.1 schemas) and OSV, vendored in tests/data/schemas and validated offline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mailbot.advisory.build import csaf, osv
from mailbot.intake.claims import score_vector
from tests.advisory_schemas import CSAF, OSV, errors

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
V31 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
V30 = "CVSS:3.0/AV:L/AC:H/PR:L/UI:R/S:C/C:L/I:N/A:N"
V40 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"


def case(**fields: Any) -> dict[str, Any]:
    """A case as ``cases show --json`` gives it, with only what the advisory reads."""
    base: dict[str, Any] = {
        "id": "SEC-2026-0042", "status": "new", "subject": "XSS in the login form",
        "received_at": "2026-03-01T08:00:00Z", "severity": None, "cve": [], "credit": None,
        "credit_consent": "unknown", "disclosure_date": None, "reporter_claim": None}
    return base | fields


def claim(*vectors: str, cves: tuple[str, ...] = ()) -> dict[str, Any]:
    scored = [score_vector(v) for v in vectors]
    assert None not in scored
    return {"cve": list(cves), "cvss": scored}


CASES = {
    "minimal": case(subject=""),
    "named credit": case(credit="Rita Reporter, Example Labs", credit_consent="named",
                         severity="high"),
    "anonymous": case(credit=None, credit_consent="anonymous", severity="low"),
    "cve and cvss": case(cve=["CVE-2026-5555", "CVE-2026-123456"], severity="critical",
                         disclosure_date="2027-01-15", status="assessed",
                         credit="Rita", credit_consent="named",
                         reporter_claim=claim(V31, V30, V40)),
    "claims only": case(reporter_claim=claim(V31, cves=("CVE-2026-7777",))),
}


def publish(c: dict[str, Any]) -> dict[str, Any]:
    return csaf(c, NOW, publisher="Example Security Team", namespace="https://example.com")


@pytest.mark.parametrize("name", CASES)
def test_the_csaf_draft_is_valid_against_the_csaf_2_0_schema(name: str) -> None:
    assert errors(CSAF, publish(CASES[name])) == []


@pytest.mark.parametrize("name", CASES)
def test_the_osv_record_is_valid_against_the_osv_schema(name: str) -> None:
    assert errors(OSV, osv(CASES[name], NOW)) == []


def test_claimed_cvss_3_vectors_are_csaf_scores_checked_by_first_s_schemas() -> None:
    doc = publish(CASES["cve and cvss"])
    assert [v["cve"] for v in doc["vulnerabilities"]] == ["CVE-2026-5555", "CVE-2026-123456"]
    scores = doc["vulnerabilities"][0]["scores"]
    assert [s["cvss_v3"]["vectorString"] for s in scores] == [V31, V30]
    assert scores[0]["cvss_v3"] == {"version": "3.1", "vectorString": V31, "baseScore": 9.8,
                                    "baseSeverity": "CRITICAL"}
    # Each score names a product the product tree defines (the placeholder for the team).
    defined = {p["product_id"] for p in doc["product_tree"]["full_product_names"]}
    assert {p for s in scores for p in s["products"]} <= defined
    # CSAF 2.0 has no CVSS 4.0 object: that vector is kept as a note.
    notes = " ".join(n["text"] for n in doc["vulnerabilities"][0]["notes"])
    assert V40 in notes and V31 in notes
    # The FIRST schema behind cvss_v3 is really applied: a wrong score breaks the document.
    scores[0]["cvss_v3"]["baseSeverity"] = "SEVERE"
    assert errors(CSAF, doc) != []


def test_osv_severity_and_credits_follow_the_schema() -> None:
    doc = osv(CASES["cve and cvss"], NOW)
    assert doc["id"] == "x_SEC-2026-0042"  # a local database's id: OSV's x_ prefix
    assert doc["severity"] == [{"type": "CVSS_V3", "score": V31},
                               {"type": "CVSS_V3", "score": V30},
                               {"type": "CVSS_V4", "score": V40}]
    assert doc["credits"] == [{"name": "Rita", "type": "FINDER"}]
    assert doc["published"] == "2027-01-15T00:00:00Z" and doc["modified"] == "2026-03-02T09:30:00Z"
    doc["severity"][2]["score"] = V40.replace("AV:N", "AV:Q")
    assert errors(OSV, doc) != []


def test_the_csaf_draft_is_version_0_as_a_draft_must_be() -> None:
    tracking = publish(CASES["minimal"])["document"]["tracking"]
    assert (tracking["status"], tracking["version"]) == ("draft", "0")
    assert [r["number"] for r in tracking["revision_history"]] == ["0"]


@pytest.mark.parametrize("name", ["minimal", "anonymous", "claims only"])
def test_no_credit_without_named_consent(name: str) -> None:
    text = repr(publish(CASES[name])) + repr(osv(CASES[name], NOW))
    assert "acknowledgments" not in text and "credits" not in text
