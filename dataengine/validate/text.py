"""Text for the spatial trainer: a BPE tokenizer trained on the release's own text (HF `tokenizers`,
saved as tokenizer.json beside the checkpoint), and the prompt / target layout of QA and QRA.

Layout (ids): QA   `<q> question <a>` -> `answer <eos>`
              QRA  `<q> question <r>` -> `rationale <a> answer <eos>`
The answer of a generated QRA continuation is what follows its last `<a>`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAD, QUESTION, RATIONALE, ANSWER, EOS = "<pad>", "<q>", "<r>", "<a>", "<eos>"
SPECIALS = [PAD, QUESTION, RATIONALE, ANSWER, EOS]  # ids 0..4, in this order
TOKENIZER = "tokenizer.json"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024) -> Any:
    """A byte-level BPE tokenizer fitted to `texts` (every string decodes back exactly)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def load_tokenizer(path: str | Path) -> Any:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


@dataclass
class Formatter:
    """Turns (question, rationale, answer) into prompt and target ids, and generated ids back into text."""

    tokenizer: Any

    def __post_init__(self) -> None:
        ids = [self.tokenizer.token_to_id(token) for token in SPECIALS]
        if ids != list(range(len(SPECIALS))):
            raise ValueError(f"tokenizer: the special tokens {SPECIALS} must be ids 0..{len(SPECIALS) - 1}, found {ids}")
        self.pad, self.question, self.rationale, self.answer, self.eos = ids

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i >= len(SPECIALS)], skip_special_tokens=True).strip()

    def prompt(self, question: str, with_rationale: bool) -> list[int]:
        return [self.question, *self.encode(question.strip()), self.rationale if with_rationale else self.answer]

    def target(self, answer: str, rationale: str | None) -> list[int]:
        answer_ids = [*self.encode(" " + answer.strip()), self.eos]
        if rationale is None:
            return answer_ids
        return [*self.encode(" " + rationale.strip()), self.answer, *answer_ids]

    def split(self, generated: list[int], with_rationale: bool) -> tuple[str | None, str]:
        """(rationale, answer) of a generated continuation; a QRA one without `<a>` has no answer."""
        if not with_rationale:
            return None, self.decode(generated)
        if self.answer not in generated:
            return self.decode(generated), ""
        cut = len(generated) - 1 - generated[::-1].index(self.answer)
        return self.decode(generated[:cut]), self.decode(generated[cut + 1 :])
