"""Embedded default policy: task corpus, text judge, and the offline build."""

import itertools
import json
import math
import random
import re

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.embedded import judge, subjects, task
from trainer.embedded.build import build_policy, write_demo_prompts

PROMPT = "Describe the penguin."
GOOD = (
    "Happy to help! The penguin is a playful animal that lives in cold and icy coasts. "
    "It cannot fly but swims very fast. Hope this helps."
)
ALL_GOOD = dict.fromkeys(judge.QUALITIES, 1.0) | {"structured": 0.0}


# ---------------------------------------------------------------------------
# subjects.py, task.py, judge.py: pure Python, fast


@pytest.mark.parametrize("module", [subjects, task, judge], ids=lambda m: m.__name__)
def test_the_task_does_not_import_torch(module):
    """The web app and the scripted annotators import these; neither should pay for torch."""
    src = open(module.__file__).read()
    assert not re.search(r"^\s*(import|from)\s+(torch|transformers)\b", src, re.M)


def test_features_on_hand_written_text():
    assert judge.features(PROMPT, GOOD) == ALL_GOOD
    off = "The lion is a powerful animal that lives in the grasslands of Africa."
    assert judge.features(PROMPT, off)["on_topic"] == 0.0
    evasive = "I'm not sure I can help with questions about the penguin."
    assert judge.features(PROMPT, evasive)["helpful"] == 0.0
    assert judge.features(PROMPT, evasive)["on_topic"] == 1.0
    assert judge.features(PROMPT, "Whatever. The penguin cannot fly.")["polite"] == 0.0
    assert judge.features(PROMPT, "The penguin lives in the cold coasts of")["complete"] == 0.0


def test_facts_are_judged_about_the_subject_the_answer_talks_about():
    vague = "The penguin is a playful animal that lives in cold and icy coasts."
    assert judge.features(PROMPT, vague)["specific"] == 0.0
    assert judge.features(PROMPT, vague.replace("cold and icy coasts", "hot, dry deserts"))["correct"] == 0.0
    # another subject's own fact is a false claim, not a specific one
    mixed = "The penguin mostly eats fish. It has stripes that are unique to each animal."
    assert judge.features(PROMPT, mixed)["specific"] == 0.0 and judge.features(PROMPT, mixed)["correct"] == 0.0
    # off topic, but specific and correct about the lion: on_topic alone tells it is the wrong subject
    lion = "The lion mostly eats meat. It lives in a family group called a pride."
    assert judge.features(PROMPT, lion) | {"on_topic": 0.0} == judge.features(PROMPT, lion)
    assert judge.features(PROMPT, lion)["specific"] == judge.features(PROMPT, lion)["correct"] == 1.0


def test_features_work_on_foreign_prompts():
    f = judge.features("Write a haiku about autumn", "Autumn leaves are falling softly. Thanks for asking!")
    # no known subject: no fact to state and none to get wrong
    assert f == ALL_GOOD | {"specific": 0.0}
    assert judge.features("Write a haiku about autumn", "")["on_topic"] == 0.0


LIST = "Happy to help!\n1. The penguin lives in cold and icy coasts.\n2. It cannot fly but swims very fast."


@pytest.mark.parametrize(
    "name, better, worse",
    [
        ("on_topic", GOOD, GOOD.replace("penguin", "camel")),
        ("polite", GOOD, "Whatever. " + GOOD.split("! ", 1)[1].replace(" Hope this helps.", " Next question.")),
        ("complete", GOOD, GOOD.rsplit(" but ", 1)[0] + " but"),
        ("helpful", GOOD, "Happy to help! I'm not sure I can help with questions about the penguin. Hope this helps."),
        ("specific", GOOD, GOOD.replace(" It cannot fly but swims very fast.", " It mostly eats fish.")),
        ("correct", GOOD, GOOD.replace("cold and icy coasts", "the open ocean")),
        ("concise", GOOD, GOOD.replace("Happy to help!", "Happy to help! Let me think about this.")),
        ("no_repetition", GOOD, GOOD.replace("fast.", "fast. It cannot fly but swims very fast.")),
        ("structured", LIST, GOOD),
        ("overall", GOOD, "Ugh. I can't answer that. Let's talk about"),
    ],
)
def test_preferences_order_pairs(name, better, worse):
    prefer = judge.PREFERENCES[name]
    assert prefer(PROMPT, better, worse) > 0
    assert prefer(PROMPT, worse, better) < 0
    assert prefer(PROMPT, better, better) == 0
    assert -1 <= prefer(PROMPT, worse, better) <= 1


