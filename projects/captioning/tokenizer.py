"""Caption tokenizers behind one interface: GPT-2's BPE (full) or a BPE trained here (smoke).

Both are `tokenizers.Tokenizer` objects with byte-level pre-tokenisation, so the same code
encodes, decodes and saves them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

BOS, EOS, PAD = "<|bos|>", "<|endoftext|>", "<|pad|>"


class CaptionTokenizer:
    def __init__(self, tok: Tokenizer, bos: str, eos: str, pad: str) -> None:
        self.tok = tok
        self.bos_id, self.eos_id, self.pad_id = (tok.token_to_id(t) for t in (bos, eos, pad))
        if None in (self.bos_id, self.eos_id, self.pad_id):
            raise ValueError("tokenizer lacks its BOS/EOS/PAD tokens")

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(" " + text.strip()).ids

    def decode(self, ids: Iterable[int]) -> str:
        special = {self.bos_id, self.eos_id, self.pad_id}
        return self.tok.decode([i for i in ids if i not in special]).strip()

    def token_text(self, i: int) -> str:
        """How one token reads on its own (`</s>` for the end; a bare piece when it decodes to
        nothing, e.g. a lone space marker)."""
        if i == self.eos_id:
            return "</s>"
        return self.tok.decode([i]) or self.tok.id_to_token(i)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.tok.save(str(folder / "tokenizer.json"))

    @classmethod
    def load(cls, folder: Path) -> CaptionTokenizer:
        tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
        return cls(tok, *_specials(tok))


def _specials(tok: Tokenizer) -> tuple[str, str, str]:
    if tok.token_to_id(BOS) is not None:
        return BOS, EOS, PAD
    return EOS, EOS, EOS  # GPT-2 has one special token for all three


def train_bpe(captions: Iterable[str], vocab_size: int) -> CaptionTokenizer:
    """A byte-level BPE fitted on the training captions (offline; smoke runs)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator((" " + c for c in captions), trainer)
    return CaptionTokenizer(tok, BOS, EOS, PAD)


def gpt2_tokenizer(name: str = "gpt2") -> CaptionTokenizer:
    """GPT-2's own BPE (from the Hugging Face hub or a local folder)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name).backend_tokenizer
    return CaptionTokenizer(tok, EOS, EOS, EOS)


def build_tokenizer(tok_cfg, train_captions: list[str]) -> CaptionTokenizer:
    """GPT-2's BPE by name (`kind: gpt2`) or a byte-level BPE trained on the captions (`bpe`)."""
    if tok_cfg.kind == "bpe":
        return train_bpe(train_captions, tok_cfg.vocab_size)
    if tok_cfg.kind == "gpt2":
        return gpt2_tokenizer(tok_cfg.name)
    raise ValueError(f"tokenizer.kind must be bpe or gpt2, got {tok_cfg.kind!r}")
