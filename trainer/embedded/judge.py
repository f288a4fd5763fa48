"""The embedded task's judge: every quality of an answer read from its text alone, and the scripted
preferences built on it.

`features()` works on ANY prompt and response (it does not need the generation labels), so it judges model
samples as well as the corpus (trainer/embedded/task.py), whose labels it must agree with (a test checks).
`PREFERENCES` turns it into scripted annotators: one per quality and an overall mix. Pure Python.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from trainer.embedded.subjects import ALL_SUBJECTS, FAMILIES, SUBJECT_FAMILY, Family, template_fields

QUALITIES = (
    "on_topic",
    "helpful",
    "polite",
    "complete",
    "specific",
    "correct",
    "concise",
    "no_repetition",
    "structured",
)
# an evasion states no facts and is no list, so these qualities only apply to helpful answers
ANSWER_QUALITIES = ("specific", "correct", "structured")

# Vocabulary. Every piece trainer/embedded/task.py writes contains one of these (tests check it on the
# corpus), and model samples that paraphrase still usually hit one.
POLITE_MARKERS = (
    "happy to help",
    "great question",
    "sure thing",
    "of course",
    "thanks",
    "thank you",
    "glad",
    "hope this helps",
    "hope you",
    "have a wonderful day",
    "have a great day",
    "enjoy!",
    "good luck",
    "let me know",
    "my pleasure",
    "you're welcome",
)
RUDE_MARKERS = (
    "whatever",
    "ugh",
    "obviously",
    "next question",
    "don't ask",
    "figure out the rest",
    "not my problem",
    "that's it.",
    "fine.",
)
EVASION_MARKERS = (
    "not sure i can",
    "i don't know",
    "i don't really know",
    "i can't",
    "i cannot",
    "i'd rather not",
    "i'm not able",
    "not something i can",
    "ask someone else",
    "different question",
)
FILLER_MARKERS = ("let me think", "a common question", "a lot to say", "where do i begin", "worth thinking about")


def _pattern(words: list[str]) -> re.Pattern:
    """Whole-word match of any of `words` (multi-word allowed), with an optional plural ending."""
    alts = sorted((r"\s+".join(map(re.escape, w.lower().split())) for w in words), key=len, reverse=True)
    return re.compile(rf"\b({'|'.join(alts)})(?:s|es)?\b")


# one alternation over all subjects: the judge runs for every cut candidate, so it must be fast
_SUBJECTS_RE = _pattern(ALL_SUBJECTS)
_STOPWORDS = frozenset(
    "a an the and or but of to in on at for with about from by is are was were be been it its this that these those"
    " what which who how why when where can could would should will do does did i me my you your we our they them"
    " tell give make some any please just like know want need share explain describe something really good"
    " write say think more much there have here then than very also into over".split()
)


def _mentions(pattern: re.Pattern, text: str) -> list[str]:
    return [" ".join(m.split()) for m in pattern.findall(text)]


@functools.lru_cache(maxsize=4096)  # the generator judges many cuts of a reply to one prompt
def _topic(prompt: str) -> tuple[frozenset[str], re.Pattern | None]:
    """Known subjects named in the prompt, or for a foreign prompt a pattern of its content words."""
    low = prompt.lower()
    known = frozenset(_mentions(_SUBJECTS_RE, low))
    if known:
        return known, None
    words = sorted({w for w in re.findall(r"[a-z]+", low) if len(w) > 3 and w not in _STOPWORDS})
    return known, _pattern(words) if words else None


def _any_of(markers: tuple[str, ...]) -> re.Pattern:
    return re.compile(rf"(?<![a-z])({'|'.join(map(re.escape, markers))})(?![a-z])")


_POLITE_RE, _RUDE_RE, _EVASION_RE, _FILLER_RE = map(
    _any_of, (POLITE_MARKERS, RUDE_MARKERS, EVASION_MARKERS, FILLER_MARKERS)
)
_LIST_ITEM_RE = re.compile(r"(?:^| )(?:\d+\.|[-*]) ")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?]) ")


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace("\u2019", "'").split())


@dataclass(frozen=True)
class _Facts:
    """What a family's answers can claim: each checkable phrase and the subjects it is true of."""

    pattern: re.Pattern
    true_of: dict[str, frozenset[str]]
    own: dict[str, str]  # subject -> its own fact


def _facts(fam: Family) -> _Facts:
    # every pool phrase is checkable, also one that no subject has (it is then false of all)
    true_of: dict[str, set[str]] = {_normalise(p): set() for pool in fam.pools.values() for p in pool.values()}
    own = {}
    for subject in fam.table:
        slots = template_fields(fam, subject)
        own[subject] = _normalise(slots[fam.own])
        for column in (fam.own, *fam.claims):
            true_of.setdefault(_normalise(slots[column]), set()).add(subject)
    alts = sorted(map(re.escape, true_of), key=len, reverse=True)
    return _Facts(re.compile(rf"\b({'|'.join(alts)})\b"), {p: frozenset(s) for p, s in true_of.items()}, own)


