"""Language detection: lingua alone, CLD2 alone, and what the normalizer does (CLD2 first).

    python bench/language.py [--testdata DIR] [--per-cell 500] [--languages en,fi,et,sv,de,ru,el]

For each language prints the share of texts each detector gets right (and, in brackets, gets
wrong: "" for unsure is neither) on three kinds of text, then the time a text per kind:

- word pairs, sentences of 60 characters or fewer, and 200-character runs of sentences (what a
  mail's sample is).

The texts are held out: with --testdata, a directory laid out as lingua's test data
(`<code>/testdata/sentences.txt` and `word-pairs.txt`, as in lingua-rs's language-models/,
which lingua was not trained on); without it, the demo desk's own sentences
(inbox/demo/generate.py), which make a small set. Texts with fewer letters than the
normalizer's minimum are left out, as it leaves them out.

A benchmark, not a test: it exits 1 only when the normalizer's detector answers worse than
lingua alone on some kind of text (the point of asking CLD2 first is to lose nothing).
"""

from __future__ import annotations

import argparse
import itertools
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import _checkout  # noqa: F401  (first: see bench/_checkout.py)

from inbox.config import DEFAULT_LANGUAGES
from inbox.demo.generate import LANGUAGES
from inbox.normalize import language

KINDS = ("word pairs", "short (<= 60)", "long (200)")
LETTER = re.compile(r"[^\W\d_]")
Detector = Callable[[str], str]


def lingua_alone(candidates: tuple[str, ...]) -> Detector:
    return lambda text: language.lingua_guess(text[: language.SAMPLE_CHARS], candidates)


def cld2_alone(candidates: tuple[str, ...]) -> Detector:
    """CLD2 on every text, however short or mixed: what it would answer on its own."""
    return lambda text: language.cld2_guess(
        text[: language.SAMPLE_CHARS], candidates, min_chars=0, min_percent=0
    )


def ours(candidates: tuple[str, ...]) -> Detector:
    return lambda text: language.detect_language(text, candidates)


def runs_of(sentences: list[str], length: int) -> list[str]:
    runs, current = [], ""
    for sentence in sentences:
        current = f"{current} {sentence}".strip()
        if len(current) >= length:
            runs.append(current[:length])
            current = ""
    return runs


def texts_for(code: str, testdata: Path | None, per_cell: int) -> dict[str, list[str]]:
    if testdata is not None:
        folder = testdata / code / "testdata"
        if not folder.is_dir():
            folder = testdata / code
        sentences = _lines(folder / "sentences.txt")
        pairs = _lines(folder / "word-pairs.txt")
    else:
        demo = next(item for item in LANGUAGES if item.code == code)
        sentences = list(demo.sentences) + list(demo.subjects)
        words = " ".join(demo.sentences).split()
        pairs = [f"{a} {b}" for a, b in itertools.pairwise(words)]
        # Runs of sentences in several orders, so that the long kind has more than one text.
        sentences += [" ".join(demo.sentences[i:] + demo.sentences[:i]) for i in range(6)]
    kinds = {
        "word pairs": pairs,
        "short (<= 60)": [s for s in sentences if len(s) <= 60],
        "long (200)": runs_of(sentences * (1 if testdata else 4), 200),
    }
    return {
        kind: [t for t in texts if len(LETTER.findall(t[:200])) >= language.MIN_LETTERS][:per_cell]
        for kind, texts in kinds.items()
    }


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--testdata", type=Path, default=None)
    parser.add_argument("--per-cell", type=int, default=500)
    parser.add_argument("--languages", default=",".join(DEFAULT_LANGUAGES))
    args = parser.parse_args()
    codes = tuple(sorted(args.languages.split(",")))
    if args.testdata is None:
        codes = tuple(c for c in codes if any(item.code == c for item in LANGUAGES))
    detectors = {
        "lingua alone": lingua_alone(codes),
        "CLD2 alone": cld2_alone(codes),
        "CLD2 first, then lingua (ours)": ours(codes),
    }
    for detect in detectors.values():
        detect("warm up the models with a sentence long enough for every detector to answer")
    source = str(args.testdata) if args.testdata else "the demo desk's own sentences"
    print(f"held texts: {source}; languages {', '.join(codes)}")
    right: dict[tuple[str, str], list[float]] = {}
    seconds: dict[tuple[str, str], list[float]] = {}
    for kind in KINDS:
        print(f"\n{kind}: right % (wrong %)")
        print(f"  {'detector':<32}" + "".join(f"{code:>12}" for code in codes) + "      mean")
        cells: dict[str, list[str]] = {name: [] for name in detectors}
        for code in codes:
            texts = texts_for(code, args.testdata, args.per_cell)[kind]
            if not texts:
                sys.exit(f"no {kind} texts for {code}")
            for name, detect in detectors.items():
                started = time.perf_counter()
                answers = [detect(text) for text in texts]
                seconds.setdefault((name, kind), []).append(
                    (time.perf_counter() - started) / len(texts)
                )
                share = sum(a == code for a in answers) / len(texts)
                wrong = sum(a not in ("", code) for a in answers) / len(texts)
                right.setdefault((name, kind), []).append(share)
                cells[name].append(f"{share * 100:6.1f}({wrong * 100:3.0f})")
        for name in detectors:
            mean = statistics.mean(right[(name, kind)]) * 100
            print(f"  {name:<32}" + "".join(f"{cell:>12}" for cell in cells[name]) + f"{mean:9.1f}")
    print("\ntime a text, µs: " + ", ".join(KINDS))
    for name in detectors:
        figures = [statistics.mean(seconds[(name, kind)]) * 1e6 for kind in KINDS]
        print(f"  {name:<32}" + "".join(f"{figure:10.1f}" for figure in figures))
    worse = [
        kind
        for kind in KINDS
        if statistics.mean(right[("CLD2 first, then lingua (ours)", kind)])
        < statistics.mean(right[("lingua alone", kind)]) - 0.005
    ]
    if worse:
        print(f"\nours answers worse than lingua alone on: {', '.join(worse)}")
        sys.exit(1)
    print("\nours answers as well as lingua alone on every kind of text")


if __name__ == "__main__":
    main()
