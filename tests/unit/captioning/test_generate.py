import itertools

import numpy as np
import pytest
import torch

from projects.captioning.decoder import DecoderConfig, GPT2Decoder
from projects.captioning.generate import beam_search, greedy, token_probabilities

BOS, EOS, A, B = 0, 1, 2, 3


class Scripted:
    """A caption model whose next-token distribution is a fixed table keyed by the caption so
    far (BOS dropped): listed tokens get their probability, the rest share what is left (a
    prefix not in the table: uniform). It ignores the image and keeps no cache."""

    def __init__(self, table: dict[tuple[int, ...], dict[int, float]], vocab_size: int = 4):
        self.table, self.vocab_size = table, vocab_size

    def logp(self, prefix: tuple[int, ...]) -> torch.Tensor:
        listed = self.table.get(prefix, {})
        rest = (1.0 - sum(listed.values())) / (self.vocab_size - len(listed))
        return torch.tensor([listed.get(t, rest) for t in range(self.vocab_size)]).log()

    def __call__(self, idx, memory, cache):
        rows = [self.logp(tuple(row[1:])) for row in idx.tolist()]
        return torch.stack(rows)[:, None, :], None

    def score(self, ids: list[int], eos: bool) -> float:
        """sum(log p) of a caption, with its closing EOS or without (cut at max_len)."""
        steps = ids + [EOS] if eos else ids
        return sum(self.logp(tuple(steps[:t]))[tok].item() for t, tok in enumerate(steps))


def _no_image(batch: int = 1) -> torch.Tensor:
    return torch.zeros(batch, 1, 1)


def test_a_caption_still_open_at_max_len_beats_an_early_eos():
    """P(EOS first) = 0.3, else "a" at 0.99 every step: "a a a a a" (-0.40) beats "" (-1.20)."""
    model = Scripted({(): {EOS: 0.3, A: 0.7 * 0.99}} | {(A,) * n: {A: 0.99} for n in range(1, 6)})
    assert model.score([], eos=True) == pytest.approx(-1.20, abs=0.01)
    assert model.score([A] * 5, eos=False) == pytest.approx(-0.41, abs=0.01)
    assert greedy(model, _no_image(), BOS, EOS, max_len=5) == [[A] * 5]
    for penalty in (0.0, 0.7, 1.0):
        assert beam_search(model, _no_image(), BOS, EOS, 5, 3, penalty) == [[A] * 5]


# "b" then EOS: log p -0.62 over 2 tokens; "a a a a" then EOS: log p -1.09 over 5 tokens.
SHORT_OR_LONG = Scripted(
    {(): {B: 0.6, A: 0.35}, (B,): {EOS: 0.9}}
    | {(A,) * n: {A: 0.99} for n in range(1, 4)}
    | {(A,) * 4: {EOS: 0.99}}
)


@pytest.mark.parametrize(
    "penalty, winner",
    [(-1.0, [B]), (0.0, [B]), (0.5, [B]), (1.0, [A] * 4), (2.0, [A] * 4)],
)
def test_the_length_penalty_decides_between_a_short_and_a_long_caption(penalty, winner):
    """Scores -0.62 / 2**p and -1.09 / 5**p: the long caption wins once p > 0.62."""
    short, long = SHORT_OR_LONG.score([B], eos=True), SHORT_OR_LONG.score([A] * 4, eos=True)
    assert (long / 5**penalty > short / 2**penalty) == (winner == [A] * 4)
    assert beam_search(SHORT_OR_LONG, _no_image(), BOS, EOS, 8, 2, penalty) == [winner]


def test_the_search_goes_on_while_a_longer_caption_can_still_win():
    """EOS first (-0.69 over 1 token) leads "a" (-0.80) at step 1, but with penalty 1 an "a a a
    a a" (-0.84 over 5 tokens) wins: stopping must not judge open beams at their current length."""
    model = Scripted({(): {EOS: 0.5, A: 0.45}} | {(A,) * n: {A: 0.99} for n in range(1, 5)})
    assert greedy(model, _no_image(), BOS, EOS, 5) == [[]]
    assert beam_search(model, _no_image(), BOS, EOS, 5, 1, length_penalty=1.0) == [[A] * 5]
    assert beam_search(model, _no_image(), BOS, EOS, 5, 1, length_penalty=0.0) == [[]]


class RandomTable(Scripted):
    """Every prefix gets its own seeded random next-token distribution."""

    def logp(self, prefix: tuple[int, ...]) -> torch.Tensor:
        gen = torch.Generator().manual_seed(7920 + hash(prefix) % 2**31)
        return torch.log_softmax(torch.randn(self.vocab_size, generator=gen), dim=0)


