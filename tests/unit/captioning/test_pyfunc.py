"""The registered model carries the preprocessing training used, not fixed 0.5 / 224."""

import base64
import io
import math
from dataclasses import replace
from types import SimpleNamespace

import pandas as pd
import torch
from omegaconf import OmegaConf
from PIL import Image
from torchvision.transforms import v2

from projects.captioning.model import Captioner
from projects.captioning.pyfunc import CaptionModel, build_bundle
from projects.captioning.tokenizer import train_bpe
from tests.unit.captioning.test_module import TINY_DECODER

PRE = {"image_size": 40, "interpolation": "bicubic", "mean": [0.4, 0.45, 0.5], "std": [0.2] * 3}


def test_bundle_carries_the_preprocessing_and_serves_with_it(tmp_path):
    tok = train_bpe(["a red circle on the left", "a blue square"] * 10, 280)
    torch.manual_seed(0)
    model = Captioner("test_resnet", False, replace(TINY_DECODER, vocab_size=tok.vocab_size))
    cfg = OmegaConf.create(
        {
            "encoder": {"name": "test_resnet"},
            "decoding": {"beam_size": 2, "length_penalty": 0.7, "max_len": 5, "eval_batch_size": 2},
        }
    )
    bundle = build_bundle(tmp_path / "b", model, tok, cfg, model.decoder.cfg, PRE)
    served = CaptionModel()
    served.load_context(SimpleNamespace(artifacts={"bundle": str(bundle)}))
    ops = {type(t): t for t in served.transform.transforms}
    assert ops[v2.Resize].size == [40, 40]
    assert ops[v2.Resize].interpolation == v2.InterpolationMode.BICUBIC
    assert ops[v2.Normalize].mean == PRE["mean"] and ops[v2.Normalize].std == PRE["std"]
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, format="PNG")
    out = served.predict(None, pd.DataFrame({"image": [base64.b64encode(buf.getvalue()).decode()]}))
    assert len(out) == 1 and isinstance(out[0], str)
    # The beams the demo explains are the ones `predict` decodes: the best is its caption, and
    # its score is the summed log-probability of its tokens over the length penalty.
    image = Image.open(io.BytesIO(buf.getvalue()))
    beams, tokens = served.explain(image)
    assert len(beams) == 2 and beams[0]["caption"] == out[0]
    for beam in beams:
        own = [t for t in tokens if t["beam"] == beam["beam"]]
        ended = own[-1]["token"] == "</s>"
        assert ended == (len(own) - ended < 5)  # max_len 5: a beam of 5 tokens was cut off
        assert all(0 < t["probability"] <= 1 for t in own)
        logp = sum(math.log(t["probability"]) for t in own)
        assert abs(beam["score"] - logp / len(own) ** 0.7) < 1e-4
