"""A case as a draft advisory: CSAF 2.0 or OSV JSON (pure).

The draft carries what the case knows: its title (the case's subject), CVE ids, the team's
severity, the CVSS vectors the reporter claimed (for the team to confirm), the reporter's credit
only when their consent is ``named``, and the dates (received, disclosure). It is a starting
point for the team: CSAF's tracking status is ``draft`` (version 0) and its product tree holds one
placeholder product for them to name, to which the claimed CVSS scores refer.

Both are valid against the published JSON schemas (CSAF 2.0 with FIRST's CVSS schemas, and
OSV's ``validation/schema.json``): the tests check it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mailbot.cases.views import UNREADABLE
from mailbot.cases.vocabulary import NAMED

OSV_SCHEMA_VERSION = "1.7.5"
# OSV ids are ``<DB>-<ENTRYID>`` with a registered DB; ``x_`` marks a local database.
OSV_LOCAL_PREFIX = "x_"
# The one product of a CSAF draft: the case does not know the product, the team names it.
PLACEHOLDER_PRODUCT = "CSAFPID-0001"


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def credit_name(case: dict[str, Any]) -> str | None:
    """The name to credit: only with the reporter's consent ``named``, and never a stored name
    that failed its integrity check."""
    if case.get("credit_consent") == NAMED and case.get("credit") not in (None, "", UNREADABLE):
        return str(case["credit"])
    return None


def claimed_vectors(case: dict[str, Any]) -> list[dict[str, Any]]:
    claim = case.get("reporter_claim") or {}
    return list(claim.get("cvss", []))


def osv(case: dict[str, Any], now: datetime) -> dict[str, Any]:
    """An OSV record (https://ossf.github.io/osv-schema/) for the case shown as ``case``."""
    out: dict[str, Any] = {
        "schema_version": OSV_SCHEMA_VERSION,
        "id": f"{OSV_LOCAL_PREFIX}{case['id']}",
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
    title = case["subject"] or case["id"]
    document: dict[str, Any] = {
        "category": "csaf_security_advisory",
        "csaf_version": "2.0",
        "publisher": {"category": "vendor", "name": publisher, "namespace": namespace},
        "title": title,
        "tracking": {
            "id": case["id"],
            "status": "draft",
            # A draft's version is 0 (CSAF 2.0 section 6.1.17); the team releases it as 1.
            "version": "0",
            "initial_release_date": (f"{case['disclosure_date']}T00:00:00Z"
                                     if case.get("disclosure_date") else today),
            "current_release_date": today,
            "revision_history": [{"date": today, "number": "0", "summary": "Draft."}],
        },
    }
    if case.get("severity"):
        document["aggregate_severity"] = {"text": case["severity"]}
    name = credit_name(case)
    if name:
        document["acknowledgments"] = [{"names": [name]}]
    product_tree = {"full_product_names": [
        {"name": f"{title} (affected product, to be named)", "product_id": PLACEHOLDER_PRODUCT}]}
    vectors = claimed_vectors(case)
    scores = [{"products": [PLACEHOLDER_PRODUCT], "cvss_v3": _cvss_v3(v)}
              for v in vectors if v["version"] in ("3.0", "3.1")]
    notes = [{"category": "other", "title": "CVSS vector claimed by the reporter",
              "text": f"{v['vector']} (base score {v['score']}, to be confirmed)"}
             for v in vectors]
    vulnerabilities: list[dict[str, Any]] = []
    for cve in case.get("cve") or [None]:
        vuln: dict[str, Any] = {"title": title}
        if cve:
            vuln["cve"] = cve
        if name:
            vuln["acknowledgments"] = [{"names": [name]}]
        if scores:
            vuln["scores"] = scores
        if notes:
            vuln["notes"] = notes
        vulnerabilities.append(vuln)
    return {"document": document, "product_tree": product_tree,
            "vulnerabilities": vulnerabilities}


def _cvss_v3(vector: dict[str, Any]) -> dict[str, Any]:
    """A claimed CVSS 3.x vector as FIRST's ``cvss-v3.x.json`` object (base metrics)."""
    return {"version": vector["version"], "vectorString": vector["vector"],
            "baseScore": vector["score"], "baseSeverity": str(vector["severity"]).upper()}