@pytest.mark.parametrize("penalty, open_wins", [(0.0, True), (0.7, True), (-0.5, False)])
def test_a_beam_wide_enough_for_every_prefix_finds_the_exhaustive_best(penalty, open_wins):
    """3 tokens besides EOS, max_len 4: a beam of 4**4 keeps every candidate at every step, so
    beam search must return the best of all captions, finished or cut at max_len (with this
    table a caption cut at max_len is the best one for p >= 0, the empty caption for p < 0)."""
    model, max_len = RandomTable({}), 4
    others = [t for t in range(model.vocab_size) if t != EOS]
    captions = [
        (model.score(list(ids), eos=n < max_len) / (n + (n < max_len)) ** penalty, list(ids))
        for n in range(max_len + 1)
        for ids in itertools.product(others, repeat=n)
    ]
    best = max(captions)[1]
    assert (len(best) == max_len) == open_wins
    assert beam_search(model, _no_image(), BOS, EOS, max_len, 4**max_len, penalty) == [best]


def _random_decoder():
    """Random init, but wide (std 0.3, noisy biases and LayerNorms) and with 23 tokens, so
    captions differ between images and some end with EOS before max_len while others do not."""
    torch.manual_seed(3)
    cfg = DecoderConfig(
        vocab_size=23,
        n_positions=40,
        n_embd=48,
        n_layer=2,
        n_head=4,
        dropout=0.0,
        cross_attention=True,
        layer_norm_eps=1e-5,
        init=None,
    )
    model = GPT2Decoder(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3) if p.ndim == 2 else p.add_(0.1 * torch.randn_like(p))
    return model, torch.randn(5, 6, cfg.n_embd)


def test_a_batch_of_images_decodes_as_each_image_alone():
    model, memory = _random_decoder()
    batched = beam_search(model, memory, 0, 1, 12, beam_size=3, length_penalty=0.7)
    alone = [beam_search(model, m[None], 0, 1, 12, 3, 0.7)[0] for m in memory]
    assert batched == alone
    assert len({tuple(c) for c in batched}) == len(batched)  # a caption of its own per image
    assert any(len(c) < 12 for c in batched) and any(len(c) == 12 for c in batched)


def test_kv_cache_generation_equals_uncached_generation():
    model, memory = _random_decoder()
    a = greedy(model, memory, bos=0, eos=1, max_len=12, use_cache=True)
    b = greedy(model, memory, bos=0, eos=1, max_len=12, use_cache=False)
    assert a == b
    c = beam_search(model, memory, 0, 1, 12, beam_size=3, use_cache=True)
    d = beam_search(model, memory, 0, 1, 12, beam_size=3, use_cache=False)
    assert c == d


def test_beam_size_one_equals_greedy():
    model, memory = _random_decoder()
    beam = beam_search(model, memory, 0, 1, 8, beam_size=1, length_penalty=0.0)
    assert beam == greedy(model, memory, 0, 1, 8)
    assert any(len(c) < 8 for c in beam) and any(len(c) == 8 for c in beam)


def test_n_best_lists_the_beams_best_first_and_its_head_is_the_default_caption():
    model = SHORT_OR_LONG
    for penalty in (0.0, 1.0):
        default = beam_search(model, _no_image(2), BOS, EOS, 6, 3, penalty)
        ranked = beam_search(model, _no_image(2), BOS, EOS, 6, 3, penalty, n_best=3)
        assert len(ranked) == 2
        for image, best in zip(ranked, default, strict=True):
            assert [ids for _, ids in image][0] == best
            scores = [s for s, _ in image]
            assert scores == sorted(scores, reverse=True) and 1 < len(scores) <= 3


def test_token_probabilities_are_the_decoders_teacher_forced_softmax():
    dec, images = _random_decoder()
    memory = images[:1]
    probs = token_probabilities(dec, memory, 0, 1, [5, 7])
    assert len(probs) == 3  # two tokens and the EOS
    logits, _ = dec(torch.tensor([[0, 5, 7]]), memory, None)
    expected = torch.softmax(logits[0], -1)[[0, 1, 2], [5, 7, 1]]
    np.testing.assert_allclose(probs, expected.detach().numpy(), rtol=1e-5)


@pytest.mark.parametrize("penalty", [0.0, 0.7, 1.3])
def test_every_beam_score_matches_the_exhaustive_enumeration(penalty):
    """Not only the winner: with a beam that keeps every prefix, the n best (score, caption)
    pairs are the enumeration's n best, a caption cut at max_len scored over max_len tokens and a
    finished one over its tokens plus the EOS."""
    model, max_len = RandomTable({}), 4
    others = [t for t in range(model.vocab_size) if t != EOS]
    captions = sorted(
        (
            (model.score(list(ids), eos=n < max_len) / (n + (n < max_len)) ** penalty, list(ids))
            for n in range(max_len + 1)
            for ids in itertools.product(others, repeat=n)
        ),
        key=lambda c: -c[0],
    )
    got = beam_search(model, _no_image(), BOS, EOS, max_len, 4**max_len, penalty, n_best=12)[0]
    assert [ids for _, ids in got] == [ids for _, ids in captions[:12]]
    np.testing.assert_allclose([s for s, _ in got], [s for s, _ in captions[:12]], rtol=1e-5)