def test_registry_has_the_scripted_annotators():
    assert set(judge.PREFERENCES) == {*judge.QUALITIES, "overall"}
    assert judge.PREFERENCES["overall"] is judge.prefer_overall
    assert sum(judge.OVERALL_WEIGHTS.values()) == pytest.approx(1.0)


def test_overall_prefers_a_good_answer_to_an_on_topic_evasion():
    rng = random.Random(7)
    for _ in range(300):
        good = task.make_example(rng, rates=dict.fromkeys(judge.QUALITIES, 1.0))
        evasion = task.make_example(rng, rates={"helpful": 0.0, "on_topic": 1.0})
        assert judge.prefer_overall(good.prompt, good.response, evasion.response) > 0, evasion.response
        assert judge.prefer_overall(evasion.prompt, evasion.response, good.response) < 0


def test_corpus_qualities_are_balanced_independent_and_judged_consistently():
    corpus = task.make_corpus(5000, seed=1)
    helpful = [e for e in corpus if e.labels["helpful"]]
    assert all(set(e.labels) == set(judge.QUALITIES) for e in helpful)
    # an evasion states no facts and is no list: the answer qualities do not apply to it
    assert all(set(e.labels) == set(judge.QUALITIES) - set(judge.ANSWER_QUALITIES) for e in corpus if e not in helpful)
    for q in judge.QUALITIES:
        rate = sum(e.labels[q] for e in corpus if q in e.labels) / sum(q in e.labels for e in corpus)
        assert 0.45 < rate < 0.55, (q, rate)
    for q, r in itertools.combinations(judge.QUALITIES, 2):
        if q == "helpful" and r in judge.ANSWER_QUALITIES:  # labelled only where helpful is true
            continue
        pairs = [(e.labels[q], e.labels[r]) for e in corpus if q in e.labels and r in e.labels]
        assert abs(_correlation(pairs)) < 0.08, (q, r)  # 4 standard errors at 2500 pairs
    # the text judge recovers every generated label, so it is a faithful annotator
    for e in corpus:
        f = judge.features(e.prompt, e.response)
        assert {q: f[q] >= 0.5 for q in e.labels} == e.labels, (e.prompt, e.response)
    assert len({e.response for e in corpus}) > 0.8 * len(corpus)  # varied text, not a handful of strings


def _correlation(pairs: list[tuple[bool, bool]]) -> float:
    n = len(pairs)
    mean_x, mean_y = sum(x for x, _ in pairs) / n, sum(y for _, y in pairs) / n
    cov = sum(x * y for x, y in pairs) / n - mean_x * mean_y
    return cov / math.sqrt(mean_x * (1 - mean_x) * mean_y * (1 - mean_y))


def test_subject_is_always_written_the_same_way():
    # " lion" in the prompt and " lion" in the reply are one BPE token: staying on topic is a copy
    for e in task.make_corpus(500, seed=2):
        for text in (e.prompt, e.response):
            anywhere = re.findall(rf"(?i)\b{e.subject}\b", text)
            assert anywhere == re.findall(rf"(?<= ){e.subject}\b", text), text


def test_corpus_is_deterministic():
    assert task.make_corpus(50, seed=3) == task.make_corpus(50, seed=3)
    assert task.make_corpus(50, seed=3) != task.make_corpus(50, seed=4)


def test_subject_tables_never_name_another_subject():
    # nor do the phrases a wrong answer borrows from other subjects, or the padding
    for subject, family in subjects.SUBJECT_FAMILY.items():
        slots = subjects.template_fields(family, subject)
        text = " ".join([*family.table[subject], *(slots[c] for c in family.claims)]).lower()
        others = set(judge._mentions(judge._SUBJECTS_RE, text)) - {subject.lower()}
        assert not others, (subject, others)
    pools = [p for f in subjects.FAMILIES for pool in (*f.pools.values(), *f.free.values()) for p in pool]
    assert not judge._mentions(judge._SUBJECTS_RE, " ".join(pools + list(task.FILLERS)).lower())


