"""The ONNX Runtime path of the embedder: a one-time export of the sentence-transformers
pipeline, and an encoder that runs it with only ``onnxruntime`` and ``tokenizers`` imported.

The export is made once per weights hash and precision under ``cache_dir/embedding-onnx/`` with
the TorchScript exporter and eager attention, whose BERT graph ONNX Runtime's transformer
optimizer fuses (attention, skip-layer-norm, bias-GELU); the dynamo exporter's SDPA graph spends a
quarter of its time in ``Where``/``IsNaN`` masking and does not fuse (fp32: 1.15x torch fused,
0.95x unfused). ``int8`` then quantizes the weights per output channel with dynamic activation
scales. Each export is written to a temp folder, checked against torch's vectors for a few probe
texts and only then renamed into place.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from chatbot.errors import EmbeddingError

log = logging.getLogger(__name__)

Precision = Literal["fp32", "int8"]
ONNX_CACHE_FOLDER = "embedding-onnx"
# Bump when export_onnx writes something different: older exports are then made again.
# 2: TorchScript export with eager attention, fused by ONNX Runtime's BERT optimizer.
ONNX_EXPORT_FORMAT = 2
ONNX_FILE = "model.onnx"
ONNX_META_FILE = "export.json"
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# An export is kept only if it agrees with torch this well. fp32 shares torch's fingerprint;
# int8 measured >= 0.983 on 1,000 dict-foldoc chunks and >= 0.98 on the probe texts.
ONNX_MIN_COSINE: dict[Precision, float] = {"fp32": 0.999, "int8": 0.97}
# Part of the int8 fingerprint: bump when the quantization recipe changes the vectors.
INT8_RECIPE = "onnx-int8-v1"
PROBE_TEXTS = (
    "A base model is a pre-trained network used as a starting point.",
    "How do I reset my password?",
    "x",
    "Retrieval-augmented generation cites the passages it used. " * 40,  # past max_seq_length
)


def onnx_available() -> bool:
    """Whether the ONNX path can run at all: ``auto`` must not pay for a doomed export attempt."""
    return all(
        importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx", "onnxscript")
    )


def _traceable_pipeline(st: Any, names: Sequence[str]) -> Any:
    """The torch module that is traced: the whole sentence-transformers pipeline.

    Tracing the pipeline itself (transformer, pooling, normalise) rather than re-writing the
    pooling keeps the ONNX graph right for whatever modules the model folder lists.
    """
    import torch

    class Pipeline(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors: Any) -> Any:
            features: dict[str, Any] = dict(zip(names, tensors, strict=True))
            features["modality"] = "text"
            return self.st(features)["sentence_embedding"]

    return Pipeline().eval()


def _hf_model(st: Any) -> Any:
    """The transformers model inside a sentence-transformers pipeline, or None."""
    first = st[0]
    return getattr(first, "auto_model", None) or getattr(first, "model", None)


def _export_graph(st: Any, names: list[str], sample: dict[str, Any], path: Path) -> None:
    """fp32 ONNX graph of the pipeline with dynamic batch and length.

    Eager attention and the TorchScript exporter give the plain BERT graph that ONNX Runtime's
    optimizer fuses; should that exporter be gone, the dynamo one is used (slower, unfused).
    """
    import torch

    hf = _hf_model(st)
    if hf is not None and hasattr(hf, "set_attn_implementation"):
        with contextlib.suppress(Exception):  # a model without eager attention keeps its own
            hf.set_attn_implementation("eager")
    module, args = _traceable_pipeline(st, names), tuple(sample[k] for k in names)
    common: dict[str, Any] = {"input_names": names, "output_names": ["sentence_embedding"]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=False,
                opset_version=17,
                dynamic_axes={n: {0: "batch", 1: "seq"} for n in names}
                | {"sentence_embedding": {0: "batch"}},
                **common,
            )
            return
        except Exception as exc:
            log.info("TorchScript ONNX export failed (%s); using the dynamo exporter", exc)
        batch = torch.export.Dim("batch")
        seq = torch.export.Dim("seq", max=int(st.max_seq_length))
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=True,
            dynamic_shapes={"tensors": tuple({0: batch, 1: seq} for _ in names)},
            external_data=False,
            verbose=False,
            **common,
        )


def _fuse(path: Path, hf_config: Any) -> bool:
    """Fuse attention, layer norms and GELU in place with ONNX Runtime's BERT optimizer.

    Best effort: a graph it does not recognise is left as it is (it still runs, unfused).
    """
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        heads = int(getattr(hf_config, "num_attention_heads", 0) or 0)
        hidden = int(getattr(hf_config, "hidden_size", 0) or 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = optimize_model(str(path), "bert", num_heads=heads, hidden_size=hidden)
        model.save_model_to_file(str(path))
        return bool(model.get_fused_operator_statistics().get("Attention"))
    except Exception as exc:
        log.info("ONNX graph fusion skipped: %s", exc)
        return False


def _first_ffn_down_projection(path: Path) -> list[str]:
    """The first feed-forward output projection (a MatMul whose weight narrows, e.g.
    1536 -> 384), or nothing when the graph has none."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    for node in model.graph.node:
        weight = shapes.get(node.input[1]) if node.op_type == "MatMul" else None
        if weight is not None and len(weight) == 2 and weight[0] > weight[1]:
            return [node.name]
    return []


