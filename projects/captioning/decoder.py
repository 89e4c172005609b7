"""A GPT-2 decoder with cross-attention to visual tokens, written to be read top to bottom.

Token + position embeddings -> n pre-LN blocks (causal self-attention, cross-attention to the
image tokens, MLP) -> final LayerNorm -> output head tied to the token embedding. With
`cross_attention=False` it is exactly GPT-2, and `load_hf_gpt2` copies a Hugging Face
checkpoint into it, checking every key and shape (the cross-attention layers stay freshly
initialised unless the checkpoint has them: a GPT-2 built with `add_cross_attention=True`).

Generation keeps a key/value cache: past self-attention keys/values per layer, and the
cross-attention keys/values of the image, computed once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Per layer: (self_k, self_v, cross_k, cross_v); cross entries are None without cross-attention.
LayerCache = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]


@dataclass
class DecoderConfig:
    """The decoder's shape (configs/captioning/decoder/*.yaml; GPT-2 small in gpt2.yaml)."""

    vocab_size: int | None  # None: the tokenizer's size, filled in by the training pipeline
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int
    dropout: float
    cross_attention: bool
    layer_norm_eps: float
    init: str | None  # a Hugging Face GPT-2 name or folder to copy weights from (load_hf_gpt2)


def _split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    b, t, c = x.shape
    return x.view(b, t, n_head, c // n_head).transpose(1, 2)  # (B, H, T, D)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class SelfAttention(nn.Module):
    """Causal multi-head self-attention; GPT-2's fused c_attn projection."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None):
        q, k, v = self.c_attn(x).split(x.size(-1), dim=2)
        q, k, v = (_split_heads(t, self.n_head) for t in (q, k, v))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        t_q, t_k = q.size(2), k.size(2)
        if t_q == 1:  # one new token attends to everything before it: no mask needed
            mask, causal = None, False
        elif t_q == t_k:
            mask, causal = None, True
        else:  # several new tokens after a cached prefix
            mask = torch.ones(t_q, t_k, dtype=torch.bool, device=x.device).tril(t_k - t_q)
            causal = False
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=causal,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.c_proj(_merge_heads(y)), (k, v)


class CrossAttention(nn.Module):
    """Queries from the text, keys/values from the visual tokens (no mask)."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.q_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.kv_proj = nn.Linear(cfg.n_embd, 2 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout

    def memory_kv(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv_proj(memory).split(memory.size(-1), dim=2)
        return _split_heads(k, self.n_head), _split_heads(v, self.n_head)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = _split_heads(self.q_proj(x), self.n_head)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0
        )
        return self.c_proj(_merge_heads(y))


class MLP(nn.Module):
    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-LN: x + attn(ln(x)); x + cross(ln(x)); x + mlp(ln(x))."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps)
        self.attn = SelfAttention(cfg)
        self.cross = CrossAttention(cfg) if cfg.cross_attention else None
        self.ln_cross = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps) if self.cross else None
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps)
        self.mlp = MLP(cfg)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor | None, cache: LayerCache | None
    ) -> tuple[torch.Tensor, LayerCache]:
        past = None if cache is None else (cache[0], cache[1])
        a, (k, v) = self.attn(self.ln_1(x), past)
        x = x + self.resid_dropout(a)
        ck = cv = None
        if self.cross is not None and memory is not None:
            ck, cv = (
                (cache[2], cache[3])
                if cache is not None and cache[2] is not None
                else self.cross.memory_kv(memory)
            )
            x = x + self.resid_dropout(self.cross(self.ln_cross(x), ck, cv))
        x = x + self.mlp(self.ln_2(x))
        return x, (k, v, ck, cv)


