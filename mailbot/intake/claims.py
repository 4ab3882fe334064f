"""What a report claims about itself: CVE ids and CVSS vectors, kept as the reporter's claim.

Pure extraction from the report's text; a vector counts only when the ``cvss`` package accepts
it (and then carries its base score and severity). Nothing here changes the case's own ``cve``
or ``severity``: those are the team's decisions. The claim is recorded as one ``reporter-claim``
event when the report opens its case, and ``cases show`` shows it.
"""

from __future__ import annotations

import re
from typing import Any

from cvss import CVSS3, CVSS4
from cvss.exceptions import CVSSError

MAX_CLAIMS = 10  # of each kind: a report that lists a hundred is quoting something else
MAX_SCAN = 256 * 1024  # characters of the report's text looked at
_CVE = re.compile(r"\bCVE-\d{4}-\d{4,19}\b", re.IGNORECASE)
_VECTOR = re.compile(r"\bCVSS:(?:3\.[01]|4\.0)/[A-Za-z:/]{6,200}")


def extract_claim(text: str) -> dict[str, Any]:
    """``{"cve": [...], "cvss": [{"vector", "version", "score", "severity"}]}``; empty lists
    when the text claims nothing."""
    text = text[:MAX_SCAN]
    cves: list[str] = []
    for match in _CVE.finditer(text):
        cve = match.group(0).upper()
        if cve not in cves:
            cves.append(cve)
        if len(cves) >= MAX_CLAIMS:
            break
    vectors: list[dict[str, Any]] = []
    for match in _VECTOR.finditer(text):
        scored = score_vector(match.group(0).rstrip("/"))
        if scored is not None and scored["vector"] not in {v["vector"] for v in vectors}:
            vectors.append(scored)
        if len(vectors) >= MAX_CLAIMS:
            break
    return {"cve": cves, "cvss": vectors}


def score_vector(vector: str) -> dict[str, Any] | None:
    """A valid CVSS 3.x or 4.0 vector with its base score and severity; None when invalid."""
    try:
        if vector.startswith("CVSS:4.0/"):
            v4 = CVSS4(vector)
            return {"vector": v4.clean_vector(), "version": "4.0",
                    "score": float(v4.base_score), "severity": str(v4.severity).lower()}
        v3 = CVSS3(vector)
        return {"vector": v3.clean_vector(), "version": vector[5:8],
                "score": float(v3.base_score), "severity": str(v3.severities()[0]).lower()}
    except (CVSSError, ValueError, KeyError, IndexError):
        return None
