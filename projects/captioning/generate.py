"""Greedy and beam-search decoding over the decoder's key/value cache.

Any `StepDecoder` decodes: `model(tokens, memory, cache) -> (logits (B, T, vocab), cache)`,
as `GPT2Decoder` does. With `use_cache=False` every step re-runs the whole prefix (the slow
reference for tests and the cache benchmark); a model that keeps no cache returns None and is
given the whole prefix every step too.
"""

from __future__ import annotations

from typing import Protocol

import torch

# Per layer, a tuple of tensors (or None) whose first dimension is the batch row.
Cache = list[tuple[torch.Tensor | None, ...]]


class StepDecoder(Protocol):
    def __call__(
        self, idx: torch.Tensor, memory: torch.Tensor, cache: Cache | None
    ) -> tuple[torch.Tensor, Cache | None]: ...


def _step(
    model: StepDecoder,
    memory: torch.Tensor,
    tokens: torch.Tensor,
    cache: Cache | None,
    use_cache: bool,
) -> tuple[torch.Tensor, Cache | None]:
    """Log-probabilities of the next token for every row, and the model's new cache."""
    if use_cache and cache is not None:
        logits, cache = model(tokens[:, -1:], memory, cache)
    else:
        logits, cache = model(tokens, memory, None)
    return torch.log_softmax(logits[:, -1].float(), dim=-1), cache


@torch.no_grad()
def greedy(
    model: StepDecoder,
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
        logp, cache = _step(model, memory, tokens, cache, use_cache)
        nxt = logp.argmax(-1).masked_fill(done, eos)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        done |= nxt == eos
        if done.all():
            break
    return [_strip(row.tolist()[1:], eos) for row in tokens]


@torch.no_grad()
def beam_search(
    model: StepDecoder,
    memory: torch.Tensor,
    bos: int,
    eos: int,
    max_len: int,
    beam_size: int = 3,
    length_penalty: float = 1.0,
    use_cache: bool = True,
    n_best: int | None = None,
) -> list[list[int]] | list[list[tuple[float, list[int]]]]:
    """Beam search for a whole batch of images at once; returns token ids without BOS/EOS.

    With `n_best`, each image gets its n best hypotheses instead, as (score, ids) best first
    (the demo shows the beams next to the caption); the default output is unchanged.

    The decoder runs on (batch x beam) rows, row i * beam_size + j holding beam j of image i.
    A hypothesis scores sum(log p) / length ** length_penalty, its length counting the EOS.
    An image stops once it has `beam_size` finished hypotheses and no open beam can still beat
    the worst of them. Beams still open at `max_len` join the finished ones, as in Hugging
    Face's beam search: else one early EOS would beat every caption that runs to `max_len`.
    """
    b, k, device = memory.size(0), beam_size, memory.device
    memory = memory.repeat_interleave(k, dim=0)
    tokens = torch.full((b * k, 1), bos, dtype=torch.long, device=device)
    scores = torch.full((b, k), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one live beam per image at first, or step 1 would pick k copies
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]  # best first
    done = [False] * b
    cache = None
    for step in range(max_len):
        length = step + 1  # tokens generated, counting the one chosen now
        logp, cache = _step(model, memory, tokens, cache, use_cache)
        vocab = logp.size(-1)
        cand = (scores.view(-1, 1) + logp).view(b, k * vocab)
        # 2k candidates hold at least k that are not EOS (each beam has only one EOS).
        top_scores, top_idx = cand.topk(min(2 * k, k * vocab), dim=1)
        top_beam, top_tok = top_idx // vocab, top_idx % vocab
        is_eos = top_tok == eos

        # An EOS among an image's k best candidates finishes a hypothesis.
        eos_at = is_eos[:, :k].nonzero().tolist()
        cand_scores, cand_beams = (top_scores.tolist(), top_beam.tolist()) if eos_at else ([], [])
        for i, j in eos_at:
            if not done[i] and cand_scores[i][j] > float("-inf"):
                ids = tokens[i * k + cand_beams[i][j], 1:].tolist()
                hyp = (cand_scores[i][j] / length**length_penalty, ids)
                finished[i] = _best(finished[i] + [hyp], k)

        # The k best candidates that are not EOS carry on; the cache follows their rows.
        scores, pick = top_scores.masked_fill(is_eos, float("-inf")).topk(k, dim=1)
        rows = (torch.arange(b, device=device)[:, None] * k + top_beam.gather(1, pick)).view(-1)
        tokens = torch.cat([tokens[rows], top_tok.gather(1, pick).view(-1, 1)], dim=1)
        cache = _reorder(cache, rows)

        # An open beam's log p only falls; with a positive penalty a longer caption divides
        # it by more, so its best reachable score is at max_len, else at the current length.
        best_open = scores.max(dim=1).values.tolist()
        best_len = max_len if length_penalty > 0 else length
        for i in range(b):
            done[i] = done[i] or (
                len(finished[i]) == k
                and finished[i][-1][0] >= best_open[i] / best_len**length_penalty
            )
        if all(done):
            break

    open_scores = scores.tolist()
    open_ids = tokens[:, 1:].tolist()
    out = []
    for i in range(b):
        pool = finished[i]
        if not done[i]:  # beams still open at max_len compete with the finished ones
            pool = pool + [
                (s / max_len**length_penalty, open_ids[i * k + j])
                for j, s in enumerate(open_scores[i])
                if s > float("-inf")
            ]
        out.append(_best(pool, n_best) if n_best else max(pool, key=lambda f: f[0])[1])
    return out


def _best(pool: list[tuple[float, list[int]]], n: int) -> list[tuple[float, list[int]]]:
    """The n best (score, ids) hypotheses, best first."""
    return sorted(pool, key=lambda f: -f[0])[:n]


def _reorder(cache: Cache | None, rows: torch.Tensor) -> Cache | None:
    """Every cached tensor follows the beams to their new rows."""
    if cache is None:
        return None
    return [tuple(None if t is None else t.index_select(0, rows) for t in layer) for layer in cache]


def _strip(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos)] if eos in ids else ids


@torch.no_grad()
def token_probabilities(
    model: StepDecoder, memory: torch.Tensor, bos: int, eos: int, ids: list[int]
) -> list[float]:
    """P(token | image, prefix) for each token of `ids` and the closing EOS, in one
    teacher-forced decoder pass (memory: one image's (1, N, d) visual tokens)."""
    seq = torch.tensor([[bos, *ids, eos]], dtype=torch.long, device=memory.device)
    logits, _ = model(seq[:, :-1], memory, None)
    probs = torch.softmax(logits[0].float(), dim=-1)
    return probs.gather(1, seq[0, 1:, None])[:, 0].tolist()
