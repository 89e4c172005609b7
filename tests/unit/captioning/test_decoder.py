import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from projects.captioning.decoder import DecoderConfig, GPT2Decoder, load_hf_gpt2
from projects.captioning.generate import beam_search, greedy

SMALL = dict(vocab_size=97, n_positions=40, n_embd=48, n_layer=2, n_head=4)
OURS = dict(layer_norm_eps=1e-5, init=None)  # DecoderConfig fields GPT2Config names otherwise


@pytest.fixture(scope="module")
def hf():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(**SMALL, bos_token_id=0, eos_token_id=1)).eval()


def _ours(cross: bool) -> GPT2Decoder:
    return GPT2Decoder(DecoderConfig(**SMALL, **OURS, dropout=0.0, cross_attention=cross)).eval()


def test_logits_match_transformers_gpt2_with_cross_attention_off(hf):
    ours = load_hf_gpt2(_ours(cross=False), hf)
    idx = torch.randint(0, SMALL["vocab_size"], (3, 21))
    with torch.no_grad():
        theirs = hf(idx).logits
        mine, _ = ours(idx)
    assert torch.allclose(mine, theirs, atol=1e-4)


def test_gpt2_weights_load_into_the_cross_attention_model(hf):
    """Same GPT-2 weights, cross-attention present but given no image: still GPT-2."""
    ours = load_hf_gpt2(_ours(cross=True), hf)
    idx = torch.randint(0, SMALL["vocab_size"], (2, 9))
    with torch.no_grad():
        assert torch.allclose(ours(idx)[0], hf(idx).logits, atol=1e-4)


def test_wrong_vocabulary_size_is_refused(hf):
    bad = GPT2Decoder(
        DecoderConfig(**{**SMALL, "vocab_size": 50}, **OURS, dropout=0.0, cross_attention=False)
    )
    with pytest.raises(ValueError, match="vocab_size"):
        load_hf_gpt2(bad, hf)


def test_incremental_decoding_with_the_cache_matches_a_full_forward():
    torch.manual_seed(1)
    model = _ours(cross=True)
    memory = torch.randn(2, 5, SMALL["n_embd"])
    idx = torch.randint(0, SMALL["vocab_size"], (2, 8))
    with torch.no_grad():
        full, _ = model(idx, memory)
        logits, cache = model(idx[:, :3], memory)
        steps = [logits]
        for t in range(3, 8):
            logits, cache = model(idx[:, t : t + 1], memory, cache)
            steps.append(logits)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)


def test_a_cached_prefix_plus_several_new_tokens_matches_too():
    torch.manual_seed(2)
    model = _ours(cross=True)
    memory = torch.randn(1, 4, SMALL["n_embd"])
    idx = torch.randint(0, SMALL["vocab_size"], (1, 10))
    with torch.no_grad():
        full, _ = model(idx, memory)
        _, cache = model(idx[:, :4], memory)
        rest, _ = model(idx[:, 4:], memory, cache)
    assert torch.allclose(rest, full[:, 4:], atol=1e-5)


def _trained_like_model():
    torch.manual_seed(3)
    model = _ours(cross=True)
    with torch.no_grad():  # sharpen the output distribution so decoding has clear choices
        model.lm_head.weight.mul_(20)
    return model, torch.randn(3, 6, SMALL["n_embd"])


def test_kv_cache_generation_equals_uncached_generation():
    model, memory = _trained_like_model()
    a = greedy(model, memory, bos=0, eos=1, max_len=12, use_cache=True)
    b = greedy(model, memory, bos=0, eos=1, max_len=12, use_cache=False)
    assert a == b
    c = beam_search(model, memory, 0, 1, 12, beam_size=3, use_cache=True)
    d = beam_search(model, memory, 0, 1, 12, beam_size=3, use_cache=False)
    assert c == d


def test_beam_size_one_equals_greedy():
    model, memory = _trained_like_model()
    assert beam_search(model, memory, 0, 1, 12, beam_size=1, length_penalty=0.0) == greedy(
        model, memory, 0, 1, 12
    )


def test_too_long_a_sequence_is_refused():
    with pytest.raises(ValueError, match="n_positions"):
        _ours(cross=False)(torch.zeros(1, 41, dtype=torch.long))
