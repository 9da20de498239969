"""Report labeler: reports/s on one core against a NegEx-style baseline, and P/R/F1 on Open-i.

The baseline is the usual straightforward implementation: one regex per phrase and per trigger, searched
sentence by sentence (NegEx, and most hand-written labelers, work this way). It uses the same phrase lists
and triggers, so the ratio measures the engine, not the lists. The P/R/F1 table is the NIH list against
NegBio's gold for the 3,080 Open-i reports in ../shared/realdata (FINDINGS + IMPRESSION), with the dev /
holdout figures of the hash split beside it.
"""

from __future__ import annotations

import re
import time
from importlib import resources
from pathlib import Path

from cxrlab.reports import ReportLabeler, evaluate_openi, load_openi
from cxrlab.reports.patterns import phrase_to_regex
from cxrlab.reports.sections import split_sentences

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "reports"
REPORTS = REALDATA / "indiana_reports_dev.csv"
GOLD = REALDATA / "openi_gld_std14_dev.csv"
BASELINE_REPORTS = 300
TARGET = 2000  # reports/s asked for by the issue


class NegExBaseline:
    """Per-phrase and per-trigger regexes, sentence by sentence; negation within 6 words, as NegEx."""

    def __init__(self, labeler: ReportLabeler) -> None:
        self.phrases = [
            (label, re.compile(rf"\b(?:{phrase_to_regex(p.lstrip('~'))})(?!\w)"))
            for label, phrases in labeler.finder.phrases.items()
            if label != "ignore"
            for p in phrases
        ]
        kinds: dict[str, list[re.Pattern[str]]] = {}
        for phrase, roles in zip(
            labeler.rules.compiled.phrases[1:], labeler.rules.compiled.payload[1:], strict=True
        ):
            for role in roles:  # type: ignore[attr-defined]
                kinds.setdefault(role.kind, []).append(re.compile(rf"(?<!\w){phrase_to_regex(phrase)}(?!\w)"))
        self.pre_neg = kinds["pre_negation"]
        self.post_neg = kinds["post_negation"]
        self.pre_unc = kinds["pre_uncertainty"] + kinds["pre_evidence"]
        self.post_unc = kinds["post_uncertainty"]

    def label(self, text: str) -> dict[str, int]:
        low = text.lower()
        out: dict[str, int] = {}
        for s, e in split_sentences(low):
            sentence = low[s:e]
            for label, regex in self.phrases:
                for m in regex.finditer(sentence):
                    before = " ".join(sentence[: m.start()].split()[-6:])
                    after = " ".join(sentence[m.end() :].split()[:6])
                    if any(r.search(before) for r in self.pre_neg) or any(
                        r.search(after) for r in self.post_neg
                    ):
                        status = 0
                    elif any(r.search(before) for r in self.pre_unc) or any(
                        r.search(after) for r in self.post_unc
                    ):
                        status = -1
                    else:
                        status = 1
                    out[label] = max(out.get(label, status), status, key=lambda v: {1: 2, -1: 1, 0: 0}[v])
        return out


def _texts() -> tuple[list[str], str]:
    if REPORTS.exists():
        return list(load_openi(REPORTS, GOLD)["text"]), f"{REPORTS.name} (FINDINGS + IMPRESSION)"
    folder = resources.files("cxrlab.reports").joinpath("samples")
    samples = [p.read_text(encoding="utf-8") for p in folder.iterdir() if p.name.endswith(".txt")]
    return samples * 500, "the shipped sample reports, repeated (../shared/realdata is absent)"


def _rate(fn, texts: list[str], repeats: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for text in texts:
            fn(text)
        best = min(best, time.perf_counter() - t0)
    return len(texts) / best


def bench_long_report(labeler: ReportLabeler, texts: list[str]) -> None:
    """One 1 MB report without a sentence break (a dictation run together) against the same words as
    short reports: the engine must stay linear (walking every trigger of the sentence per mention took
    over 300 s at this size)."""
    words = " ".join(texts).replace(".", " ").replace(";", " ").replace("\n", " ").split()
    long = " ".join(words)
    while len(long) < 1_000_000:
        long += " " + long
    long = long[:1_000_000]
    t0 = time.perf_counter()
    labeler.label(long)
    t_long = time.perf_counter() - t0
    pieces = [long[i : i + 300] for i in range(0, len(long), 300)]
    t0 = time.perf_counter()
    for piece in pieces:
        labeler.label(piece)
    t_short = time.perf_counter() - t0
    print(
        f"  one 1 MB report without a sentence break {t_long:6.2f} s; the same text as "
        f"{len(pieces):,} reports {t_short:6.2f} s ({t_long / t_short:.1f}x)"
    )


def main() -> None:
    texts, source = _texts()
    labeler = ReportLabeler("nih")
    labeler.label(texts[0])  # compile outside the timing
    ours = _rate(labeler.label, texts, repeats=3)
    baseline = NegExBaseline(labeler)
    sub = texts[:BASELINE_REPORTS]
    slow = _rate(baseline.label, sub, repeats=1)
    chars = sum(len(t) for t in texts) / len(texts)
    print(f"{len(texts)} reports from {source}, {chars:.0f} characters on average; one core")
    print(
        f"  cxrlab labeler (one regex per list)   {ours:9,.0f} reports/s  "
        f"({ours / TARGET:.1f}x the 2,000/s target)"
    )
    print(f"  NegEx-style, a regex per phrase       {slow:9,.0f} reports/s  (first {len(sub)} reports)")
    print(f"  ratio                                 {ours / slow:9.1f}x")
    bench_long_report(labeler, texts)
    if not REPORTS.exists():
        print("Open-i reports absent: no P/R/F1 table")
        return
    results = {split: evaluate_openi(REPORTS, GOLD, split=split) for split in ("all", "dev", "holdout")}
    frame = results["all"].to_frame()
    f1_of = {split: r.to_frame().set_index("label")["f1"] for split, r in results.items() if split != "all"}
    print(
        "\nNIH labels on Open-i against NegBio's gold (uncertain counted negative, differentials uncertain)"
    )
    print(
        f"{'label':20} {'support':>7} {'tp':>5} {'fp':>5} {'fn':>5} {'precision':>9} {'recall':>7} {'F1':>6}"
        f" {'F1 dev':>7} {'holdout':>7}"
    )
    for row in frame.itertuples(index=False):
        print(
            f"{row.label:20} {row.support:7d} {row.tp:5d} {row.fp:5d} {row.fn:5d} "
            f"{row.precision:9.3f} {row.recall:7.3f} {row.f1:6.3f}"
            f" {f1_of['dev'][row.label]:7.3f} {f1_of['holdout'][row.label]:7.3f}"
        )
    print("micro-F1 over the 13 labels with positives (NIH reported 0.90 for its own pipeline):")
    positive = ReportLabeler("nih", differential="positive")
    for split, result in results.items():
        alt = evaluate_openi(REPORTS, GOLD, split=split, labeler=positive)
        print(
            f"  {split:8} {result.reports:5d} reports: micro-F1 {result.micro.f1:.3f} "
            f"(macro {result.macro_f1:.3f}); with --differential positive {alt.micro.f1:.3f}"
        )


if __name__ == "__main__":
    main()
