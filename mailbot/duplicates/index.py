"""The open report cases' signatures, in memory, behind a MinHash LSH index.

LSH answers "which stored signatures agree with this one in at least one band" without looking
at every case: the cost of a query grows with the candidates it finds, not with the cases
held. Its bands are tuned (by datasketch) for the finder's threshold: at 0.25, 42 bands of 3
rows, so a pair at 0.4 is a candidate 94 % of the time, at 0.5 99.5 %, and unrelated reports
(0.05 to 0.1) 0.5 to 4 %. Bands tuned lower (2 rows) find the pairs just above the threshold
more surely, but make a third of all open cases candidates of a report written in the same
vocabulary: over 10,000 cases, that cost more than the check's budget. The finder then
estimates each candidate's similarity and keeps those at or above the threshold.
"""

from __future__ import annotations

from datasketch import LeanMinHash, MinHash, MinHashLSH

from mailbot.duplicates.signature import NUM_PERM

MIN_LSH_THRESHOLD = 0.05


class SignatureIndex:
    """Case ids -> signatures, queryable by likeness."""

    def __init__(self, threshold: float) -> None:
        self._lsh = MinHashLSH(threshold=max(threshold, MIN_LSH_THRESHOLD),
                               num_perm=NUM_PERM)
        self._signatures: dict[str, LeanMinHash] = {}

    def __len__(self) -> int:
        return len(self._signatures)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._signatures

    def add(self, case_id: str, signature: MinHash) -> None:
        """Hold ``signature`` for ``case_id``, replacing one held before (an id a rolled-back
        transaction gave out may come back with another report)."""
        self.remove(case_id)
        lean = LeanMinHash(signature)  # without the permutations: a third of the memory
        self._lsh.insert(case_id, lean)
        self._signatures[case_id] = lean

    def remove(self, case_id: str) -> None:
        if self._signatures.pop(case_id, None) is not None:
            self._lsh.remove(case_id)

    def candidates(self, signature: MinHash) -> list[str]:
        return [str(key) for key in self._lsh.query(signature)]

    def signature_of(self, case_id: str) -> LeanMinHash:
        return self._signatures[case_id]
