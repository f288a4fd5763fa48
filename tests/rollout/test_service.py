"""Human-gated rollouts decided by scripted annotators (app/simulate), and the ways a rollout ends early;
judgments of rollout pairs weighed as they are stored, and every end announced to webhooks."""

from __future__ import annotations

import json
import random
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.auth.models import Role, User
from app.comparisons.models import Choice, Comparison, ComparisonStatus
from app.core.db import utcnow
from app.core.errors import Conflict, InvalidState
from app.judgments import service as judgment_service
from app.judgments.models import Judgment, ScreenChoice
from app.policies import service as policy_service
from app.policies.models import PolicyStatus, PolicyVersion
from app.queue import service as queue_service
from app.ratings.service import MIN_BATTLES
from app.rollout import service
from app.rollout.models import Rollout, RolloutStatus
from app.simulate.preferences import load
from app.simulate.runner import AnnotatorSpec, decide
from app.webhooks import service as webhook_service
from app.webhooks.models import WebhookDelivery, WebhookEvent
from tests.factories import make_comparison, make_judgment, make_policy_version, make_user, start_rollout

POLITE = "Thank you for asking! Rain is water falling from clouds. Hope this helps."
RUDE = "Rain is water falling from clouds, obviously. Go away."


def _judge(db, rollout_id: int, spec: AnnotatorSpec, *, candidate_text: str, parent_text: str, n: int) -> Rollout:
    """Up to n candidate-vs-parent pairs (sides drawn at random) judged by `spec`, the rollout evaluated
    after each judgment as the sampler's loop does; stops when it ends."""
    rng = random.Random(0)
    annotator = make_user(db, f"scripted-{spec.name}")
    with db.session() as session:
        rollout = service.get_or_raise(db=session, rollout_id=rollout_id)
        sides = [(rollout.candidate_id, candidate_text), (rollout.parent_id, parent_text)]
    for i in range(n):
        rng.shuffle(sides)
        (version_a, text_a), (version_b, text_b) = sides
        comparison = make_comparison(db, version_a_id=version_a, version_b_id=version_b, text_a=text_a, text_b=text_b)
        said = decide(spec, f"question {i}", text_a, text_b, rng)
        make_judgment(
            db, comparison_id=comparison, annotator_id=annotator, choice={"left": "a", "right": "b"}.get(said, "tie")
        )
        with db.session() as session:
            rollout = service.evaluate(db=session, rollout_id=rollout_id, now=utcnow())
        if rollout.status is not RolloutStatus.running:
            break
    return rollout


def _status(db, version_id: int) -> PolicyStatus:
    with db.session() as session:
        return session.get(PolicyVersion, version_id).status


def test_people_who_prefer_the_candidate_activate_it(settings, db, versions):
    parent, candidate = versions
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    spec = AnnotatorSpec("polite", preference=load("polite"), noise=0.2)
    rollout = _judge(db, rollout_id, spec, candidate_text=POLITE, parent_text=RUDE, n=200)
    assert rollout.status is RolloutStatus.activated, rollout.reason
    assert rollout.battles >= MIN_BATTLES and rollout.wins > rollout.losses
    assert rollout.rating_diff_low > 0 and rollout.reason.startswith("People prefer the candidate")
    assert (_status(db, candidate), _status(db, parent)) == (PolicyStatus.active, PolicyStatus.archived)


def test_people_who_prefer_the_parent_reject_the_candidate(settings, db, versions):
    parent, candidate = versions
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    spec = AnnotatorSpec("polite", preference=load("polite"), noise=0.2)
    rollout = _judge(db, rollout_id, spec, candidate_text=RUDE, parent_text=POLITE, n=200)
    assert rollout.status is RolloutStatus.rejected, rollout.reason
    assert rollout.rating_diff_high < 0 and rollout.reason.startswith("People prefer the parent")
    assert (_status(db, candidate), _status(db, parent)) == (PolicyStatus.candidate, PolicyStatus.active)


def test_a_coin_flip_annotator_ends_inconclusive_at_the_cap(settings, db, versions):
    parent, candidate = versions
    settings.TRAINING_ROLLOUT_MAX_BATTLES = 60
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    coin = AnnotatorSpec("coin", preference=load("polite"), noise=1.0)  # every answer a random side
    rollout = _judge(db, rollout_id, coin, candidate_text=POLITE, parent_text=RUDE, n=200)
    assert rollout.status is RolloutStatus.inconclusive, rollout.reason
    assert rollout.battles == 60 and "cap of 60 judgments" in rollout.reason
    assert rollout.rating_diff_low < 0 < rollout.rating_diff_high
    assert (_status(db, candidate), _status(db, parent)) == (PolicyStatus.candidate, PolicyStatus.active)


