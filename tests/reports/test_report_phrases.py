"""The phrase syntax, the shipped lists, and the one-regex matcher against a slow per-phrase reference."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cxrlab.reports import MentionFinder, ReportLabeler, Rules
from cxrlab.reports.patterns import PhraseFileError, compile_phrases, parse_phrase_text, phrase_to_regex
from cxrlab.taxonomy import NO_FINDING, get_label_set


@pytest.mark.parametrize(
    ("phrase", "hits", "misses"),
    [
        (
            "air space disease",
            ["air space disease", "airspace disease", "air-space  disease"],
            ["air spaces disease"],
        ),
        ("effusion(s)", ["effusion", "effusions"], ["effusionss"]),
        ("atelecta*", ["atelectasis", "atelectatic"], ["atelectx"]),
        ("heart ... enlarged", ["heart enlarged", "heart is mildly enlarged"], ["heart. it is enlarged"]),
        ("r/o", ["r/o"], ["ro"]),
    ],
)
def test_phrase_syntax(phrase: str, hits: list[str], misses: list[str]) -> None:
    regex = re.compile(rf"\b(?:{phrase_to_regex(phrase)})(?!\w)")
    for text in hits:
        assert regex.fullmatch(text), text
    for text in misses:
        assert not regex.fullmatch(text), text


def test_gap_is_bounded() -> None:
    regex = re.compile(phrase_to_regex("heart ... enlarged"))
    assert regex.search("heart a b c d enlarged")
    assert not regex.search("heart a b c d e enlarged")


def test_longest_phrase_wins_and_payload() -> None:
    compiled = compile_phrases([("effusion", "E"), ("pleural effusion", "PE"), ("mass effect", None)])
    found = [
        (text, payload)
        for _, _, text, payload in compiled.finditer("pleural effusion. effusion. mass effect")
    ]
    assert found == [("pleural effusion", "PE"), ("effusion", "E"), ("mass effect", None)]


@pytest.mark.parametrize("name", ["nih", "chexpert", "vindr"])
def test_every_label_has_phrases(name: str) -> None:
    finder = MentionFinder.load(name)
    wanted = set(get_label_set(name).labels) - {NO_FINDING}
    assert wanted <= set(finder.phrases), wanted - set(finder.phrases)


@pytest.mark.parametrize("name", ["nih", "chexpert", "vindr"])
def test_one_regex_equals_per_phrase_reference(name: str) -> None:
    """Every mention the combined regex finds, a plain per-phrase search finds at the same place."""
    finder = MentionFinder.load(name)
    text = " ".join(
        [
            "large left pleural effusion and bibasilar atelectasis. the heart is mildly enlarged.",
            "nodules in the right upper lobe; tortuous aorta; rib fractures of the left 5th rib.",
            "no pneumothorax. emphysematous changes with subcutaneous emphysema. mass effect.",
            "interstitial edema with kerley b lines; pneumonia versus infiltrate. copd. cysts.",
        ]
    )
    fast = {(m.start, m.end, m.labels) for m in finder.find(text)}
    assert fast
    for start, end, labels in fast:
        phrase_regexes = [
            re.compile(rf"\b(?:{phrase_to_regex(p.lstrip('~'))})(?!\w)")
            for label in labels
            for p in finder.phrases[label]
        ]
        assert any(r.match(text, start) and r.match(text, start).end() == end for r in phrase_regexes)  # type: ignore[union-attr]


def test_user_phrase_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("# my list\n[Effusion]\nwater on the lung  # plain words\n[Pneumothorax]\nptx\n")
    labeler = ReportLabeler("nih", phrases=path)
    assert labeler.label("Water on the lung. No PTX.") == {"Effusion": 1, "Pneumothorax": 0}


def test_bad_phrase_files(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("[Effusoin]\nfluid\n")
    with pytest.raises(
        PhraseFileError, match=r"line 1: unknown nih label 'Effusoin'; did you mean 'Effusion'"
    ):
        MentionFinder.load("nih", path)
    path.write_text("fluid\n")
    with pytest.raises(PhraseFileError, match="line 1: phrase 'fluid' comes before any"):
        MentionFinder.load("nih", path)
    path.write_text("[No finding]\nnormal\n")
    with pytest.raises(PhraseFileError, match="derived from the other labels"):
        MentionFinder.load("nih", path)
    path.write_text("[pre_negation]\nno\n[sometimes]\nmaybe\n")
    with pytest.raises(PhraseFileError, match="unknown section"):
        Rules.load(path)
    with pytest.raises(PhraseFileError, match="no such phrase file"):
        MentionFinder.load("nih", tmp_path / "missing.txt")


def test_sections_parse_parameters() -> None:
    lines = parse_phrase_text("[post_negation window=4]\nis normal\n")
    assert lines[0].params == {"window": "4"} and lines[0].phrase == "is normal"


def test_rules_file_kinds_are_all_used() -> None:
    kinds = {role.kind for roles in Rules.load().compiled.payload[1:] for role in roles}  # type: ignore[union-attr]
    assert kinds == {
        "pre_negation",
        "post_negation",
        "pre_uncertainty",
        "pre_evidence",
        "post_uncertainty",
        "differential",
        "pseudo",
        "termination",
    }


@pytest.mark.parametrize("empty", ["~", "~   ", "...", "~ ..."])
def test_a_phrase_with_nothing_to_match_names_file_and_line(
    tmp_path: Path, empty: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty '~' line raised a raw ValueError from deep inside the regex compiler."""
    from cli_helpers import run_cli

    path = tmp_path / "mine.txt"
    path.write_text(f"[Effusion]\nfluid\n\n[Pneumothorax]\nptx\n{empty}\n")
    with pytest.raises(PhraseFileError, match=rf"^{path}, line 6: "):
        MentionFinder.load("nih", path)
    rules = tmp_path / "rules.txt"
    rules.write_text("[pre_negation]\nno\n...\n")  # no neutral '~' in rules: an ellipsis alone
    with pytest.raises(PhraseFileError, match=rf"^{rules}, line 3: "):
        Rules.load(rules)
    reports = tmp_path / "r.csv"
    reports.write_text("report\nNo ptx.\n")
    args = ["reports", "label", str(reports), "--out", str(tmp_path / "o.csv"), "--phrases", str(path)]
    code, _, err = run_cli(args, monkeypatch, capsys)
    assert code == 1 and f"{path}, line 6" in err and "Traceback" not in err
