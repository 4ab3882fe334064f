"""A new report's signature -> the held cases it is most like, best first."""

from __future__ import annotations

from datasketch import MinHash

from mailbot.duplicates.index import SignatureIndex

MAX_CANDIDATES = 3  # a report like many open cases names the closest few


def most_similar(index: SignatureIndex, signature: MinHash, threshold: float,
                 *, limit: int = MAX_CANDIDATES) -> list[tuple[str, float]]:
    """(case id, estimated Jaccard similarity) for held cases at or above ``threshold``, the
    most similar first (ties by id), at most ``limit``."""
    scored = ((case_id, float(signature.jaccard(index.signature_of(case_id))))
              for case_id in index.candidates(signature))
    kept = sorted(((c, s) for c, s in scored if s >= threshold), key=lambda cs: (-cs[1], cs[0]))
    return kept[:limit]
