import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from projects.captioning.decoder import DecoderConfig, GPT2Decoder, load_hf_gpt2

SMALL = dict(vocab_size=97, n_positions=40, n_embd=48, n_layer=2, n_head=4)


def _hf(seed: int = 0, **overrides) -> GPT2LMHeadModel:
    """A small HF GPT-2 with seeded noise on every tensor: random init leaves biases at 0 and
    LayerNorm weights at 1, as ours, so a loader that skipped them would still match."""
    torch.manual_seed(seed)
    cfg = GPT2Config(**{**SMALL, **overrides}, bos_token_id=0, eos_token_id=1)
    model = GPT2LMHeadModel(cfg).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():  # each tied tensor once
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return model


def _ours(cross: bool, **overrides) -> GPT2Decoder:
    cfg = DecoderConfig(
        **{**SMALL, **overrides}, dropout=0.0, cross_attention=cross, layer_norm_eps=1e-5, init=None
    )
    return GPT2Decoder(cfg).eval()


@pytest.fixture(scope="module")
def hf():
    return _hf()


@pytest.fixture(scope="module")
def hf_cross():
    return _hf(seed=5, add_cross_attention=True)


def test_logits_match_a_perturbed_transformers_gpt2_with_cross_attention_off(hf):
    ours = load_hf_gpt2(_ours(cross=False), hf)
    idx = torch.randint(0, SMALL["vocab_size"], (3, 21))
    with torch.no_grad():
        theirs = hf(idx).logits
        mine, _ = ours(idx)
    assert theirs.std() > 0.1  # the noise reached the logits
    assert torch.allclose(mine, theirs, atol=1e-4)


def test_gpt2_weights_load_into_the_cross_attention_model_which_keeps_its_init(hf):
    """Same GPT-2 weights, cross-attention present but given no image: still GPT-2."""
    ours = _ours(cross=True)
    fresh = ours.blocks[1].cross.kv_proj.weight.clone()
    load_hf_gpt2(ours, hf)
    idx = torch.randint(0, SMALL["vocab_size"], (2, 9))
    with torch.no_grad():
        assert torch.allclose(ours(idx)[0], hf(idx).logits, atol=1e-4)
    assert torch.equal(ours.blocks[1].cross.kv_proj.weight, fresh)


def test_cross_attention_logits_match_transformers_with_encoder_hidden_states(hf_cross):
    ours = load_hf_gpt2(_ours(cross=True), hf_cross)
    idx = torch.randint(0, SMALL["vocab_size"], (3, 11))
    memory = torch.randn(3, 7, SMALL["n_embd"])
    with torch.no_grad():
        theirs = hf_cross(idx, encoder_hidden_states=memory).logits
        mine, _ = ours(idx, memory)
        without_image = hf_cross(idx).logits
    assert (theirs - without_image).abs().max() > 0.1  # the image matters
    assert torch.allclose(mine, theirs, atol=1e-4)


def test_the_cached_cross_attention_path_matches_transformers_too(hf_cross):
    ours = load_hf_gpt2(_ours(cross=True), hf_cross)
    idx = torch.randint(0, SMALL["vocab_size"], (2, 8))
    memory = torch.randn(2, 5, SMALL["n_embd"])
    with torch.no_grad():
        theirs = hf_cross(idx, encoder_hidden_states=memory).logits
        logits, cache = ours(idx[:, :5], memory)
        steps = [logits]
        for t in range(5, 8):
            logits, cache = ours(idx[:, t : t + 1], memory, cache)
            steps.append(logits)
    assert torch.allclose(torch.cat(steps, dim=1), theirs, atol=1e-4)


@pytest.mark.parametrize(
    "theirs, ours, message",
    [
        pytest.param(
            dict(n_layer=3),
            dict(cross=False),
            r"checkpoint keys the decoder lacks \(12\): transformer\.h\.2\.attn\.c_attn\.bias",
            id="deeper checkpoint",
        ),
        pytest.param(
            dict(n_layer=1),
            dict(cross=False),
            r"decoder keys the checkpoint lacks \(12\): transformer\.h\.1\.attn\.c_attn\.bias",
            id="shallower checkpoint",
        ),
        pytest.param(
            dict(),
            dict(cross=False, n_positions=32),
            r"transformer\.wpe\.weight: checkpoint \(40, 48\) vs decoder \(32, 48\)",
            id="shorter n_positions",
        ),
        pytest.param(
            dict(),
            dict(cross=False, n_positions=64),
            r"transformer\.wpe\.weight: checkpoint \(40, 48\) vs decoder \(64, 48\)",
            id="longer n_positions",
        ),
        pytest.param(
            dict(),
            dict(cross=False, n_embd=64),
            r"h\.0\.attn\.c_attn\.weight: checkpoint \(48, 144\) vs decoder \(64, 192\)",
            id="different width",
        ),
        pytest.param(
            dict(),
            dict(cross=False, vocab_size=50),
            r"transformer\.wte\.weight: checkpoint \(97, 48\) vs decoder \(50, 48\)",
            id="different vocabulary",
        ),
        pytest.param(
            dict(add_cross_attention=True),
            dict(cross=False),
            r"checkpoint keys the decoder lacks \(16\): transformer\.h\.0\.crossattention\.c_attn",
            id="cross-attention checkpoint into a plain decoder",
        ),
        pytest.param(
            dict(),
            dict(cross=False, n_head=6),
            r"n_head=4 \(decoder: 6\)",
            id="same shapes, other head count",
        ),
        pytest.param(
            dict(activation_function="relu"),
            dict(cross=False),
            r"activation_function='relu'",
            id="other activation",
        ),
        pytest.param(
            dict(tie_word_embeddings=False),
            dict(cross=False),
            r"lm_head\.weight is not tied",
            id="untied output head",
        ),
    ],
)
def test_a_checkpoint_that_does_not_fit_is_refused_and_nothing_is_copied(theirs, ours, message):
    decoder = _ours(**ours)
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        load_hf_gpt2(decoder, _hf(**theirs))
    assert all(torch.equal(v, before[k]) for k, v in decoder.state_dict().items())


def test_a_long_list_of_keys_is_cut_short_in_the_message():
    with pytest.raises(
        ValueError, match=r"lacks \(24\): transformer\.h\.2\..*, \.\.\. and 16 more$"
    ):
        load_hf_gpt2(_ours(cross=False, n_layer=2), _hf(n_layer=4))


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


def test_too_long_a_sequence_is_refused():
    with pytest.raises(ValueError, match="n_positions"):
        _ours(cross=False)(torch.zeros(1, 41, dtype=torch.long))
