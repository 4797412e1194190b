"""Answer normalisation: the official VQA rules (per string and per polars column) and InfoSeek's SQuAD rules.

VQA rules (vqaEval.py, current revision): newlines and tabs become spaces and the ends are
stripped; each punctuation mark is deleted when it touches a space or the text has a
digit-comma-digit, otherwise it becomes a space; a period not followed by a digit is deleted, at
most 32 of them (the evaluator passes `re.UNICODE`, 32, where `re.sub` takes its count); then,
word by word, lower-cased, number words become digits, articles are dropped and known
contractions get their apostrophe back.

InfoSeek (SQuAD rules): lower case, every ASCII punctuation mark deleted, the words a/an/the
dropped, whitespace collapsed.
"""

from __future__ import annotations

import re
import string

import polars as pl

PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
ARTICLES = {"a", "an", "the"}
CONTRACTIONS = {
    "aint": "ain't",
    "arent": "aren't",
    "cant": "can't",
    "couldve": "could've",
    "couldnt": "couldn't",
    "couldn'tve": "couldn't've",
    "couldnt've": "couldn't've",
    "didnt": "didn't",
    "doesnt": "doesn't",
    "dont": "don't",
    "hadnt": "hadn't",
    "hadnt've": "hadn't've",
    "hadn'tve": "hadn't've",
    "hasnt": "hasn't",
    "havent": "haven't",
    "hed": "he'd",
    "hed've": "he'd've",
    "he'dve": "he'd've",
    "hes": "he's",
    "howd": "how'd",
    "howll": "how'll",
    "hows": "how's",
    "Id've": "I'd've",
    "I'dve": "I'd've",
    "Im": "I'm",
    "Ive": "I've",
    "isnt": "isn't",
    "itd": "it'd",
    "itd've": "it'd've",
    "it'dve": "it'd've",
    "itll": "it'll",
    "let's": "let's",
    "maam": "ma'am",
    "mightnt": "mightn't",
    "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've",
    "mightve": "might've",
    "mustnt": "mustn't",
    "mustve": "must've",
    "neednt": "needn't",
    "notve": "not've",
    "oclock": "o'clock",
    "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at",
    "shant": "shan't",
    "shed've": "she'd've",
    "she'dve": "she'd've",
    "she's": "she's",
    "shouldve": "should've",
    "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll",
    "somebodys": "somebody's",
    "someoned": "someone'd",
    "someoned've": "someone'd've",
    "someone'dve": "someone'd've",
    "someonell": "someone'll",
    "someones": "someone's",
    "somethingd": "something'd",
    "somethingd've": "something'd've",
    "something'dve": "something'd've",
    "somethingll": "something'll",
    "thats": "that's",
    "thered": "there'd",
    "thered've": "there'd've",
    "there'dve": "there'd've",
    "therere": "there're",
    "theres": "there's",
    "theyd": "they'd",
    "theyd've": "they'd've",
    "they'dve": "they'd've",
    "theyll": "they'll",
    "theyre": "they're",
    "theyve": "they've",
    "twas": "'twas",
    "wasnt": "wasn't",
    "wed've": "we'd've",
    "we'dve": "we'd've",
    "weve": "we've",
    "werent": "weren't",
    "whatll": "what'll",
    "whatre": "what're",
    "whats": "what's",
    "whatve": "what've",
    "whens": "when's",
    "whered": "where'd",
    "wheres": "where's",
    "whereve": "where've",
    "whod": "who'd",
    "whod've": "who'd've",
    "who'dve": "who'd've",
    "wholl": "who'll",
    "whos": "who's",
    "whove": "who've",
    "whyll": "why'll",
    "whyre": "why're",
    "whys": "why's",
    "wont": "won't",
    "wouldve": "would've",
    "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've",
    "yall": "y'all",
    "yall'll": "y'all'll",
    "y'allll": "y'all'll",
    "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've",
    "youd": "you'd",
    "youd've": "you'd've",
    "you'dve": "you'd've",
    "youll": "you'll",
    "youre": "you're",
    "youve": "you've",
}
_COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
PERIODS_REMOVED_AT_MOST = 32
_SQUAD_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCTUATION = str.maketrans("", "", string.punctuation)
_WHITESPACE = r"[\s\x1c-\x1f]"  # what Python's str.strip() and str.split() treat as whitespace


def strip_whitespace(text: str) -> str:
    """Newlines and tabs to spaces, ends stripped: the evaluator's first step on every answer."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str) -> str:
    """The evaluator's punctuation step (see the module docstring), 32-period limit included."""
    out = text
    for mark in PUNCTUATION:
        if (mark + " " in text or " " + mark in text) or _COMMA_BETWEEN_DIGITS.search(text) is not None:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=PERIODS_REMOVED_AT_MOST)


def process_digit_article(text: str) -> str:
    """The evaluator's word step: lower case, number words to digits, no articles, contractions fixed."""
    words = []
    for word in text.lower().split():
        word = NUMBER_WORDS.get(word, word)
        if word not in ARTICLES:
            words.append(word)
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


def normalize_answer(text: str) -> str:
    """One answer, normalised exactly as the official evaluator does."""
    return process_digit_article(process_punctuation(strip_whitespace(text)))


def squad_normalize(text: str) -> str:
    """InfoSeek's answer normalisation (the SQuAD rules): lower case, no punctuation or articles, single spaces."""
    return " ".join(_SQUAD_ARTICLES.sub(" ", text.lower().translate(_ASCII_PUNCTUATION)).split())


def normalize_column(frame: pl.LazyFrame, column: str, output: str) -> pl.LazyFrame:
    """Add `output`: `column` normalised, as a chain of polars steps (no Python per row).

    Each step reads the previous step's column by name, so the plan stays linear in the number
    of punctuation marks instead of nesting one expression inside the next.
    """
    work = f"__{output}_work"
    stripped = pl.col(column).str.replace_all("[\n\t]", " ").str.replace_all(f"^{_WHITESPACE}+|{_WHITESPACE}+$", "")
    frame = frame.with_columns(stripped.alias(work))
    frame = frame.with_columns(pl.col(work).alias(f"{work}_in"), pl.col(work).str.contains(r"\d,\d").alias(f"{work}_dc"))
    source, digit_comma = pl.col(f"{work}_in"), pl.col(f"{work}_dc")
    for mark in PUNCTUATION:
        touches_space = source.str.contains(mark + " ", literal=True) | source.str.contains(" " + mark, literal=True)
        current = pl.col(work)
        frame = frame.with_columns(
            pl.when(touches_space | digit_comma)
            .then(current.str.replace_all(mark, "", literal=True))
            .otherwise(current.str.replace_all(mark, " ", literal=True))
            .alias(work)
        )
    # The first 32 periods not followed by a digit go (polars' regex has no look-ahead: protect the others).
    current = (
        pl.col(work)
        .str.replace_all(r"\.(\d)", "\x00$1")
        .str.replace(".", "", literal=True, n=PERIODS_REMOVED_AT_MOST)
        .str.replace_all("\x00", ".", literal=True)
    )
    words = (
        current.str.to_lowercase()
        .str.replace_all(f"{_WHITESPACE}+", " ")
        .str.split(" ")
        .list.eval(pl.element().filter(pl.element() != ""))
        .list.eval(pl.element().replace(NUMBER_WORDS))
        .list.eval(pl.element().filter(~pl.element().is_in(sorted(ARTICLES))))
        .list.eval(pl.element().replace(CONTRACTIONS))
    )
    return frame.with_columns(words.list.join(" ").alias(output)).drop(work, f"{work}_in", f"{work}_dc")
