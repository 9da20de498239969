"""The phrase syntax of the label lists and the rules file, and its compilation into one regex per file.

A file is plain text: ``[section key=value]`` lines start a section, every other non-blank line is a phrase,
``#`` starts a comment. Phrases are case-insensitive and matched on word boundaries:

- a space or hyphen between words matches any run of blanks and hyphens, or none (``air space`` finds
  ``airspace`` and ``air-space``);
- ``(s)`` marks an optional part (``effusion(s)``);
- a trailing ``*`` matches any word ending (``atelecta*``);
- ``...`` allows up to :data:`GAP_WORDS` words in between, never across ``.`` or ``;``.

All phrases of a file compile into a single alternation, longest phrase first, each in its own capturing
group, so one scan of a report finds every phrase and ``match.lastindex`` tells which phrase it was. One
regex instead of one per phrase is what makes the labeler fast (bench/bench_reports.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from cxrlab.errors import CxrlabError

GAP_WORDS = 4
_SEP = r"[\s\-]*"
_GAP = r"(?:[\s,\-]+[\w'/]+){0,N}?[\s,\-]+".replace("N", str(GAP_WORDS))
_OPTIONAL = re.compile(r"\(([^()]*)\)")
_SECTION = re.compile(r"^\[\s*([^\]=]+?)\s*((?:\s+\w+\s*=\s*\S+)*)\s*\]$")


class PhraseFileError(CxrlabError):
    """A phrase list or rules file that cannot be read."""


@dataclass(frozen=True)
class PhraseLine:
    """One phrase of a file with the section it sits in."""

    section: str
    params: dict[str, str]
    phrase: str
    line: int
    section_line: int = 0


@dataclass
class CompiledPhrases:
    """One regex for all phrases; ``payload[group index]`` is what the phrase in that group stands for."""

    regex: re.Pattern[str]
    phrases: list[str] = field(default_factory=list)
    payload: list[object] = field(default_factory=list)
    gapped: list[bool] = field(default_factory=list)

    def finditer(self, text: str, pos: int = 0, endpos: int | None = None):  # type: ignore[no-untyped-def]
        """Yield ``(start, end, phrase, payload)`` for every non-overlapping match, left to right."""
        phrases, payload, gapped = self.phrases, self.payload, self.gapped
        endpos = len(text) if endpos is None else endpos
        if not any(gapped):
            for found in self.regex.finditer(text, pos, endpos):
                i = found.lastindex
                yield found.start(), found.end(), phrases[i], payload[i]  # type: ignore[index]
            return
        search = self.regex.search
        while (m := search(text, pos, endpos)) is not None:
            i = m.lastindex
            yield m.start(), m.end(), phrases[i], payload[i]  # type: ignore[index]
            # A phrase with a gap ("pleural ... thickening") may span other mentions ("pleural effusion
            # versus pleural thickening"): scan on from its next word instead of from its end.
            pos = m.start() + 1 if gapped[i] else m.end()  # type: ignore[index]


def read_phrase_file(source: str | Path, *, package_name: str | None = None) -> tuple[str, list[PhraseLine]]:
    """Parse a phrase file: a path, or ``package_name`` (``nih``) for the file shipped in the package.

    Returns the file's display name (for error messages) and its lines.
    """
    if package_name is not None:
        ref = resources.files("cxrlab.reports").joinpath("phrases", f"{package_name}.txt")
        name = f"phrases/{package_name}.txt"
        try:
            text = ref.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PhraseFileError(f"no phrase list named '{package_name}' in cxrlab.reports") from None
    else:
        path = Path(source)
        name = str(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise PhraseFileError(f"{name}: no such phrase file") from None
        except (UnicodeDecodeError, IsADirectoryError) as exc:
            raise PhraseFileError(f"{name}: cannot read as UTF-8 text ({exc})") from None
    return name, parse_phrase_text(text, name)


def parse_phrase_text(text: str, name: str = "<text>") -> list[PhraseLine]:
    """Lines of a phrase file; a phrase before any section is an error that names the line."""
    out: list[PhraseLine] = []
    section: str | None = None
    params: dict[str, str] = {}
    section_line = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.startswith("[") and line.endswith("]") and len(line) > 2:
            m = _SECTION.match(line)
            if not m:
                raise PhraseFileError(f"{name}, line {number}: cannot read section header '{line}'")
            section = m.group(1)
            section_line = number
            params = dict(
                (k.strip(), v.strip()) for k, v in (p.split("=", 1) for p in m.group(2).split() if "=" in p)
            )
            continue
        if section is None:
            raise PhraseFileError(f"{name}, line {number}: phrase '{line}' comes before any [section]")
        out.append(PhraseLine(section, dict(params), " ".join(line.lower().split()), number, section_line))
    return out


def phrase_to_regex(phrase: str) -> str:
    """The regex source of one phrase (without surrounding word boundaries)."""
    tokens = [t for t in re.split(r"[\s]+|(?<=\w)-(?=\w)", phrase.strip().lower()) if t]
    if not tokens or all(t == "..." for t in tokens):
        raise ValueError(f"empty phrase '{phrase}'")
    parts: list[str] = []
    for i, token in enumerate(tokens):
        if token == "...":
            continue
        if i > 0:
            parts.append(_GAP if tokens[i - 1] == "..." else _SEP)
        star = token.endswith("*") and len(token) > 1
        body = token[:-1] if star else token
        pieces: list[str] = []
        last = 0
        for m in _OPTIONAL.finditer(body):
            pieces.append(re.escape(body[last : m.start()]))
            pieces.append(f"(?:{re.escape(m.group(1))})?")
            last = m.end()
        pieces.append(re.escape(body[last:]))
        parts.append("".join(pieces) + (r"\w*" if star else ""))
    return "".join(parts)


def checked_phrase(phrase: str, name: str, line: int) -> str:
    """``phrase`` if it compiles, else a :class:`PhraseFileError` naming the file and line.

    ``~`` alone (a neutral marker without its phrase) or ``...`` alone leaves nothing to match.
    """
    try:
        phrase_to_regex(phrase)
    except (ValueError, re.error) as exc:
        raise PhraseFileError(f"{name}, line {line}: {exc} (nothing left to match)") from None
    return phrase


def literal_length(phrase: str) -> int:
    """How long a phrase is without its syntax: the sort key that makes the longest phrase win."""
    return len(re.sub(r"\([^()]*\)|\*|\.\.\.", "", phrase))


def compile_phrases(entries: list[tuple[str, object]]) -> CompiledPhrases:
    """One regex for ``(phrase, payload)`` pairs; identical phrases must be merged by the caller."""
    ordered = sorted(entries, key=lambda e: (-literal_length(e[0]), e[0]))
    # Phrases that start with a letter go into buckets by that letter; the rest (";", "?") follow.
    buckets: dict[str, list[tuple[str, object]]] = {}
    other: list[tuple[str, object]] = []
    for phrase, payload in ordered:
        if re.match(r"\w", phrase):
            buckets.setdefault(phrase[0], []).append((phrase, payload))
        else:
            other.append((phrase, payload))
    compiled = CompiledPhrases(regex=re.compile("x"), phrases=[""], payload=[None], gapped=[False])

    def group(phrase: str, payload: object) -> str:
        # Groups are numbered in the order they appear in the pattern: keep the lists in that order.
        compiled.phrases.append(phrase)
        compiled.payload.append(payload)
        compiled.gapped.append("..." in phrase.split())
        return f"({phrase_to_regex(phrase)})"

    alternation = []
    if buckets:
        # The outer \b makes the engine try the alternatives only where a word starts, and a lookahead on
        # the first letter skips every bucket but one: about 20x fewer alternatives tried per word.
        # Within a bucket the order stays longest first, so the longest phrase still wins.
        branches = [
            f"(?={re.escape(c)})(?:" + "|".join(group(p, x) for p, x in items) + ")"
            for c, items in sorted(buckets.items())
        ]
        alternation.append(r"\b(?:" + "|".join(branches) + r")(?!\w)")
    alternation.extend(group(p, x) for p, x in other)
    compiled.regex = re.compile("|".join(alternation) or r"(?!x)x")
    return compiled
