"""Procedural instruction-following task for the embedded default policy.

Pure Python on purpose: the web server and the simulated-annotator client
import this module, and neither should pay for importing torch.

Five task families (animals, hobbies, food, cities, colors), each with 30
subjects, one or two hand-written facts per subject and small shared phrase
pools for the rest. A response is assembled from an opener, a body and a
closer, and nine qualities are drawn independently (about 50% each by default):

    on_topic       the body talks about the prompt's subject, not another one
    helpful        the body gives facts instead of an evasion
    polite         a friendly opener/closer instead of nothing or a brusque one
    complete       the text ends properly instead of stopping mid-sentence
    concise        no padding sentence ("Let me think about this.")
    no_repetition  no sentence said twice
    specific       the body states the subject's own fact ("cannot fly but swims
                   very fast"), not only phrases it shares with other subjects
    correct        every fact is true of the subject, instead of one shared
                   attribute taken from another subject ("lives in hot, dry deserts")
    structured     the body is a numbered list instead of prose

The last three describe facts and their layout, so they apply to helpful
bodies only: an evasion's labels leave them out (ANSWER_QUALITIES). An
off-topic body is specific and correct or not about the subject it talks
about, which keeps those two independent of on_topic.

The balanced mixture is the point: a policy trained on it samples every
combination, so there is something for preference learning and PPO to shift,
and a preference for better answers (specific, correct, concise) can be met
by better answers, not only by evasions.

The subjects and their facts are in trainer/embedded/subjects.py; the judge
that reads every quality back from any text, and the scripted preferences, in
trainer/embedded/judge.py.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass, field

from trainer.embedded.judge import ANSWER_QUALITIES, QUALITIES, features
from trainer.embedded.subjects import FAMILIES, FAMILY, SPLITS, SUBJECT_FAMILY, Family, template_fields

# ---------------------------------------------------------------------------
# Response pieces.

POLITE_OPENERS = (
    "Happy to help!",
    "Great question!",
    "Sure thing!",
    "Of course!",
    "Thanks for asking!",
    "Glad you asked!",
    "Absolutely, happy to help.",
)
POLITE_CLOSERS = (
    "Hope this helps.",
    "Have a wonderful day!",
    "Enjoy!",
    "Let me know if you have more questions.",
    "Good luck!",
    "Hope you enjoy it!",
    "Thanks for the question!",
)
CURT_OPENERS = ("Fine.", "Whatever.", "Ugh.", "Obviously.", "Okay, whatever.")
CURT_CLOSERS = ("That's it.", "Next question.", "Don't ask again.", "Figure out the rest yourself.", "Not my problem.")
# Evasions open with varied words: if most began with "I", sampling at a lower
# temperature would pile onto that one token and nearly never be helpful.
EVASIONS_ON = (
    "I'm not sure I can help with questions about {ref}.",
    "Sorry, I don't really know much about {ref}.",
    "Hmm, I can't say anything useful about {ref}.",
    "Honestly, I'd rather not get into {ref} right now.",
    "Unfortunately, I'm not able to answer questions about {ref}.",
)
EVASIONS_OFF = (
    "I'm not sure I can help with that.",
    "Sorry, I don't know.",
    "Hmm, I can't answer that.",
    "That's not something I can help with.",
    "Honestly, I'd rather not say.",
)
EVASION_FOLLOWUPS = ("You could ask someone else.", "Maybe try a different question.", "I can't go into details.")
PIVOTS = ("Maybe ask me about {ref} instead.", "Let's talk about {ref} instead.")
# Padding that makes an answer verbose: it says nothing, names no subject, and
# is neither polite, rude nor evasive, so it changes no other quality.
FILLERS = (
    "Let me think about this.",
    "That is a common question.",
    "There is a lot to say here.",
    "Well, where do I begin?",
    "This is worth thinking about.",
)


@dataclass
class Prompt:
    text: str
    family: str
    subject: str


@dataclass
class Example:
    prompt: str
    response: str
    family: str
    subject: str
    labels: dict[str, bool] = field(default_factory=dict)


def _pick_other(rng: random.Random, subject: str, split: str) -> tuple[Family, str]:
    """An off-topic subject: half the time from the same family (subtle), else any family."""
    fam = SUBJECT_FAMILY[subject]
    if rng.random() >= 0.5:
        fam = rng.choice(FAMILIES)
    choices = [s for s in SPLITS[split][fam.name] if s != subject]
    return fam, rng.choice(choices)


def _templates(rng: random.Random, fam: Family) -> list[str]:
    """A lead sentence and a follow-up about another attribute. Two sentences, not more: every
    quality adds words, and the build's time budget is counted in tokens."""
    attr, lead = rng.choice(fam.lead)
    return [lead, rng.choice([t for a, t in fam.more if a != attr])]


