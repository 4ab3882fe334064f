"""A case as a draft advisory: CSAF 2.0 or OSV JSON (pure).

The draft carries what the case knows: its title (the case's subject), CVE ids, the team's
severity, the CVSS vectors the reporter claimed (for the team to confirm), the reporter's credit
only when their consent is ``named``, and the dates (received, disclosure). It is a starting
point for the team: CSAF's tracking status is ``draft`` and its product tree is left for them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mailbot.cases.vocabulary import NAMED

OSV_SCHEMA_VERSION = "1.6.0"


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def credit_name(case: dict[str, Any]) -> str | None:
    """The name to credit: only with the reporter's consent ``named``."""
    if case.get("credit_consent") == NAMED and case.get("credit"):
        return str(case["credit"])
    return None


def claimed_vectors(case: dict[str, Any]) -> list[dict[str, Any]]:
    claim = case.get("reporter_claim") or {}
    return list(claim.get("cvss", []))


def osv(case: dict[str, Any], now: datetime) -> dict[str, Any]:
    """An OSV record (https://ossf.github.io/osv-schema/) for the case shown as ``case``."""
    out: dict[str, Any] = {
        "schema_version": OSV_SCHEMA_VERSION,
        "id": case["id"],
        "modified": _utc(now),
        "summary": case["subject"] or case["id"],
        "details": f"Draft advisory for {case['id']}; severity (team): "
                   f"{case.get('severity') or 'not assessed'}.",
    }
    if case.get("disclosure_date"):
        out["published"] = f"{case['disclosure_date']}T00:00:00Z"
    if case.get("cve"):
        out["aliases"] = list(case["cve"])
    vectors = claimed_vectors(case)
    if vectors:
        out["severity"] = [{"type": "CVSS_V4" if v["version"] == "4.0" else "CVSS_V3",
                            "score": v["vector"]} for v in vectors]
    name = credit_name(case)
    if name:
        out["credits"] = [{"name": name, "type": "FINDER"}]
    out["database_specific"] = {"severity": case.get("severity"),
                                "status": case["status"], "received_at": case["received_at"]}
    return out


def csaf(case: dict[str, Any], now: datetime, *, publisher: str,
         namespace: str) -> dict[str, Any]:
    """A CSAF 2.0 security advisory, status draft, for the case shown as ``case``."""
    today = _utc(now)
    document: dict[str, Any] = {
        "category": "csaf_security_advisory",
        "csaf_version": "2.0",
        "publisher": {"category": "vendor", "name": publisher, "namespace": namespace},
        "title": case["subject"] or case["id"],
        "tracking": {
            "id": case["id"],
            "status": "draft",
            "version": "1",
            "initial_release_date": (f"{case['disclosure_date']}T00:00:00Z"
                                     if case.get("disclosure_date") else today),
            "current_release_date": today,
            "revision_history": [{"date": today, "number": "1", "summary": "Draft."}],
        },
    }
    if case.get("severity"):
        document["aggregate_severity"] = {"text": case["severity"]}
    name = credit_name(case)
    if name:
        document["acknowledgments"] = [{"names": [name]}]
    vulnerabilities: list[dict[str, Any]] = []
    for cve in case.get("cve") or [None]:
        vuln: dict[str, Any] = {"title": case["subject"] or case["id"]}
        if cve:
            vuln["cve"] = cve
        if name:
            vuln["acknowledgments"] = [{"names": [name]}]
        vulnerabilities.append(vuln)
    return {"document": document, "vulnerabilities": vulnerabilities}