def test_an_undecided_rollout_ends_inconclusive_at_its_deadline(settings, db, versions):
    _, candidate = versions
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    later = utcnow() + timedelta(hours=settings.TRAINING_ROLLOUT_MAX_HOURS, seconds=1)
    with db.session() as session:
        rollout = service.evaluate(db=session, rollout_id=rollout_id, now=later)
        assert rollout.status is RolloutStatus.inconclusive
        assert rollout.reason == "No verdict before the deadline: no rollout judgments."


def test_only_rollout_battles_count(settings, db, versions):
    """Judgments of candidate-vs-parent pairs from before the start, and of other versions, are left out."""
    parent, candidate = versions
    annotator = make_user(db, "early")
    other = make_policy_version(db, number=3, status=PolicyStatus.archived)
    for version_b in (parent, other):
        comparison = make_comparison(db, version_a_id=candidate, version_b_id=version_b)
        make_judgment(db, comparison_id=comparison, annotator_id=annotator, created_at=utcnow() - timedelta(days=1))
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    comparison = make_comparison(db, version_a_id=candidate, version_b_id=other)
    make_judgment(db, comparison_id=comparison, annotator_id=annotator, choice=Choice.a)
    with db.session() as session:
        assert service.evaluate(db=session, rollout_id=rollout_id, now=utcnow()).battles == 0


def test_an_admin_activating_another_version_ends_the_rollout_decided_by_admin(settings, db, versions):
    parent, candidate = versions
    rollback = make_policy_version(db, number=3, status=PolicyStatus.archived, path=_path_of(db, parent))
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    admin = _admin(db)
    with db.session() as session:
        service.activate(db=session, version_id=rollback, admin=session.merge(admin), now=utcnow())
    with db.session() as session:
        rollout = service.get_or_raise(db=session, rollout_id=rollout_id)
        assert rollout.status is RolloutStatus.ended and rollout.ended_by_id == admin.id
        assert rollout.reason == "Decided by admin: admin boss activated v3; the candidate stays a candidate."
        assert [v.number for v in session.query(PolicyVersion).filter_by(status=PolicyStatus.active)] == [3]
    assert _status(db, candidate) is PolicyStatus.candidate


def test_an_admin_activating_the_candidate_ends_the_rollout_activated(settings, db, versions):
    _, candidate = versions
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    with db.session() as session:
        service.activate(db=session, version_id=candidate, admin=None, now=utcnow())
        rollout = service.get_or_raise(db=session, rollout_id=rollout_id)
        assert rollout.status is RolloutStatus.activated
        assert rollout.reason == "Decided by admin: an admin activated v2, the candidate."


def test_a_rollback_that_bypassed_the_rollout_ends_it_at_the_next_evaluation(settings, db, versions):
    """An activation that did not go through the rollout (another tool, a hand edit) is still noticed."""
    parent, candidate = versions
    rollback = make_policy_version(db, number=3, status=PolicyStatus.archived, path=_path_of(db, parent))
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    with db.session() as session:
        policy_service.activate(db=session, version_id=rollback)
    with db.session() as session:
        rollout = service.evaluate(db=session, rollout_id=rollout_id, now=utcnow())
        assert rollout.status is RolloutStatus.ended
        assert rollout.reason == "Decided by admin: v3 was activated (rolled back or forward) while v1 was compared."


def test_a_candidate_whose_files_are_gone_is_not_activated_and_the_rollout_says_why(settings, db):
    parent = make_policy_version(db, number=1)  # the factory's paths do not exist
    candidate = make_policy_version(db, number=2, status=PolicyStatus.candidate, parent_id=parent)
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    spec = AnnotatorSpec("polite", preference=load("polite"))
    rollout = _judge(db, rollout_id, spec, candidate_text=POLITE, parent_text=RUDE, n=50)
    assert rollout.status is RolloutStatus.ended
    assert rollout.reason.startswith("People prefer the candidate") and "But it cannot be activated" in rollout.reason
    assert (_status(db, candidate), _status(db, parent)) == (PolicyStatus.candidate, PolicyStatus.active)


def test_stopping_twice_says_how_it_ended(settings, db, versions):
    _, candidate = versions
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    admin = _admin(db)
    with db.session() as session:
        rollout = service.stop(db=session, rollout_id=rollout_id, admin=session.merge(admin), now=utcnow())
        assert rollout.status is RolloutStatus.ended
        assert rollout.reason == "Stopped by admin boss: no rollout judgments."
    with db.session() as session, pytest.raises(InvalidState, match="already ended \\(ended\\): Stopped by admin boss"):
        service.stop(db=session, rollout_id=rollout_id, admin=session.merge(admin), now=utcnow())