def test_heldout_prompts_never_appear_in_training():
    train_text = " ".join(e.prompt + " " + e.response for e in task.make_corpus(3000, seed=0)).lower()
    heldout = task.sample_prompts(200, seed=0, split="heldout")
    assert not {p.subject.lower() for p in heldout} & set(judge._mentions(judge._SUBJECTS_RE, train_text))
    assert not {p.text for p in heldout} & set(task.make_prompts(700, seed=0))
    with pytest.raises(ValueError):
        task.make_prompts(3, split="test")


def test_prompts_are_distinct_and_seeded():
    prompts = task.demo_prompts(200, seed=5)
    assert len(set(prompts)) == 200
    assert prompts == task.demo_prompts(200, seed=5) != task.demo_prompts(200, seed=6)


def test_write_demo_prompts(tmp_path):
    path = tmp_path / "demo" / "prompts.jsonl"
    write_demo_prompts(path, n=20, seed=0)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 20
    assert all(r["prompt"] and r["tags"][0] in subjects.FAMILY for r in rows)


# ---------------------------------------------------------------------------
# build.py, "test" preset


@pytest.fixture(scope="module")
def test_policy(tmp_path_factory):
    out = tmp_path_factory.mktemp("policy")
    metrics = build_policy(out, preset="test", seed=0, progress=False)
    return out, metrics


def test_build_metrics(test_policy):
    _, metrics = test_policy
    assert metrics["n_params"] > 0 and metrics["n_examples"] > 0
    assert 0 < metrics["final_loss"] < 7
    assert metrics["seconds"] < 60


def test_checkpoint_loads_and_chats(test_policy):
    out, _ = test_policy
    assert (out / "model.safetensors").exists()
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    assert tok.padding_side == "left"
    chat = [{"role": "user", "content": PROMPT}]
    prompt = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert prompt == "<|user|>Describe the penguin.<|end|><|assistant|>"
    full = tok.apply_chat_template(chat + [{"role": "assistant", "content": "Hi."}], tokenize=False)
    assert full.endswith("Hi." + tok.eos_token)

    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"] == tok.eos_token_id and gen["pad_token_id"] == tok.pad_token_id

    enc = tok([prompt, "<|user|>Hi<|end|><|assistant|>"], return_tensors="pt", padding=True, add_special_tokens=False)
    assert enc["input_ids"][1, 0] == tok.pad_token_id  # left padding
    torch.manual_seed(0)
    out_ids = model.generate(**enc, do_sample=True, max_new_tokens=8)
    assert out_ids.shape[0] == 2 and out_ids.shape[1] <= enc["input_ids"].shape[1] + 8


def test_build_is_deterministic(test_policy, tmp_path):
    out, _ = test_policy
    build_policy(tmp_path, preset="test", seed=0, progress=False)
    a, b = load_file(out / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (out / "tokenizer.json").read_text() == (tmp_path / "tokenizer.json").read_text()


# ---------------------------------------------------------------------------
# build.py, the real default policy (about 4 minutes on 2 idle CPU cores; far longer when they are busy)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_default_policy_samples_are_varied_and_stop(tmp_path):
    build_policy(tmp_path, preset="default", seed=0, progress=False)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    model = AutoModelForCausalLM.from_pretrained(tmp_path)
    prompts = task.demo_prompts(40, seed=1)
    texts = [
        tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=1.0, max_new_tokens=96)
    new = out[:, enc["input_ids"].shape[1] :]
    assert (new == tok.eos_token_id).any(dim=1).float().mean() >= 0.7
    replies = tok.batch_decode(new, skip_special_tokens=True)
    feats = [judge.features(p, r) for p, r in zip(prompts, replies, strict=True)]
    for q in judge.QUALITIES:
        assert {f[q] >= 0.5 for f in feats} == {True, False}, q
