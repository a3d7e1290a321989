"""What a word-level diff costs: the ratio alone (``to_pandas`` computes one per pair of answers)
and the ratio with its HTML picture, for two answers of a given size, half their words different.

    .venv/bin/python benchmarks/diff.py [--kb 4] [--number 20] [--repeat 3]

Prints a markdown table: best of ``--repeat`` runs of ``--number`` calls each, per call.
"""

from __future__ import annotations

import argparse
import random
import timeit

from gridllm_nb.core.diff import diff_texts, similarity
from gridllm_nb.display.diff import diff_html


def answers(kb: float, seed: int = 1) -> tuple[str, str]:
    """Two texts of about ``kb`` KB each (words of 3 to 8 letters), every other word changed."""
    rng = random.Random(seed)
    words = []
    while sum(len(w) + 1 for w in words) < kb * 1024:
        words.append("".join(rng.choice("abcdefghij") for _ in range(rng.randint(3, 8))))
    other = [w if i % 2 else w.upper() for i, w in enumerate(words)]
    return " ".join(words), " ".join(other)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kb", type=float, default=4.0)
    ap.add_argument("--number", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    a, b = answers(args.kb)
    cases = {"ratio (similarity)": lambda: similarity(a, b),
             "ratio + HTML (diff_html)": lambda: diff_html(diff_texts(a, b))}
    print(f"two {args.kb:g} KB answers, {len(a.split())} words each, half of them different\n")
    print("| what | ms per call |\n|---|---|")
    for name, call in cases.items():
        best = min(timeit.repeat(call, number=args.number, repeat=args.repeat)) / args.number
        print(f"| {name} | {best * 1000:.1f} |")


if __name__ == "__main__":
    main()
