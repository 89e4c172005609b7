"""Training specifics: a frozen backbone keeps its BatchNorm statistics, and the checkpoint
kept is the epoch with the best validation score, not the last."""

from dataclasses import replace

import mlflow
import pytest
import torch

from projects.captioning import module as module_mod
from projects.captioning.data import CaptionDataModule, load_captions
from projects.captioning.decoder import DecoderConfig
from projects.captioning.grounding import read_scenes
from projects.captioning.model import Captioner
from projects.captioning.module import CaptionModule, check_select, fit
from projects.captioning.synthetic import ensure_dataset
from projects.captioning.tokenizer import train_bpe
from shared.config import ConfigError
from shared.pretrained import resolve_preprocessing

TINY_DECODER = DecoderConfig(
    vocab_size=300,
    n_positions=32,
    n_embd=16,
    n_layer=1,
    n_head=2,
    dropout=0.0,
    cross_attention=True,
    layer_norm_eps=1e-5,
    init=None,
)
OPTIM = {"lr": 1e-3, "weight_decay": 0.01, "warmup_fraction": 0.0, "min_lr_factor": 0.1}


def _bn_means(backbone: torch.nn.Module) -> list[torch.Tensor]:
    return [m.running_mean.clone() for m in backbone.modules() if hasattr(m, "running_mean")]


def _step(module: CaptionModule) -> None:
    images = torch.rand(2, 3, 32, 32)
    seq = torch.tensor([[1, 5, 6, 2, 0], [1, 7, 2, 0, 0]])
    module.training_step((images, seq, torch.tensor([4, 3])), 0)


def test_frozen_backbone_keeps_its_batchnorm_statistics():
    torch.manual_seed(0)
    module = CaptionModule(Captioner("test_resnet", False, TINY_DECODER), OPTIM, 0.0, 1)
    module.log = lambda *a, **k: None  # no trainer here
    backbone = module.model.encoder.backbone
    before = _bn_means(backbone)
    module.on_train_epoch_start()  # epoch 0 < freeze_epochs: frozen
    module.train()  # as Lightning does after each validation
    assert not backbone.training and module.model.decoder.training
    assert not any(p.requires_grad for p in backbone.parameters())
    _step(module)
    assert all(torch.equal(a, b) for a, b in zip(before, _bn_means(backbone)))
    module.set_backbone_frozen(False)  # what epoch >= freeze_epochs does
    _step(module)
    assert backbone.training
    assert not all(torch.equal(a, b) for a, b in zip(before, _bn_means(backbone)))


@pytest.fixture(scope="module")
def tiny_setup(tiny):
    cfg = tiny("captioning", "trainer.max_epochs=3", "select=cider_d")
    ensure_dataset(cfg.data.dir, **dict(cfg.data.synthetic))
    frame, _ = load_captions(cfg.data)
    tok = train_bpe([c for caps in frame["tokens"] for c in caps], 300)
    model = Captioner("test_vit", False, replace(TINY_DECODER, vocab_size=tok.vocab_size))
    pre = resolve_preprocessing(model.encoder.data_config(), cfg.data)
    dm = CaptionDataModule(frame, tok, cfg.data, pre, cfg.decoding.eval_batch_size)
    return cfg, tok, model, dm


def test_fit_restores_the_epoch_with_the_best_val_score(tiny_setup, monkeypatch):
    cfg, tok, model, dm = tiny_setup
    scripted, states = iter([0.1, 0.9, 0.2]), []

    def fake_scores(refs, caps):  # scripted val CIDEr-D; remembers the weights it scored
        states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {"cider_d": next(scripted)}

    monkeypatch.setattr(module_mod, "caption_scores", fake_scores)
    module = CaptionModule(model, OPTIM, 0.0, 0)
    with mlflow.start_run():
        chosen = fit(module, dm, tok, cfg, read_scenes(cfg.data.dir))
    assert chosen["best_epoch"] == 1 and chosen["best_epoch_val_cider_d"] == pytest.approx(0.9)
    restored = model.state_dict()
    assert all(torch.equal(restored[k], states[1][k]) for k in restored)
    assert not all(torch.equal(restored[k], states[2][k]) for k in restored)  # not the last


def test_fit_selects_on_val_grounding_when_asked(tiny_setup, tiny, monkeypatch):
    """`select=grounding` on generated data: the epoch with the best val grounding wins even
    where CIDEr-D prefers another (the captions' wording is not what the image shows)."""
    _, tok, model, dm = tiny_setup
    cfg = tiny("captioning", "trainer.max_epochs=3", "select=grounding")
    ciders, groundings, states = iter([0.9, 0.1, 0.2]), iter([0.2, 0.1, 0.8]), []

    def fake_scores(refs, caps):
        states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return {"cider_d": next(ciders)}

    monkeypatch.setattr(module_mod, "caption_scores", fake_scores)
    monkeypatch.setattr(module_mod, "grounding", lambda caps, truths: next(groundings))
    scenes = read_scenes(cfg.data.dir)
    with mlflow.start_run() as run:
        chosen = fit(CaptionModule(model, OPTIM, 0.0, 0), dm, tok, cfg, scenes)
    assert chosen["best_epoch"] == 2 and chosen["best_epoch_val_grounding"] == pytest.approx(0.8)
    restored = model.state_dict()
    assert all(torch.equal(restored[k], states[2][k]) for k in restored)
    logged = mlflow.tracking.MlflowClient().get_run(run.info.run_id).data.metrics
    assert {"epoch_val_cider_d", "epoch_val_grounding"} <= set(logged)


def test_a_selection_score_that_cannot_be_computed_fails_naming_the_key():
    with pytest.raises(ConfigError, match="'select': grounding needs generated data"):
        check_select("grounding", has_scenes=False)
    with pytest.raises(ConfigError, match="'select': 'bleu' is not one of"):
        check_select("bleu")  # before any data is read or generated
    check_select("cider_d", has_scenes=False)  # real data: fine
    check_select("grounding")  # scenes not known yet: only the name is checked
