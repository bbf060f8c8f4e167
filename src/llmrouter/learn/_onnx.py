"""Run a sentence-transformers model on ONNX Runtime: the same embeddings, in less time.

A prediction of `QualityPredictor` is mostly one forward pass of the embedding model.
On a small CPU, ONNX Runtime takes about 2/3 of torch's time per prediction
(`benchmarks/routing_quality.py`; 1/2 for the forward pass alone), and
its float32 embeddings equal torch's to about 1e-7, so a predictor fitted with one
predicts the same with the other, and the embedding cache serves both.

The model is exported once with ``torch.onnx.export`` (eager attention, which exports
as plain operators that ONNX Runtime's graph optimizations work on) and kept in the
cache folder under a digest of its weights and layers, so a process that starts later
loads the file.
Tokenisation stays sentence-transformers' own (its ``preprocess``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from llmrouter.errors import ConfigurationError

FORMAT = "1"
"""Bumped when the exported graph changes, so older files in the cache are not reused."""

_OPSET = 17


@functools.cache
def available() -> bool:
    """Whether ONNX Runtime and the exporter's ``onnx`` package are installed (asked
    once per process: every embedding asks, and a failed import searches the path)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class OnnxEmbedder:
    """A sentence-transformers model's embeddings computed by ONNX Runtime.

    Args:
        model: A loaded ``SentenceTransformer`` on the CPU. Its tokenizer is used;
            its weights are exported (once per cache folder) and then not used, so
            the caller may release them (``model.to("meta")``, as `PromptEncoder`
            does). The model's attention is switched to eager for the export.
        folder: Where exported files are kept.
        quantize: ``"int8"``: ONNX Runtime's dynamic int8 quantization of the
            exported model (int8 weights, activations quantized per call), faster
            again; its embeddings differ a little from float32 ones.

    Examples:
        >>> from llmrouter.learn._features import _load_model
        >>> embedder = OnnxEmbedder(_load_model("all-MiniLM-L6-v2", device="cpu"),
        ...                         Path("/tmp/onnx"))  # doctest: +SKIP
        >>> embedder.encode(["What is 2+2?"]).shape  # doctest: +SKIP
        (1, 384)
    """

    def __init__(self, model: Any, folder: Path, quantize: str | None = None) -> None:
        import onnxruntime as ort

        self._model = model
        self._names = _tensor_names(model)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        name = digest(model)
        paths = [folder / f"{name}.onnx"] + ([folder / f"{name}-int8.onnx"] if quantize else [])
        for attempt in (1, 2):
            try:
                data = _model_bytes(model, self._names, paths)
                self._session = ort.InferenceSession(
                    data, options, providers=["CPUExecutionProvider"]
                )
                break
            except Exception:
                if attempt == 2:
                    raise
                for path in paths:  # a damaged file in the cache: make them again, once
                    path.unlink(missing_ok=True)

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer (what `encode` tokenises with)."""
        return self._model.tokenizer

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        normalize_embeddings: bool = True,
        show_progress_bar: bool = False,
        convert_to_numpy: bool = True,
    ) -> NDArray[np.float32]:
        """Embeddings of ``texts``, shape (texts, dimensions), in their order; the
        keywords are `SentenceTransformer.encode`'s (output is always numpy)."""
        from tqdm.auto import tqdm  # type: ignore[import-untyped]  # via sentence-transformers

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # less padding
        parts = []
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc="Batches", disable=not show_progress_bar):
            features = _tokenize(self._model, [texts[i] for i in order[start : start + batch_size]])
            feed = {name: features[name].numpy().astype(np.int64) for name in self._names}
            parts.append(np.asarray(self._session.run(None, feed)[0], dtype=np.float32))
        out = np.empty((len(texts), parts[0].shape[1] if parts else 0), dtype=np.float32)
        if parts:
            out[order] = np.concatenate(parts)
        if normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


def _tokenize(model: Any, texts: list[str]) -> dict[str, Any]:
    """sentence-transformers' tokenisation (``preprocess``; ``tokenize`` in older releases)."""
    method = getattr(model, "preprocess", None) or model.tokenize
    return dict(method(texts))


def _tensor_names(model: Any) -> list[str]:
    """The model's inputs: the tensors its tokenizer makes (not ``modality`` and the like)."""
    import torch

    return [k for k, v in _tokenize(model, ["a"]).items() if isinstance(v, torch.Tensor)]


def digest(model: Any) -> str:
    """A name for ``model``'s exported file: its layers, weights and the export format."""
    h = hashlib.sha256(f"{FORMAT}\0{_OPSET}\0{model!r}".encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def _model_bytes(model: Any, names: list[str], paths: list[Path]) -> bytes:
    """The ONNX bytes for ``paths[-1]``: ``paths[0]`` is the float32 export, a second
    path its int8 quantization. Each is made (and kept) only where missing."""
    if paths[-1].is_file():
        return paths[-1].read_bytes()
    with tempfile.TemporaryDirectory() as work:
        float32 = paths[0]
        if not float32.is_file():
            float32 = Path(work) / "float32.onnx"
            _export(model, names, str(float32))
            _keep(float32, paths[0])
        if len(paths) == 1:
            return float32.read_bytes()
        int8 = Path(work) / "int8.onnx"
        _quantize(float32, int8)
        _keep(int8, paths[1])
        return int8.read_bytes()


def _keep(made: Path, path: Path) -> None:
    """Copies ``made`` to ``path`` whole or not at all (another process may read it at
    once); a read-only cache keeps nothing, and the next process makes it again."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(made.read_bytes())
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)


def _quantize(source: Path, target: Path) -> None:
    """ONNX Runtime's dynamic quantization: int8 weights, one scale per output channel
    (embeddings at cosine 0.99 of float32 ones on MMLU prompts; 0.95 per tensor)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # It logs advice through the root logger, which would otherwise install a stderr
    # handler in the caller's process (logging.basicConfig); this swallows the advice.
    guard = logging.NullHandler()
    logging.getLogger().addHandler(guard)
    try:
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.getLogger().removeHandler(guard)


def _export(model: Any, names: list[str], target: str) -> None:
    import torch

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            features = dict(zip(names, inputs, strict=True))
            for module in self.model:
                features = module(features)
            return features["sentence_embedding"]

    transformer = getattr(model[0], "auto_model", None)
    if transformer is not None and hasattr(transformer, "set_attn_implementation"):
        transformer.set_attn_implementation("eager")  # plain operators in the graph
    sample = _tokenize(model, ["an example sentence", "a second, longer example sentence"])
    axes = {name: {0: "batch", 1: "tokens"} for name in names}
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the tracer's and the exporter's notices
            torch.onnx.export(
                Pipeline().eval(),
                tuple(sample[name] for name in names),
                target,
                input_names=names,
                output_names=["sentence_embedding"],
                dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
                opset_version=_OPSET,
                dynamo=False,
            )
    except Exception as exc:
        raise ConfigurationError(
            f"could not export the embedding model to ONNX ({type(exc).__name__}: {exc}); "
            "use backend='torch'"
        ) from exc
