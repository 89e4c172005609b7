"""Greedy and beam-search decoding over the decoder's key/value cache.

`step_fn(tokens, cache) -> (logits of the last position, new cache)` hides the model; with
`use_cache=False` every step re-runs the whole prefix (the slow reference for tests and the
cache benchmark).
"""

from __future__ import annotations

import torch

from projects.captioning.decoder import GPT2Decoder, LayerCache


def _step(
    model: GPT2Decoder,
    memory: torch.Tensor,
    tokens: torch.Tensor,
    cache: list[LayerCache] | None,
    use_cache: bool,
):
    if use_cache and cache is not None:
        logits, cache = model(tokens[:, -1:], memory, cache)
    else:
        logits, cache = model(tokens, memory, None)
    return logits[:, -1].float(), cache


@torch.no_grad()
def greedy(
    model: GPT2Decoder,
    memory: torch.Tensor,
    bos: int,
    eos: int,
    max_len: int,
    use_cache: bool = True,
) -> list[list[int]]:
    """Argmax decoding for a batch of images; returns token ids without BOS/EOS."""
    b = memory.size(0)
    tokens = torch.full((b, 1), bos, dtype=torch.long, device=memory.device)
    done = torch.zeros(b, dtype=torch.bool, device=memory.device)
    cache = None
    for _ in range(max_len):
        logits, cache = _step(model, memory, tokens, cache, use_cache)
        nxt = logits.argmax(-1).masked_fill(done, eos)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        done |= nxt == eos
        if done.all():
            break
    return [_strip(row.tolist()[1:], eos) for row in tokens]


@torch.no_grad()
def beam_search(
    model: GPT2Decoder,
    memory: torch.Tensor,
    bos: int,
    eos: int,
    max_len: int,
    beam_size: int = 3,
    length_penalty: float = 1.0,
    use_cache: bool = True,
) -> list[list[int]]:
    """Beam search per image; a finished hypothesis scores sum(log p) / length ** penalty."""
    return [
        _beam_one(model, memory[i : i + 1], bos, eos, max_len, beam_size, length_penalty, use_cache)
        for i in range(memory.size(0))
    ]


def _beam_one(model, memory, bos, eos, max_len, beam_size, length_penalty, use_cache):
    device = memory.device
    tokens = torch.full((1, 1), bos, dtype=torch.long, device=device)
    scores = torch.zeros(1, device=device)
    finished: list[tuple[float, list[int]]] = []
    cache = None
    for step in range(max_len):
        mem = memory.expand(tokens.size(0), -1, -1)
        logits, cache = _step(model, mem, tokens, cache, use_cache)
        logp = torch.log_softmax(logits, dim=-1)
        cand = (scores[:, None] + logp).view(-1)
        top = cand.topk(min(2 * beam_size, cand.numel()))
        vocab = logp.size(-1)
        keep_rows, keep_tok, keep_scores = [], [], []
        for score, flat in zip(top.values.tolist(), top.indices.tolist()):
            row, tok = divmod(flat, vocab)
            if tok == eos:
                length = step + 1
                finished.append((score / length**length_penalty, tokens[row, 1:].tolist()))
            else:
                keep_rows.append(row)
                keep_tok.append(tok)
                keep_scores.append(score)
            if len(keep_rows) == beam_size:
                break
        best_finished = max((f[0] for f in finished), default=float("-inf"))
        best_open = max(keep_scores, default=float("-inf")) / (step + 1) ** length_penalty
        if not keep_rows or (len(finished) >= beam_size and best_finished >= best_open):
            break
        rows = torch.tensor(keep_rows, device=device)
        tokens = torch.cat([tokens[rows], torch.tensor(keep_tok, device=device)[:, None]], dim=1)
        scores = torch.tensor(keep_scores, device=device)
        if cache is not None:  # reorder every layer's cache to follow the surviving beams
            cache = [tuple(None if t is None else t[rows] for t in layer) for layer in cache]
    if not finished:  # nothing ended within max_len: take the best open beam
        finished = [
            (s / max_len**length_penalty, t[1:]) for s, t in zip(scores.tolist(), tokens.tolist())
        ]
    return max(finished, key=lambda f: f[0])[1]


def _strip(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos)] if eos in ids else ids
