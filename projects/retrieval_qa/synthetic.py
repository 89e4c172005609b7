"""A smoke data set in the LLM Science Exam layout whose answers live only in its corpus.

Every article describes an invented substance (name, discoverer, year, city, use, element),
so no question can be answered from general knowledge: the reader must read the retrieved
passage. Distractor articles describe substances no question asks about, and every wrong
option is the same kind of fact taken from another article, so it also appears in the corpus.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from projects.retrieval_qa.data import LETTERS
from shared.synthetic import ensure_generated

SYLLABLES = [
    "zor",
    "vel",
    "ka",
    "tri",
    "mon",
    "sa",
    "ri",
    "quo",
    "len",
    "dra",
    "phi",
    "nex",
    "bel",
    "tor",
    "ix",
    "ul",
    "ga",
    "mer",
    "os",
    "vin",
    "cal",
    "du",
    "ren",
    "yth",
]
KINDS = ["crystal lattice", "polymer", "mineral", "alloy", "enzyme", "compound", "ceramic"]
USES = [
    "thermal insulation",
    "deep-sea sonar",
    "water purification",
    "solar cells",
    "medical imaging",
    "battery anodes",
    "radiation shielding",
    "optical fibres",
    "soil remediation",
    "catalytic converters",
    "bone implants",
    "superconducting magnets",
]
ELEMENTS = [
    "osmium",
    "boron",
    "gallium",
    "cerium",
    "tungsten",
    "lithium",
    "iridium",
    "cobalt",
    "yttrium",
    "niobium",
    "selenium",
    "hafnium",
]
FILLER = [
    "Samples of it are kept in several university collections.",
    "Its properties have been studied for many decades.",
    "Later researchers refined the original measurements.",
    "The material appears in a number of textbooks.",
]
TEMPLATES = {
    "person": ("{e} was first described by {v} in {y}.", "Who first described {e}?"),
    "year": (
        "The first description of {e} dates from {v}.",
        "In which year was {e} first described?",
    ),
    "city": (
        "Early samples of {e} were collected near {v}.",
        "Near which city were early samples of {e} collected?",
    ),
    "use": ("Today {e} is mainly used for {v}.", "What is {e} mainly used for?"),
    "element": (
        "The structure of {e} is rich in {v}.",
        "Which element is the structure of {e} rich in?",
    ),
}


def _word(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(SYLLABLES, n)).capitalize()


def _unique(make, n: int) -> list[str]:
    seen: dict[str, None] = {}
    while len(seen) < n:
        seen.setdefault(make(), None)
    return list(seen)


def generate(n_entities: int, n_distractors: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(corpus `title, text`, questions `id, prompt, A..E, answer, title`)."""
    rng = np.random.default_rng(seed)
    total = n_entities + n_distractors
    names = _unique(lambda: f"{_word(rng, 2)} {rng.choice(KINDS)}", total)
    people = _unique(lambda: f"{_word(rng, 2)} {_word(rng, 3)}", total)
    cities = _unique(lambda: _word(rng, 3), total)
    facts = pd.DataFrame(
        {
            "title": names,
            "person": people,
            "city": cities,
            "year": rng.choice(np.arange(1700, 1990), total, replace=False).astype(str),
            "use": rng.choice(USES, total),
            "element": rng.choice(ELEMENTS, total),
        }
    )
    articles = []
    for _, f in facts.iterrows():
        sentences = [TEMPLATES[a][0].format(e=f.title, v=f[a], y=f.year) for a in TEMPLATES]
        sentences += list(rng.choice(FILLER, 2, replace=False))
        articles.append(" ".join(rng.permutation(sentences)))
    corpus = pd.DataFrame({"title": facts.title, "text": articles, "url": "https://example.org"})

    questions = []
    for i, f in facts.head(n_entities).iterrows():
        for attr in TEMPLATES:
            others = facts.loc[facts.index != i, attr].unique()
            options = list(rng.choice([o for o in others if o != f[attr]], 4, replace=False))
            pos = int(rng.integers(5))
            options.insert(pos, f[attr])
            questions.append(
                {
                    "prompt": TEMPLATES[attr][1].format(e=f.title),
                    **dict(zip(LETTERS, options)),
                    "answer": LETTERS[pos],
                    "title": f.title,
                }
            )
    qdf = pd.DataFrame(questions).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    qdf.insert(0, "id", range(len(qdf)))
    return corpus.sample(frac=1.0, random_state=seed).reset_index(drop=True), qdf


def write_dataset(
    out_dir: str | Path,
    *,
    n_entities: int,
    n_distractors: int,
    test_fraction: float,
    corpus_files: int,
    seed: int,
) -> Path:
    """`train.csv`, `test.csv` (answers kept for scoring), `corpus/*.parquet`, `smoke-gold.csv`."""
    out = Path(out_dir)
    (out / "corpus").mkdir(parents=True, exist_ok=True)
    corpus, questions = generate(n_entities, n_distractors, seed)
    for k, rows in enumerate(np.array_split(np.arange(len(corpus)), corpus_files)):
        corpus.iloc[rows].to_parquet(out / "corpus" / f"wiki-stem-{k:03d}.parquet", index=False)
    n_test = int(len(questions) * test_fraction)
    cols = ["id", "prompt", *LETTERS, "answer"]
    questions.iloc[n_test:][cols].to_csv(out / "train.csv", index=False)
    questions.iloc[:n_test][cols].to_csv(out / "test.csv", index=False)
    questions[["id", "title"]].to_csv(out / "smoke-gold.csv", index=False)
    return out


def ensure_dataset(out_dir: str | Path, **settings) -> Path:
    """Generate the smoke data set into `out_dir` unless it holds it already (never into a
    folder of someone else's files: `shared.synthetic.ensure_generated`)."""
    return ensure_generated(out_dir, write_dataset, **settings)
