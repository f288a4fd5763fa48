"""The snapshot: which judgments become pairs, the stable held-out split, the bound, the bad-data reasons."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from sqlalchemy import select

from app.policies.models import PolicyVersion
from app.prompts.models import Prompt
from app.prompts.service import content_hash
from app.training import snapshot as snapshot_module
from app.training.schemas import RoundConfig, resolve_config
from app.training.snapshot import SnapshotError, split_of, survey, write_snapshot
from tests.factories import (
    make_comparison,
    make_judged_pair,
    make_judgment,
    make_policy_version,
    make_prompt,
    make_user,
)
from tests.training.conftest import add_preferences


def _config(settings, **overrides) -> RoundConfig:
    # A fixed held-out share: these tests count pairs on each side of the split.
    data = {"heldout_fraction": 0.1, **overrides.pop("data", {})}
    return resolve_config(settings=settings, overrides={"data": data, **overrides})


def _snapshot(db, settings, tmp_path, name="snap", **overrides):
    with db.session() as session:
        snapshot = write_snapshot(
            db=session, round_id=7, config=_config(settings, **overrides), out_dir=tmp_path / name
        )
    pairs = [json.loads(line) for line in (tmp_path / name / "pairs.jsonl").read_text().splitlines()]
    return snapshot, pairs


def test_pairs_exclude_inactive_and_excluded_annotators_ties_and_both_bad(db, settings, fake_policy, tmp_path):
    add_preferences(db, annotator_id=make_user(db, "ann"), policy_version_id=fake_policy.id)  # 180 judgments
    inactive = make_user(db, "gone", is_active=False)
    excluded = make_user(db, "excluded", excluded_from_training=True)
    ann = make_user(db, "ann2")
    judge = {"version_a_id": fake_policy.id, "prompt": "question number 1"}
    dropped = [
        make_judged_pair(db, annotator_id=inactive, text_a="A1", text_b="B1", **judge),
        make_judged_pair(db, annotator_id=excluded, text_a="A2", text_b="B2", **judge),
        make_judged_pair(db, annotator_id=ann, text_a="A3", text_b="B3", choice="tie", **judge),
        make_judged_pair(db, annotator_id=ann, text_a="A4", text_b="B4", choice="both_bad", **judge),
    ]
    chose_b = make_judged_pair(db, annotator_id=ann, text_a="worse", text_b="better", choice="b", strength=3, **judge)

    snapshot, pairs = _snapshot(db, settings, tmp_path)
    by_id = {p["judgment_id"]: p for p in pairs}
    assert len(pairs) == 181 and not set(dropped) & set(by_id)
    assert by_id[chose_b] | {"prompt_id": 0} == {
        "judgment_id": chose_b,
        "prompt_id": 0,
        "prompt": [{"role": "user", "content": "question number 1"}],
        "chosen": "better",
        "rejected": "worse",
        "margin": 1.0,
        "split": by_id[chose_b]["split"],
    }
    assert snapshot.max_judgment_id == chose_b
    assert snapshot.counts == {
        "judgments": 185,
        "from_usable_annotators": 183,
        "strict": 181,
        "ties": 2,
        "train_pairs": 169,
        "eval_pairs": 12,
        "ppo_prompts": 56,
        "eval_prompts": 4,
    }


def test_ties_train_in_both_orders_when_included_but_never_count_as_held_out(db, settings, fake_policy, tmp_path):
    ann = make_user(db, "ann")
    add_preferences(db, annotator_id=ann, policy_version_id=fake_policy.id)
    texts = [f"question number {i}" for i in range(60)]
    on_train = next(t for t in texts if split_of_prompt(t) == "train")
    on_eval = next(t for t in texts if split_of_prompt(t) == "eval")
    for prompt in (on_train, on_eval):
        make_judged_pair(
            db, annotator_id=ann, version_a_id=fake_policy.id, prompt=prompt, text_a="A", text_b="B", choice="tie"
        )
    _snapshot_, pairs = _snapshot(db, settings, tmp_path, data={"include_ties": True})
    ties = [p for p in pairs if p["chosen"] in ("A", "B")]
    assert sorted((p["chosen"], p["rejected"]) for p in ties) == [("A", "B"), ("B", "A")]
    assert {p["split"] for p in ties} == {"train"}


def split_of_prompt(text: str, fraction: float = 0.1) -> str:
    return split_of(content_hash([{"role": "user", "content": text}]), fraction)


def test_split_is_stable_across_snapshots_and_only_grows_with_the_fraction(db, settings, fake_policy, tmp_path):
    ann = make_user(db, "ann")
    add_preferences(db, annotator_id=ann, policy_version_id=fake_policy.id)
    _, first = _snapshot(db, settings, tmp_path, "first")
    add_preferences(db, annotator_id=ann, policy_version_id=fake_policy.id, n_prompts=80, per_prompt=1)
    _, second = _snapshot(db, settings, tmp_path, "second")
    split = {p["prompt_id"]: p["split"] for p in second}
    assert all(split[p["prompt_id"]] == p["split"] for p in first)
    assert len(second) == len(first) + 80
    _, wider = _snapshot(db, settings, tmp_path, "wider", data={"heldout_fraction": 0.3})
    assert all(p["split"] == "eval" for p in wider if split[p["prompt_id"]] == "eval")
    assert sum(p["split"] == "eval" for p in wider) > sum(p["split"] == "eval" for p in second)


def test_snapshot_files_carry_the_config_the_models_and_the_bound(db, settings, fake_policy, tmp_path):
    add_preferences(db, annotator_id=make_user(db, "ann"), policy_version_id=fake_policy.id)
    make_policy_version(db, number=2, path=fake_policy.path, parent_id=fake_policy.id)
    snapshot, _ = _snapshot(db, settings, tmp_path, reference="previous")
    out = tmp_path / "snap"
    config = json.loads((out / "config.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    prompts = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    assert config["round_id"] == 7 and config["reference"] == "previous"
    assert config["policy_dir"] == config["base_policy_dir"] == config["ref_policy_dir"] == fake_policy.path
    assert RoundConfig.model_validate({k: v for k, v in config.items() if k in RoundConfig.model_fields})
    assert manifest["max_judgment_id"] == snapshot.max_judgment_id == 180
    assert (manifest["policy_version"], manifest["base_policy_version"]) == (2, 1)
    assert {p["split"] for p in prompts} == {"train", "eval"} and len(prompts) == 60


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("nothing", "No judgments yet"),
        ("only_ties", "All 12 usable judgments are ties or both-bad"),
        (
            "excluded",
            "All 180 judgments come from deactivated annotators or annotators excluded from training",
        ),
        ("few", "Too few judgments for a held-out set: 3 held-out pairs, at least 10 needed"),
        ("no_prompts", "No active prompts in the training split"),
    ],
)
def test_bad_data_fails_with_a_reason(db, settings, fake_policy, tmp_path, case, message):
    if case == "only_ties":
        for i in range(12):
            make_judged_pair(
                db,
                annotator_id=make_user(db, f"a{i}"),
                version_a_id=fake_policy.id,
                prompt=f"p{i}",
                text_a="A",
                text_b="B",
                choice="tie" if i % 2 else "both_bad",
            )
    elif case == "excluded":
        add_preferences(
            db, annotator_id=make_user(db, "ann", excluded_from_training=True), policy_version_id=fake_policy.id
        )
    elif case == "few":
        add_preferences(
            db, annotator_id=make_user(db, "ann"), policy_version_id=fake_policy.id, n_prompts=40, per_prompt=1
        )
    elif case == "no_prompts":  # judged prompts that were deactivated since
        add_preferences(db, annotator_id=make_user(db, "ann"), policy_version_id=fake_policy.id, active=False)
    with db.session() as session, pytest.raises(SnapshotError, match=message) as caught:
        write_snapshot(db=session, round_id=1, config=_config(settings), out_dir=tmp_path / "snap")
    assert not (tmp_path / "snap").exists()
    assert (
        caught.value.max_judgment_id
        == {"nothing": 0, "only_ties": 12, "excluded": 180, "few": 40, "no_prompts": 180}[case]
    )


def test_no_active_policy_or_a_broken_one_fails_with_a_reason(db, settings, fake_policy, tmp_path):
    add_preferences(db, annotator_id=make_user(db, "ann"), policy_version_id=fake_policy.id)
    (Path(fake_policy.path) / "model.safetensors").write_bytes(b"truncated")
    with (
        db.session() as session,
        pytest.raises(SnapshotError, match="Policy version 1 cannot be trained from"),
    ):
        write_snapshot(db=session, round_id=1, config=_config(settings), out_dir=tmp_path / "snap")
    with db.session() as session:
        session.get(PolicyVersion, fake_policy.id).status = "archived"
    with db.session() as session, pytest.raises(SnapshotError, match="There is no active policy version"):
        write_snapshot(db=session, round_id=1, config=_config(settings), out_dir=tmp_path / "snap")


@pytest.fixture
def mixed_judgments(db, fake_policy) -> None:
    """Judgments of every kind a snapshot tells apart, on 50 prompts (a fifth of them deactivated since,
    on both sides of the split): a, b (with strengths), ties and both-bad; gold pairs; pairs judged by
    several annotators; annotators deactivated or excluded from training; and prompts never judged."""
    rng = random.Random(15)
    annotators = [make_user(db, f"ann{i}") for i in range(3)]
    annotators += [make_user(db, "gone", is_active=False), make_user(db, "excluded", excluded_from_training=True)]
    choices = ["a", "a", "b", "b", "tie", "both_bad"]
    with db.session() as session:
        for i in range(50):
            prompt_id = make_prompt(session, text=f"mixed question {i}", active=i % 5 != 0)
            for _ in range(rng.randint(1, 3)):
                gold = rng.random() < 0.2
                comparison_id = make_comparison(
                    session, prompt_id=prompt_id, version_a_id=fake_policy.id, is_gold=gold,
                    gold_choice="a" if gold else None, overlap_target=3,
                )  # fmt: skip
                for annotator_id in rng.sample(annotators, rng.randint(1, 3)):
                    choice = rng.choice(choices)
                    strength = rng.choice([None, 1, 2, 3]) if choice in ("a", "b") else None
                    make_judgment(
                        session,
                        comparison_id=comparison_id,
                        annotator_id=annotator_id,
                        choice=choice,
                        strength=strength,
                    )
        for i in range(5):
            make_prompt(session, text=f"never judged {i}")


@pytest.mark.parametrize("include_ties", [False, True])
@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.6])
def test_the_survey_counts_in_grouped_queries_what_the_snapshot_writes(
    db, settings, tmp_path, mixed_judgments, monkeypatch, include_ties, fraction
):
    config = _config(
        settings, data={"heldout_fraction": fraction, "include_ties": include_ties, "min_heldout_pairs": 1}
    )
    with db.session() as session:
        written = write_snapshot(db=session, round_id=1, config=config, out_dir=tmp_path / "snap")
    pairs = [json.loads(line) for line in (tmp_path / "snap" / "pairs.jsonl").read_text().splitlines()]
    prompts = [json.loads(line) for line in (tmp_path / "snap" / "prompts.jsonl").read_text().splitlines()]
    # The fixture reaches every rule: ties and both-bad left out (or trained in both orders), held-out
    # prompts that were deactivated since, unusable annotators.
    counts = written.counts
    assert counts["ties"] > 0 and counts["from_usable_annotators"] < counts["judgments"]
    assert (counts["train_pairs"] > counts["strict"] - counts["eval_pairs"]) == include_ties
    assert any(p["split"] == "eval" for p in prompts if p["prompt_id"] not in _active_prompt_ids(db))
    assert counts["train_pairs"] == sum(p["split"] == "train" for p in pairs)
    assert counts["eval_prompts"] == sum(p["split"] == "eval" for p in prompts)

    # The survey reads grouped counts only, never a row per judgment.
    def per_judgment(*args, **kwargs):
        raise AssertionError("the survey read one row per judgment")

    monkeypatch.setattr(snapshot_module, "_pairs", per_judgment)
    with db.session() as session:
        surveyed, shortfalls = survey(db=session, config=config)
    assert surveyed == counts
    assert shortfalls == []


def _active_prompt_ids(db) -> set[int]:
    with db.session() as session:
        return set(session.scalars(select(Prompt.id).where(Prompt.is_active.is_(True))))
