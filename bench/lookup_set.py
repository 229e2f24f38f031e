"""Write the glossary-lookup eval set over Debian's dict-foldoc (issue: glossary lookups).

Headwords are sampled two ways: the 120 most cross-referenced terms of the dictionary (common
terms such as "memory" or "Unix", which lose to compounds without a term index) and 150 at random
(seeded). Each is asked in one of several phrasings, rotated, so no phrasing dominates. The
expected entries are every document whose title or alias is the headword (homonyms included).

    python bench/lookup_set.py /usr/share/dictd/foldoc.index eval/foldoc_lookups.jsonl
"""

from __future__ import annotations

import collections
import gzip
import json
import random
import re
import sys
from pathlib import Path

from chatbot.corpus import dictd_data_path
from chatbot.readers import read_dictd
from chatbot.terms import normalize

PHRASINGS = (
    "What is {a}{x}?",
    "What does {x} mean?",
    "Define {x}.",
    "{x}?",
    "Explain {x} in computing.",
    "What is meant by {x}?",
    "Tell me about {x}.",
    "What's {a}{x}?",
    "meaning of {x}",
    "Can you define {x}?",
)
_WORDY = re.compile(r"^[A-Za-z][A-Za-z0-9+#.' -]{1,40}$")


def article(term: str) -> str:
    if term[:1].isupper() or (len(term.split()) > 1 and term.split()[0][:1].isupper()):
        return ""
    return "an " if term[0].lower() in "aeiou" else "a "


def main(index_path: Path, out: Path, n_common: int = 120, n_random: int = 150) -> None:
    docs = read_dictd(index_path, index_path.read_bytes())
    by_key: dict[str, list[str]] = collections.defaultdict(list)
    for d in docs:
        for t in dict.fromkeys([d.title, *d.terms]):
            by_key[normalize(t)].append(d.doc_id)
    raw = gzip.decompress(dictd_data_path(index_path).read_bytes()).decode("utf-8", "replace")
    refs = collections.Counter(normalize(m) for m in re.findall(r"\{([^{}]+)\}", raw))
    eligible = [
        d.title
        for d in docs
        if _WORDY.match(d.title) and len(d.title.split()) <= 4 and len(d.text) > 120
    ]
    titles = {normalize(t): t for t in eligible}
    common = [titles[k] for k, _ in refs.most_common() if k in titles][:n_common]
    rng = random.Random(20261125)
    rest = sorted(set(titles.values()) - set(common))
    chosen = common + rng.sample(rest, n_random)
    with out.open("w", encoding="utf-8") as fh:
        for n, term in enumerate(chosen):
            template = PHRASINGS[n % len(PHRASINGS)]
            question = template.format(x=term, a=article(term))
            question = question[0].upper() + question[1:]
            item = {
                "id": f"lookup-{n:03d}",
                "question": question,
                "answerable": True,
                "category": "lookup-common" if n < len(common) else "lookup-random",
                "entries": sorted(set(by_key[normalize(term)])),
                "evidence": [],
                "facts": [],
            }
            fh.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"{len(chosen)} lookups ({len(common)} common, {n_random} random) -> {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