def test_a_new_rollout_replaces_the_running_one_and_one_runs_at_most(settings, db, versions):
    parent, candidate = versions
    first = start_rollout(settings, db, candidate_id=candidate)
    newer = make_policy_version(db, number=3, status=PolicyStatus.candidate, parent_id=parent)
    second = start_rollout(settings, db, candidate_id=newer)
    with db.session() as session:
        assert service.get_or_raise(db=session, rollout_id=first).reason == "Ended: the rollout of v3 replaced it."
        assert [r.id for r in service.list_(db=session) if r.status is RolloutStatus.running] == [second]


def test_no_rollout_starts_when_the_parent_is_not_the_active_version(settings, db, versions):
    parent, _ = versions
    orphan = make_policy_version(db, number=3, status=PolicyStatus.candidate, parent_id=parent)
    grandchild = make_policy_version(db, number=4, status=PolicyStatus.candidate, parent_id=orphan)
    with db.session() as session:
        candidate = session.get(PolicyVersion, grandchild)
        rollout, refused = service.start(db=session, settings=settings, candidate=candidate, share=0.5, now=utcnow())
    assert rollout is None and refused.startswith("No rollout: its parent (v3) is not the active version")


def _admin(db) -> User:
    with db.session() as session:
        return session.get(User, make_user(session, "boss", role=Role.admin))


def _path_of(db, version_id: int) -> str:
    with db.session() as session:
        return session.get(PolicyVersion, version_id).path


def test_an_admin_activation_and_peoples_verdict_at_the_same_moment_leave_one_active_version(settings, db, versions):
    """People's judgments would activate the candidate; an admin rolls back in the same instant. The
    admin's transaction holds the rollout's row, so the rule's evaluation waits for it, then finds the
    rollout decided by the admin and activates nothing."""
    parent, candidate = versions
    rollback = make_policy_version(db, number=3, status=PolicyStatus.archived, path=_path_of(db, parent))
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    annotator = make_user(db, "sweep")
    for _ in range(20):
        comparison = make_comparison(db, version_a_id=candidate, version_b_id=parent)
        make_judgment(db, comparison_id=comparison, annotator_id=annotator, choice=Choice.a)
    evaluated = threading.Event()

    def peoples_verdict() -> None:
        with db.write_session() as session:
            service.evaluate(db=session, rollout_id=rollout_id, now=utcnow())
        evaluated.set()

    with db.write_session() as session:
        service.activate(db=session, version_id=rollback, admin=None, now=utcnow())
        thread = threading.Thread(target=peoples_verdict)
        thread.start()
        assert not evaluated.wait(0.5), "the evaluation waits for the admin's transaction"
    thread.join(timeout=15)
    assert evaluated.is_set()
    with db.session() as session:
        rollout = service.get_or_raise(db=session, rollout_id=rollout_id)
        assert rollout.status is RolloutStatus.ended and rollout.reason.startswith("Decided by admin")
        assert [v.number for v in session.query(PolicyVersion).filter_by(status=PolicyStatus.active)] == [3]
    assert _status(db, candidate) is PolicyStatus.candidate


# ---- the judgments path: a rollout battle stored is weighed at once, and every end is announced ------------


def _subscribe(db, settings) -> None:
    with db.session() as session:
        webhook_service.create(
            db=session, settings=settings, url="https://hooks.example.com/in", events=[WebhookEvent.rollout_finished]
        )


def _announced(db) -> list[dict]:
    with db.session() as session:
        deliveries = session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))
        return [json.loads(d.body)["data"] | {"type": d.event} for d in deliveries]


def _submit_next(db, annotator: int, *, prefer: int) -> None:
    """The annotator takes the next pair from the queue and picks the answer of version `prefer`, as the
    annotation page submits it (through the judgments service, and nothing else)."""
    with db.write_session() as session:
        pair = queue_service.next_for(db=session, annotator_id=annotator, lock_ttl=timedelta(minutes=5), gold_rate=0)
        comparison = session.get(Comparison, pair.comparison_id)
        preferred = "a" if comparison.completion_a.policy_version_id == prefer else "b"
        judgment_service.submit(
            db=session,
            annotator_id=annotator,
            comparison_id=pair.comparison_id,
            side=ScreenChoice.left if pair.left == preferred else ScreenChoice.right,
            rationale_max_chars=10,
        )