def _quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8: weights int8 per output channel, activations scaled per call.

    Per-channel scales keep the vectors close to torch's (per-tensor scales dropped the worst
    cosine from 0.98 to 0.90 on dict-foldoc chunks). The token-embedding table and the first
    layer's feed-forward output stay fp32: of MiniLM's 25 quantizable nodes these two moved the
    vectors most (mean 1 - cosine 0.0066 -> 0.0050 on chunks and eval questions) and cost
    ~2% of the speed; with everything quantized one out-of-scope question crossed the
    relevance threshold.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    quiet = logging.Filter("nothing")  # its notes go to the root logger; named loggers pass
    root.addFilter(quiet)
    try:
        quantize_dynamic(
            str(src),
            str(dst),
            op_types_to_quantize=["MatMul", "Attention"],
            nodes_to_exclude=_first_ffn_down_projection(src),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=False,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.removeFilter(quiet)


def export_onnx(model_path: Path, out_dir: Path, precision: Precision = "fp32") -> None:
    """Run ``export_here`` in a child process and wait for it.

    Exporting imports torch, sentence-transformers and the exporters and peaks near 1.4 GB;
    in a child, none of that stays in the process that goes on to build the index or serve
    questions (a first build otherwise kept torch resident and peaked at 1.45 GB).
    """
    code = "import sys; from chatbot.embedding import onnx_export; onnx_export.main(sys.argv[1:])"
    args = [sys.executable, "-c", code, str(model_path), str(out_dir), precision]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise EmbeddingError(f"ONNX export failed: {lines[-1] if lines else done.returncode}")


def export_here(model_path: str | Path, out_dir: str | Path, precision: str = "fp32") -> None:
    """Write ``model.onnx`` (fp32 or int8, dynamic batch and length), the tokenizer and
    export.json into ``out_dir``.

    export.json keeps torch's vectors for a few probe texts, and the export is only returned
    once ONNX Runtime reproduces them (within ``ONNX_MIN_COSINE`` for its precision).
    """
    import torch
    from sentence_transformers import SentenceTransformer

    if precision not in ONNX_MIN_COSINE:
        raise EmbeddingError(f"unknown ONNX precision {precision!r}")
    out_dir = Path(out_dir)
    st = SentenceTransformer(str(model_path), device="cpu", local_files_only=True).eval()
    reference = st.encode(
        list(PROBE_TEXTS), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    sample = st.preprocess(["a short sample", "a somewhat longer sample sentence to trace"])
    names = [k for k in ONNX_INPUTS if k in sample]
    max_len, dim = st.max_seq_length, st.get_embedding_dimension()
    if max_len is None or dim is None:
        raise EmbeddingError("model has no max_seq_length or dimension to export with")
    fp32 = out_dir / ("model-fp32.onnx" if precision == "int8" else ONNX_FILE)
    _export_graph(st, names, sample, fp32)
    hf = _hf_model(st)
    fused = _fuse(fp32, getattr(hf, "config", None))
    if precision == "int8":
        _quantize_int8(fp32, out_dir / ONNX_FILE)
        fp32.unlink()
    tokenizer = st.tokenizer
    tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    if not (out_dir / "tokenizer" / "tokenizer.json").is_file():
        raise EmbeddingError("the model's tokenizer has no tokenizer.json (not a fast tokenizer)")
    meta = {
        "format": ONNX_EXPORT_FORMAT,
        "precision": precision,
        "fused_attention": fused,
        "max_seq_length": int(max_len),
        "dim": int(dim),
        "inputs": names,
        "pad_token": tokenizer.pad_token,
        "pad_token_id": int(tokenizer.pad_token_id or 0),
        "torch": torch.__version__,
        "probe_vectors": np.asarray(reference, dtype=np.float32).round(6).tolist(),
    }
    (out_dir / ONNX_META_FILE).write_text(json.dumps(meta))
    OnnxEncoder(out_dir).check_against_torch()


def main(argv: list[str]) -> None:
    """The child process of ``export_onnx``: MODEL_DIR OUT_DIR PRECISION."""
    model_path, out_dir, precision = argv
    export_here(model_path, out_dir, precision)


class OnnxEncoder:
    """ONNX Runtime sessions plus the tokenizer.

    Only ``onnxruntime`` and ``tokenizers`` are imported (not torch, not transformers): the
    ``tokenizer.json`` saved with the export gives the same ids, masks and padding as the
    model's fast tokenizer.

    fp32 batches texts like sentence-transformers does (sorted by length, so each batch pads to
    similar lengths) on one session using every core. int8 runs one text per call: its
    activation scales are taken over the whole input, padding included, so in a batch a text's
    vector would depend on its neighbours (cosine 0.993 between a sentence alone and beside a
    256-token text); one at a time, every vector is a function of its text alone, as a query's
    is. Single texts are too small to split well across cores, so int8 runs ``workers``
    sessions side by side on alternate texts, each on its share of the cores: on 2 cores two
    1-thread sessions embedded 183-192 dict-foldoc chunks/s where one 2-thread session did
    124-171/s (and one 1-thread session 92-97/s).
    """

    def __init__(self, folder: Path, workers: int | None = None) -> None:
        from tokenizers import Tokenizer

        meta = json.loads((folder / ONNX_META_FILE).read_text())
        if meta.get("format") != ONNX_EXPORT_FORMAT:
            raise EmbeddingError(
                f"ONNX export format {meta.get('format')} is not {ONNX_EXPORT_FORMAT}"
            )
        self.folder = folder
        self.precision: Precision = "int8" if meta.get("precision") == "int8" else "fp32"
        self.dim = int(meta["dim"])
        self.max_length = int(meta["max_seq_length"])
        self.probe_vectors = np.asarray(meta["probe_vectors"], dtype=np.float32)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer" / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.enable_padding(
            pad_id=int(meta.get("pad_token_id", 0)), pad_token=str(meta.get("pad_token", "[PAD]"))
        )
        cores = max(1, os.cpu_count() or 1)
        if workers is None:
            workers = min(2, cores) if self.precision == "int8" else 1
        self.sessions = [self._session(max(1, cores // workers)) for _ in range(workers)]
        self.session = self.sessions[0]
        self.inputs = [i.name for i in self.session.get_inputs()]
        self._pool = ThreadPoolExecutor(workers) if workers > 1 else None

    def _session(self, threads: int) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        return ort.InferenceSession(
            str(self.folder / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )

    def _features(self, texts: list[str]) -> dict[str, np.ndarray]:
        encodings = self.tokenizer.encode_batch(texts)
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        return {name: np.asarray(columns[name], dtype=np.int64) for name in self.inputs}

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Unit vectors, in the order of ``texts``."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if self.precision == "int8":
            self._encode_one_by_one(texts, out)
        else:
            order = np.argsort([-len(t) for t in texts], kind="stable")
            for start in range(0, len(texts), batch_size):
                rows = order[start : start + batch_size]
                feed = self._features([texts[i] for i in rows])
                out[rows] = self.session.run(None, feed)[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def _encode_one_by_one(self, texts: Sequence[str], out: np.ndarray) -> None:
        step = len(self.sessions) if self._pool is not None and len(texts) > 1 else 1

        def work(worker: int) -> None:
            session = self.sessions[worker]
            for i in range(worker, len(texts), step):
                out[i] = session.run(None, self._features([texts[i]]))[0][0]

        if step == 1:
            work(0)
        else:
            assert self._pool is not None
            list(self._pool.map(work, range(step)))

    def check_against_torch(self) -> float:
        """Lowest cosine to the torch vectors stored at export time; a mismatch means do not use."""
        got = self.encode(list(PROBE_TEXTS), batch_size=len(PROBE_TEXTS))
        worst = float(np.min(np.sum(got * self.probe_vectors, axis=1)))
        if worst < ONNX_MIN_COSINE[self.precision]:
            raise EmbeddingError(f"ONNX vectors differ from torch (cosine {worst:.5f})")
        return worst


def _export_is_complete(folder: Path, precision: Precision = "fp32") -> bool:
    """Published by this exporter format: an older one is made again, not half-trusted."""
    meta = folder / ONNX_META_FILE
    if not (meta.is_file() and (folder / ONNX_FILE).is_file()):
        return False
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    return data.get("format") == ONNX_EXPORT_FORMAT and data.get("precision", "fp32") == precision


def discard_export(folder: Path) -> None:
    """Move a stale export aside before deleting it, so no reader sees half a folder."""
    if not folder.exists():
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}-old-", dir=folder.parent))
    try:
        os.replace(folder, aside / folder.name)
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def export_folder_name(weights_hash: str, precision: Precision) -> str:
    return weights_hash if precision == "fp32" else f"{weights_hash}-{precision}"


def onnx_export_folder(
    model_path: Path, cache_dir: Path, weights_hash: str, precision: Precision = "fp32"
) -> Path:
    """The cached export for these weights and precision, made (once) if missing.

    The export goes to a temp folder beside the target and is renamed into place only after it
    matched torch, so a crash, a full disk or a second process never leaves half an export
    there; when two processes race, the first rename wins and the other one uses its result.
    """
    name = export_folder_name(weights_hash, precision)
    final = cache_dir / ONNX_CACHE_FOLDER / name
    if _export_is_complete(final, precision):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=final.parent))
    try:
        log.info("exporting the embedding model to ONNX %s under %s (once)", precision, final)
        if precision == "fp32":
            export_onnx(model_path, tmp)
        else:
            export_onnx(model_path, tmp, precision)
        if not _export_is_complete(final, precision):  # another process may have published
            discard_export(final)
        try:
            os.replace(tmp, final)
        except OSError:
            if not _export_is_complete(final, precision):  # not a lost race: a real error
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