def _says(templates: list[str], column: str) -> bool:
    return any("{" + column + "}" in t for t in templates)


@functools.cache
def _phrases(family: str, column: str, split: str) -> frozenset[str]:
    """Every phrase `column` takes in `family`: the whole pool, or the split's subjects' values."""
    fam = FAMILY[family]
    if column in fam.pools:
        return frozenset(fam.pools[column].values())
    return frozenset(template_fields(fam, s)[column] for s in SPLITS[split][family])


def _body(rng: random.Random, fam: Family, subject: str, labels: dict[str, bool], split: str) -> list[str]:
    """Sentences about `subject`, with or without its own fact, true or with one false claim."""
    while True:  # redraw until the sentences can carry the drawn qualities
        templates = _templates(rng, fam)
        claims = [c for c in fam.claims if _says(templates, c)]
        if _says(templates, fam.own) == labels["specific"] and (labels["correct"] or claims):
            break
    slots = template_fields(fam, subject, rng)
    if not labels["correct"]:  # a shared attribute with another subject's value: a plausible, false claim
        column = rng.choice(claims)
        slots[column] = rng.choice(sorted(_phrases(fam.name, column, split) - {slots[column]}))
    return [t.format(**slots) for t in templates]


def _evasion(rng: random.Random, fam: Family, subject: str, on_topic: bool, split: str) -> list[str]:
    if on_topic:
        sentences = [rng.choice(EVASIONS_ON).format(ref=fam.ref.format(s=subject))]
    else:
        sentences = [rng.choice(EVASIONS_OFF)]
        if rng.random() < 0.5:  # sometimes steer to another subject, which is off-topic too
            ofam, other = _pick_other(rng, subject, split)
            sentences.append(rng.choice(PIVOTS).format(ref=ofam.ref.format(s=other)))
    if rng.random() < 0.4:
        sentences.append(rng.choice(EVASION_FOLLOWUPS))
    return sentences


def _courtesy(rng: random.Random, polite: bool) -> tuple[str, str]:
    """(opener, closer), either possibly empty."""
    if polite:  # at least one friendly piece, usually both
        opener, closer = rng.random() < 0.85, rng.random() < 0.7
        if not (opener or closer):
            opener = True
        return rng.choice(POLITE_OPENERS) if opener else "", rng.choice(POLITE_CLOSERS) if closer else ""
    style = rng.random()  # curt: nothing at all, or a brusque opener and/or closer
    return rng.choice(CURT_OPENERS) if 0.4 <= style < 0.8 else "", rng.choice(CURT_CLOSERS) if style >= 0.65 else ""


def _wrap(rng: random.Random, body: list[str], labels: dict[str, bool]) -> str:
    """Opener, padding, body and closer; a list puts every piece on a line of its own."""
    if not labels["no_repetition"]:  # one sentence said twice in a row
        i = rng.randrange(len(body))
        body = body[: i + 1] + body[i:]
    structured = labels.get("structured", False)
    if structured:
        body = [f"{i}. {sentence}" for i, sentence in enumerate(body, 1)]
    if not labels["concise"]:  # padding before or after the body
        body = [rng.choice(FILLERS), *body] if rng.random() < 0.5 else [*body, rng.choice(FILLERS)]
    opener, closer = _courtesy(rng, labels["polite"])
    return ("\n" if structured else " ").join(p for p in (opener, *body, closer) if p)


