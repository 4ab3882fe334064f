"""The open report cases' signatures, in memory, behind a MinHash LSH index.

LSH answers "which stored signatures agree with this one in at least one band" without looking
at every case: the cost of a query grows with the candidates it finds, not with the cases
held. Its bands are tuned (by datasketch) for a Jaccard threshold somewhat *below* the one the
finder filters on, so that a pair just above the finder's threshold is not lost to LSH's
probabilistic edge; the finder then estimates each candidate's similarity and keeps those above.
"""

from __future__ import annotations

from datasketch import MinHash, MinHashLSH

from mailbot.duplicates.signature import NUM_PERM

LSH_MARGIN = 0.7  # the LSH bands target this fraction of the finder's threshold
MIN_LSH_THRESHOLD = 0.05


class SignatureIndex:
    """Case ids -> signatures, queryable by likeness."""

    def __init__(self, threshold: float) -> None:
        self._lsh = MinHashLSH(threshold=max(threshold * LSH_MARGIN, MIN_LSH_THRESHOLD),
                               num_perm=NUM_PERM)
        self._signatures: dict[str, MinHash] = {}

    def __len__(self) -> int:
        return len(self._signatures)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._signatures

    def add(self, case_id: str, signature: MinHash) -> None:
        """Hold ``signature`` for ``case_id``, replacing one held before (an id a rolled-back
        transaction gave out may come back with another report)."""
        self.remove(case_id)
        self._lsh.insert(case_id, signature)
        self._signatures[case_id] = signature

    def remove(self, case_id: str) -> None:
        if self._signatures.pop(case_id, None) is not None:
            self._lsh.remove(case_id)

    def candidates(self, signature: MinHash) -> list[str]:
        return [str(key) for key in self._lsh.query(signature)]

    def signature_of(self, case_id: str) -> MinHash:
        return self._signatures[case_id]