def _rollout(db, rollout_id: int) -> Rollout:
    with db.session() as session:
        return service.get_or_raise(db=session, rollout_id=rollout_id)


@pytest.mark.parametrize(("preferred", "verdict"), [("candidate", "activated"), ("parent", "rejected")])
def test_judgments_of_rollout_pairs_decide_it_as_they_are_stored_and_the_verdict_is_announced(
    settings, db, versions, preferred, verdict
):
    parent, candidate = versions
    _subscribe(db, settings)
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    annotator = make_user(db, "judge")
    rng = random.Random(1)
    for _ in range(60):
        a, b = rng.sample([candidate, parent], 2)
        make_comparison(db, version_a_id=a, version_b_id=b)
    stored = 0
    while _rollout(db, rollout_id).status is RolloutStatus.running and stored < 60:
        _submit_next(db, annotator, prefer=candidate if preferred == "candidate" else parent)
        stored += 1
        assert _rollout(db, rollout_id).battles == stored  # weighed at once, with no sampler running
    rollout = _rollout(db, rollout_id)
    assert rollout.status.value == verdict and MIN_BATTLES <= stored < 60, rollout.reason
    assert _status(db, candidate) is (PolicyStatus.active if verdict == "activated" else PolicyStatus.candidate)
    [event] = _announced(db)
    assert event == {
        "type": "rollout.finished",
        "rollout_id": rollout_id,
        "status": verdict,
        "reason": rollout.reason,
        "candidate_number": 2,
        "parent_number": 1,
        "battles": stored,
        "wins": stored if verdict == "activated" else 0,
        "losses": 0 if verdict == "activated" else stored,
        "ties": 0,
        "rating_diff": rollout.rating_diff,
        "rating_diff_low": rollout.rating_diff_low,
        "rating_diff_high": rollout.rating_diff_high,
        "confidence": rollout.confidence,
        "ended_by": None,
    }


def test_judgments_of_other_pairs_do_not_evaluate_the_rollout(settings, db, versions):
    parent, candidate = versions
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    annotator = make_user(db, "judge")
    for _ in range(3):  # rollout battles stored behind the service's back: seen only when it evaluates
        comparison = make_comparison(db, version_a_id=candidate, version_b_id=parent, status=ComparisonStatus.completed)
        make_judgment(db, comparison_id=comparison, annotator_id=annotator)
    make_comparison(db, version_a_id=parent, version_b_id=parent)
    _submit_next(db, annotator, prefer=parent)
    assert _rollout(db, rollout_id).battles == 0
    make_comparison(db, version_a_id=parent, version_b_id=candidate)
    _submit_next(db, annotator, prefer=parent)
    assert _rollout(db, rollout_id).battles == 4


def test_a_decision_that_cannot_be_taken_now_leaves_the_judgment_stored(settings, db, versions, monkeypatch):
    parent, candidate = versions
    rollout_id = start_rollout(settings, db, candidate_id=candidate)
    annotator = make_user(db, "judge")
    for _ in range(30):
        make_comparison(db, version_a_id=candidate, version_b_id=parent)

    def another_activation_at_this_moment(**kwargs):
        raise Conflict("Another version was activated at the same moment; reload and try again.")

    monkeypatch.setattr(policy_service, "activate", another_activation_at_this_moment)
    for _ in range(30):
        _submit_next(db, annotator, prefer=candidate)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Judgment)) == 30
    assert _rollout(db, rollout_id).status is RolloutStatus.running  # left to the sampler's next pass
    monkeypatch.undo()
    with db.session() as session:
        assert service.evaluate_running(db=session, now=utcnow()).status is RolloutStatus.activated


def test_an_admin_stop_and_a_replaced_rollout_are_announced_too(settings, db, versions):
    parent, candidate = versions
    _subscribe(db, settings)
    first = start_rollout(settings, db, candidate_id=candidate)
    newer = make_policy_version(db, number=3, status=PolicyStatus.candidate, parent_id=parent)
    second = start_rollout(settings, db, candidate_id=newer)
    admin = _admin(db)
    with db.session() as session:
        service.stop(db=session, rollout_id=second, admin=session.merge(admin), now=utcnow())
    assert [(e["rollout_id"], e["status"], e["candidate_number"], e["ended_by"]) for e in _announced(db)] == [
        (first, "ended", 2, None),
        (second, "ended", 3, "boss"),
    ]
    assert _announced(db)[1]["reason"] == "Stopped by admin boss: no rollout judgments."
