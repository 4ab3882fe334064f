"""The reporter's claim: CVE ids and CVSS vectors found in a report's text (pure)."""

from __future__ import annotations

from mailbot.intake.claims import MAX_CLAIMS, extract_claim, score_vector


def test_cve_ids_are_upper_cased_and_kept_once_in_order() -> None:
    claim = extract_claim("cve-2026-0002, CVE-2026-0001 and again CVE-2026-0002")
    assert claim["cve"] == ["CVE-2026-0002", "CVE-2026-0001"]


def test_cvss_4_vectors_are_scored_too() -> None:
    scored = score_vector("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N")
    assert scored is not None and (scored["version"], scored["score"]) == ("4.0", 9.3)


def test_invalid_vectors_are_no_claim() -> None:
    assert score_vector("CVSS:3.1/AV:Q/AC:L") is None
    assert extract_claim("CVSS:3.0/AV:N/AC:L") == {"cve": [], "cvss": []}


def test_a_long_list_is_cut_short() -> None:
    text = " ".join(f"CVE-2026-{n:04d}" for n in range(100))
    assert len(extract_claim(text)["cve"]) == MAX_CLAIMS
