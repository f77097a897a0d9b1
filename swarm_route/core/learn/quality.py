"""The quality gate: only paths whose answer scored at least the threshold earn pheromone."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class QualityGate:
    threshold: float
    sample_rate: float

    def sampled(self, request_id: str) -> bool:
        """Deterministic in the id, so every updater replica agrees and a redelivery samples the same way."""
        if self.sample_rate >= 1:
            return True
        digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64 < self.sample_rate

    def passes(self, score: float) -> bool:
        return score >= self.threshold