_FACTS = {f.name: _facts(f) for f in FAMILIES}
_SUBJECT_NAMES = {s.lower(): s for s in ALL_SUBJECTS}


def _talked_about(mentioned: list[str], known: frozenset[str]) -> str | None:
    """The subject a response talks about: the first one it names, else the prompt's."""
    names = mentioned or sorted(known)
    return _SUBJECT_NAMES[names[0]] if names else None


def _fact_check(text: str, subject: str | None) -> tuple[bool, bool]:
    """(specific, correct) of `text` about `subject`: it states the subject's own fact; every
    checkable phrase in it is true of the subject. Nothing to check (no subject): not specific, correct."""
    if subject is None:
        return False, True
    facts = _FACTS[SUBJECT_FAMILY[subject].name]
    stated = set(facts.pattern.findall(text))
    return facts.own[subject] in stated, all(subject in facts.true_of[p] for p in stated)


def _repeats(text: str) -> bool:
    """A sentence of three words or more occurs twice (list numbers ignored)."""
    sentences = [s.strip() for s in _SENTENCE_END_RE.split(_LIST_ITEM_RE.sub(" ", text)) if len(s.split()) >= 3]
    return len(set(sentences)) < len(sentences)


def is_evasive(response_text: str) -> bool:
    """The response contains one of the task's evasion phrases ("I don't really know ...")."""
    return bool(_EVASION_RE.search(_normalise(response_text)))


def features(prompt_text: str, response_text: str) -> dict[str, float]:
    """Judge a response on every quality, each in [0, 1].

    on_topic       share of subject mentions that are the prompt's subject
                   (0 when the prompt's subject is never mentioned)
    helpful        1 when there is no evasion phrase and some substance (>= 5 words)
    polite         1 with a politeness marker and no rude one, 0.5 with both, else 0
    complete       1 when the text ends with sentence punctuation
    specific       1 when it states the own fact of the subject it talks about
    correct        1 when every fact phrase in it is true of the subject it talks about
    concise        1 without padding phrases
    no_repetition  1 when no sentence occurs twice
    structured     1 with two list items or more ("1. ", "- ")

    The subject a response talks about is the first one it names, else the prompt's; whether
    that is the one asked about is on_topic's business, so the two stay independent.
    """
    text = _normalise(response_text)
    known, words = _topic(prompt_text)
    mentioned = _mentions(_SUBJECTS_RE, text)
    own = sum(m in known for m in mentioned) + (len(words.findall(text)) if words else 0)
    other = sum(m not in known for m in mentioned)
    polite, rude = bool(_POLITE_RE.search(text)), bool(_RUDE_RE.search(text))
    specific, correct = _fact_check(text, _talked_about(mentioned, known))
    return {
        "on_topic": own / (own + other) if own else 0.0,
        "helpful": float(not _EVASION_RE.search(text) and len(text.split()) >= 5),
        "polite": 0.5 if polite and rude else float(polite),
        "complete": float(bool(re.search(r"[.!?][\"')]*$", text))),
        "specific": float(specific),
        "correct": float(correct),
        "concise": float(not _FILLER_RE.search(text)),
        "no_repetition": float(not _repeats(text)),
        "structured": float(len(_LIST_ITEM_RE.findall(text)) >= 2),
    }


# ---------------------------------------------------------------------------
# Scripted annotators: (prompt, a, b) -> score in [-1, 1], > 0 means a is better.

# What a good answer is, most important first: about the subject asked, answering
# rather than evading, and true. Helpful outweighs correct, so one false claim
# among true ones still beats an evasion, but only just; the style qualities
# weigh least, and structured not at all: lists or prose is a matter of taste,
# and the "structured" preference is there for those who want lists.
OVERALL_WEIGHTS = {
    "on_topic": 0.25,
    "helpful": 0.2,
    "correct": 0.15,
    "specific": 0.1,
    "complete": 0.1,
    "polite": 0.1,
    "concise": 0.05,
    "no_repetition": 0.05,
}


def _prefer(quality: str):
    def prefer(prompt_text: str, a: str, b: str) -> float:
        return features(prompt_text, a)[quality] - features(prompt_text, b)[quality]

    prefer.__name__ = f"prefer_{quality}"
    prefer.__doc__ = f"Prefer the response judged better on {quality} (score in [-1, 1])."
    return prefer


def prefer_overall(prompt_text: str, a: str, b: str) -> float:
    """Weighted mix of the qualities; weights sum to 1 so the score stays in [-1, 1]."""
    fa, fb = features(prompt_text, a), features(prompt_text, b)
    return sum(w * (fa[q] - fb[q]) for q, w in OVERALL_WEIGHTS.items())


PREFERENCES = {q: _prefer(q) for q in QUALITIES} | {"overall": prefer_overall}