def _cut(rng: random.Random, prompt: str, text: str) -> str | None:
    """Stop mid-sentence after a random word, keeping every other quality as the judge sees it.

    The cut points that keep them are nearly always a tail of the text (a cut drops the facts, the
    repetition or the padding after it), so only the tail up to the first one that does not is
    judged: far fewer judge calls than trying points all over the text.
    """
    full = features(prompt, text)
    cuts = []
    for m in reversed(list(re.finditer(r"\S+", text))[2:-1]):  # keep at least three words
        cut = text[: m.end()].rstrip(",")
        if cut.endswith((".", "!", "?")):
            continue
        f = features(prompt, cut)
        if f["complete"] != 0.0 or any(f[q] != full[q] for q in QUALITIES if q != "complete"):
            break
        cuts.append(cut)
    return rng.choice(cuts) if cuts else None


def _response(rng: random.Random, p: Prompt, labels: dict[str, bool], split: str) -> str | None:
    fam = FAMILY[p.family]
    if labels["helpful"]:
        topic_fam, topic = (fam, p.subject) if labels["on_topic"] else _pick_other(rng, p.subject, split)
        body = _body(rng, topic_fam, topic, labels, split)
    else:
        body = _evasion(rng, fam, p.subject, labels["on_topic"], split)
    response = _wrap(rng, body, labels)
    return response if labels["complete"] else _cut(rng, p.text, response)


def make_example(rng: random.Random, split: str = "train", rates: dict[str, float] | None = None) -> Example:
    """One prompt/response pair with independently drawn qualities (an evasion's labels leave out
    ANSWER_QUALITIES, which do not apply to it)."""
    rates = dict.fromkeys(QUALITIES, 0.5) | (rates or {})
    p = _sample_prompt(rng, split)
    labels = {q: rng.random() < rates[q] for q in QUALITIES}
    if not labels["helpful"]:
        labels = {q: v for q, v in labels.items() if q not in ANSWER_QUALITIES}
    response = None
    while response is None:  # a short text may have no valid cut point; redraw the text, never the labels
        response = _response(rng, p, labels, split)
    return Example(p.text, response, p.family, p.subject, labels)


def make_corpus(n: int, seed: int = 0, rates: dict[str, float] | None = None) -> list[Example]:
    """`n` training examples (training subjects only), deterministic in `seed`."""
    rng = random.Random(seed)
    return [make_example(rng, "train", rates) for _ in range(n)]


# ---------------------------------------------------------------------------
# Prompts.


def _prompt_pool(split: str) -> list[Prompt]:
    pool = []
    for fam in FAMILIES:
        templates = {"train": fam.prompts, "rephrased": fam.heldout_prompts}.get(
            split, fam.prompts + fam.heldout_prompts
        )
        for subject in SPLITS[split][fam.name]:
            slots = template_fields(fam, subject)
            pool += [Prompt(t.format(**slots), fam.name, subject) for t in templates]
    return pool


_POOLS = {split: _prompt_pool(split) for split in SPLITS}


def _sample_prompt(rng: random.Random, split: str) -> Prompt:
    return rng.choice(_POOLS[split])


def sample_prompts(n: int, seed: int = 0, split: str = "train") -> list[Prompt]:
    """`n` distinct prompts (repeating only once the pool is exhausted).

    split="train"      the prompts the policy is trained on (and RL acts on)
    split="rephrased"  training subjects asked with templates never used in training
    split="heldout"    subjects that never occur in the training corpus, not even
                       as off-topic material, with any template

    Neither held-out split has a prompt seen verbatim in training. The small
    default policy stays on topic by recognising each training subject, not by
    copying arbitrary words, so on "heldout" it is practically never on topic;
    "rephrased" is the split where on-topic rates can generalise.
    """
    if split not in _POOLS:
        raise ValueError(f"split must be one of {sorted(_POOLS)}, got {split!r}")
    rng = random.Random(seed)
    out: list[Prompt] = []
    while len(out) < n:
        pool = list(_POOLS[split])
        rng.shuffle(pool)
        out += pool[: n - len(out)]
    return out


def make_prompts(n: int, seed: int = 0, split: str = "train") -> list[str]:
    return [p.text for p in sample_prompts(n, seed, split)]


def demo_prompts(n: int, seed: int = 0) -> list[str]:
    """Prompts for the annotation UI: training-distribution prompts, where RL will act."""
    return make_prompts(n, seed, "train")