class GPT2Decoder(nn.Module):
    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as in GPT-2
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self,
        idx: torch.Tensor,
        memory: torch.Tensor | None = None,
        cache: list[LayerCache] | None = None,
    ) -> tuple[torch.Tensor, list[LayerCache]]:
        """idx (B, T) token ids, memory (B, N, n_embd) visual tokens -> logits (B, T, vocab).

        With `cache` (from a previous call), idx holds only the new tokens.
        """
        past_len = 0 if cache is None else cache[0][0].size(2)
        t = idx.size(1)
        if past_len + t > self.cfg.n_positions:
            raise ValueError(
                f"sequence of {past_len + t} tokens exceeds n_positions={self.cfg.n_positions}"
            )
        pos = torch.arange(past_len, past_len + t, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(x, memory, None if cache is None else cache[i])
            new_cache.append(layer_cache)
        return self.lm_head(self.ln_f(x)), new_cache


def load_hf_gpt2(decoder: GPT2Decoder, source: str | nn.Module) -> GPT2Decoder:
    """Copy a Hugging Face `GPT2LMHeadModel` (the model, a hub name or a path) into `decoder`.

    Every checkpoint tensor must land on a decoder tensor of the same shape and every decoder
    tensor must be filled (as nanoGPT's `from_pretrained` asserts), else ValueError names the
    keys and shapes: a partial load would train on half-random weights without a word. The one
    exception is cross-attention, which plain GPT-2 lacks: it keeps its fresh init then, and is
    copied when the checkpoint has it (`add_cross_attention=True`). HF's Conv1D stores a
    weight as (in, out); it is transposed into nn.Linear's (out, in).
    """
    if isinstance(source, str):
        from transformers import GPT2LMHeadModel

        source = GPT2LMHeadModel.from_pretrained(source)
    _check_hf_config(decoder.cfg, source.config)
    theirs = source.state_dict()
    ours = decoder.state_dict()  # shares storage with the parameters: copy_ writes into them
    names = {_hf_name(k): k for k in ours}  # HF key -> our key
    if not any(".crossattention." in k for k in theirs):  # plain GPT-2: cross keeps its init
        names = {h: o for h, o in names.items() if not _is_cross(h)}

    missing = sorted(names.keys() - theirs.keys())
    unexpected = sorted(theirs.keys() - names.keys())
    wrong_shape = [
        f"{h}: checkpoint {tuple(theirs[h].shape)} vs decoder {tuple(_hf_shape(h, ours[o]))}"
        for h, o in names.items()
        if h in theirs and theirs[h].shape != _hf_shape(h, ours[o])
    ]
    problems = [
        f"{what} ({len(keys)}): {_few(keys)}"
        for what, keys in (
            ("checkpoint keys the decoder lacks", unexpected),
            ("decoder keys the checkpoint lacks", missing),
            ("shapes that differ (in the checkpoint's layout)", wrong_shape),
        )
        if keys
    ]
    if problems:
        raise ValueError("cannot load the GPT-2 checkpoint: " + "; ".join(problems))
    if not torch.equal(theirs["lm_head.weight"], theirs["transformer.wte.weight"]):
        raise ValueError("checkpoint lm_head.weight is not tied to wte; the decoder ties them")

    with torch.no_grad():
        for h, o in names.items():
            ours[o].copy_(theirs[h].t() if _is_conv1d(h, theirs[h]) else theirs[h])
    return decoder


# Our block's module names -> Hugging Face GPT2Block's (HF fuses cross-attention k,v in c_attn).
_HF_BLOCK_NAMES = {
    "ln_1": "ln_1",
    "attn.c_attn": "attn.c_attn",
    "attn.c_proj": "attn.c_proj",
    "ln_cross": "ln_cross_attn",
    "cross.q_proj": "crossattention.q_attn",
    "cross.kv_proj": "crossattention.c_attn",
    "cross.c_proj": "crossattention.c_proj",
    "ln_2": "ln_2",
    "mlp.c_fc": "mlp.c_fc",
    "mlp.c_proj": "mlp.c_proj",
}


def _hf_name(ours: str) -> str:
    if ours == "lm_head.weight":
        return ours
    block = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(weight|bias)", ours)
    if block:
        i, module, kind = block.groups()
        return f"transformer.h.{i}.{_HF_BLOCK_NAMES[module]}.{kind}"
    return "transformer." + ours


def _is_cross(hf_name: str) -> bool:
    return ".crossattention." in hf_name or ".ln_cross_attn." in hf_name


def _is_conv1d(hf_name: str, t: torch.Tensor) -> bool:
    """Inside a block every 2-D weight is a Conv1D (LayerNorm weights are 1-D)."""
    return hf_name.startswith("transformer.h.") and t.ndim == 2


def _hf_shape(hf_name: str, ours: torch.Tensor) -> torch.Size:
    return ours.t().shape if _is_conv1d(hf_name, ours) else ours.shape


def _few(keys: list[str], n: int = 8) -> str:
    more = f", ... and {len(keys) - n} more" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _check_hf_config(cfg: DecoderConfig, hf) -> None:
    """What shapes cannot show: head count, LayerNorm eps, activation and attention scaling."""
    wanted = {
        "n_head": cfg.n_head,
        "layer_norm_epsilon": cfg.layer_norm_eps,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
    }
    bad = [
        f"{k}={getattr(hf, k)!r} (decoder: {v!r})" for k, v in wanted.items() if getattr(hf, k) != v
    ]
    if hf.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
        bad.append(f"activation_function={hf.activation_function!r} (decoder: tanh GELU)")
    if bad:
        raise ValueError("checkpoint config does not match the decoder: " + ", ".join(bad))
