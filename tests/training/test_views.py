"""The rounds API: admins only, launch validation (422 naming the field, 409 in flight), live reads."""

from __future__ import annotations

import pytest

from app.core.db import utcnow
from app.training import service
from tests.training.conftest import fake_worker


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/rounds"),
        ("post", "/api/v1/rounds"),
        ("get", "/api/v1/rounds/config"),
        ("get", "/api/v1/rounds/1"),
        ("get", "/api/v1/rounds/1/metrics"),
        ("post", "/api/v1/rounds/1/cancel"),
        ("post", "/api/v1/rounds/1/retry"),
    ],
)
def test_rounds_are_for_admins_only(client, annotator_token, method, path):
    response = getattr(client, method)(path, headers=annotator_token)
    assert response.status_code == 403
    assert response.json()["detail"][0]["msg"] == "Admin role required."
    assert getattr(client, method)(path).status_code == 401


def test_launch_then_read_list_and_cancel(client, admin_token):
    response = client.post("/api/v1/rounds", json={"ppo": {"kl_coef": 0.1}}, headers=admin_token)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "queued" and body["trigger"] == "admin" and body["requested_by_id"] is not None
    assert body["config"]["ppo"]["kl_coef"] == 0.1 and body["progress"] == 0.0
    round_id = body["id"]

    assert client.get(f"/api/v1/rounds/{round_id}", headers=admin_token).json()["config"] == body["config"]
    page = client.get("/api/v1/rounds?status=queued", headers=admin_token).json()
    assert page["total"] == 1 and [r["id"] for r in page["items"]] == [round_id]
    assert client.get("/api/v1/rounds?status=failed", headers=admin_token).json()["total"] == 0

    cancelled = client.post(f"/api/v1/rounds/{round_id}/cancel", headers=admin_token)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/rounds/{round_id}/cancel", headers=admin_token)
    assert again.status_code == 409
    assert "only a queued or running round can be cancelled" in again.json()["detail"][0]["msg"]


def test_launch_without_a_body_uses_the_defaults(client, admin_token):
    defaults = client.get("/api/v1/rounds/config", headers=admin_token).json()
    response = client.post("/api/v1/rounds", headers=admin_token)
    assert response.status_code == 201
    assert response.json()["config"] == defaults["defaults"]
    assert defaults["json_schema"]["properties"]["ppo"]["$ref"].endswith("PPOConfig")


@pytest.mark.parametrize(
    ("body", "loc", "msg"),
    [
        (
            {"ppo": {"batch_size": 10, "num_mini_batches": 4}},
            ["body", "ppo", "num_mini_batches"],
            "ppo.num_mini_batches: num_mini_batches (4) must divide batch_size (10).",
        ),
        (
            {"reward": {"learing_rate": 1e-4}},
            ["body", "reward", "learing_rate"],
            "reward.learing_rate: Extra inputs are not permitted",
        ),
        (
            {"ppo": {"precision": "fp16"}},
            ["body", "ppo", "precision"],
            "ppo.precision: Input should be 'auto', 'fp32' or 'bf16'",
        ),
        (
            {"reference": "grandparent"},
            ["body", "reference"],
            "reference: Input should be 'base' or 'previous'",
        ),
        (
            {"evaluate": {"evasion_patterns": ["as an AI", "(sorry|apolog"]}},
            ["body", "evaluate", "evasion_patterns", 1],
            "evaluate.evasion_patterns.1: '(sorry|apolog' is not a valid regular expression: missing ), "
            "unterminated subpattern at position 0",
        ),
        (
            {"gates": {"max_evasion_increase": 5}},
            ["body", "gates", "max_evasion_increase"],
            "gates.max_evasion_increase: Input should be less than or equal to 1",
        ),
    ],
)
def test_launch_with_a_bad_config_is_a_422_naming_the_field(client, admin_token, body, loc, msg):
    response = client.post("/api/v1/rounds", json=body, headers=admin_token)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert (error["loc"], error["msg"]) == (loc, msg)
    assert client.get("/api/v1/rounds", headers=admin_token).json()["total"] == 0


def test_a_body_that_is_not_an_object_is_a_422(client, admin_token):
    response = client.post("/api/v1/rounds", json=[1, 2], headers=admin_token)
    assert response.status_code == 422


def test_a_second_launch_while_one_is_in_flight_is_a_409(client, admin_token):
    first = client.post("/api/v1/rounds", headers=admin_token).json()["id"]
    response = client.post("/api/v1/rounds", headers=admin_token)
    assert response.status_code == 409
    assert response.json()["detail"][0]["msg"] == (
        f"Round {first} is queued; wait for it to finish or cancel it first."
    )


def test_unknown_round_is_a_404_and_an_impossible_id_a_422(client, admin_token):
    for path in ("/api/v1/rounds/99", "/api/v1/rounds/99/metrics"):
        response = client.get(path, headers=admin_token)
        assert response.status_code == 404
        assert response.json()["detail"][0]["msg"] == "Training round 99 does not exist."
    assert client.post("/api/v1/rounds/99/cancel", headers=admin_token).status_code == 404
    for path in ("/api/v1/rounds/99999999999", "/api/v1/rounds/1/metrics?since=99999999999"):
        assert client.get(path, headers=admin_token).status_code == 422
    assert client.post("/api/v1/rounds/99999999999/retry", headers=admin_token).status_code == 422


def test_a_finished_round_shows_its_versions_and_metrics_page_by_page(client, admin_token, db, settings, trained_data):
    round_id = client.post("/api/v1/rounds", headers=admin_token).json()["id"]
    fake_worker(settings, db, {}).step()
    body = client.get(f"/api/v1/rounds/{round_id}", headers=admin_token).json()
    assert body["status"] == "succeeded" and body["progress"] == 1.0
    assert (body["base_policy_number"], body["policy_number"], body["reward_model_number"]) == (1, 2, 1)
    assert body["results"]["gates"] and body["snapshot_max_judgment_id"] == 180

    first = client.get(f"/api/v1/rounds/{round_id}/metrics?limit=3", headers=admin_token).json()
    assert [(p["stage"], p["step"]) for p in first["items"]] == [
        ("reward_model", 1),
        ("reward_model", 2),
        ("ppo", 1),
    ]
    rest = client.get(f"/api/v1/rounds/{round_id}/metrics?since={first['next_since']}", headers=admin_token).json()
    assert [(p["stage"], p["step"]) for p in rest["items"]] == [("ppo", 2)]
    assert rest["items"][0]["values"] == {"objective/kl": "nan"}
    empty = client.get(f"/api/v1/rounds/{round_id}/metrics?since={rest['next_since']}", headers=admin_token).json()
    assert empty == {"round_id": round_id, "items": [], "next_since": rest["next_since"]}

    retried = client.post(f"/api/v1/rounds/{round_id}/retry", headers=admin_token)
    assert retried.status_code == 409
    assert "succeeded; only a failed or cancelled round can be retried" in retried.json()["detail"][0]["msg"]


def test_retry_of_a_failed_round_requeues_it(client, admin_token, db, settings):
    round_id = client.post("/api/v1/rounds", headers=admin_token).json()["id"]
    with db.write_session() as session:
        service.claim_next(db=session, worker_id="w", executor="local", now=utcnow())
        service.finish(
            db=session, round_id=round_id, worker_id="w", status=service.S.failed, now=utcnow(), error="boom"
        )
    assert client.get(f"/api/v1/rounds/{round_id}", headers=admin_token).json()["error"] == "boom"
    response = client.post(f"/api/v1/rounds/{round_id}/retry", headers=admin_token)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["error"]) == ("queued", "")


def test_a_dry_run_returns_the_plan_and_queues_nothing(client, admin_token, trained_data):
    response = client.post("/api/v1/rounds?dry_run=true", json={"reward": {"num_epochs": 2}}, headers=admin_token)
    assert response.status_code == 200
    plan = response.json()
    assert plan["possible"] is True and plan["shortfalls"] == []
    assert plan["counts"]["strict"] == 180
    assert plan["counts"]["train_pairs"] + plan["counts"]["eval_pairs"] == 180
    assert plan["config"]["reward"]["num_epochs"] == 2 and "reward.num_epochs" not in plan["derived"]
    assert plan["derived"]["gates.min_rm_accuracy"]["value"] == plan["config"]["gates"]["min_rm_accuracy"]
    assert "held-out pairs" in plan["derived"]["gates.min_rm_accuracy"]["reason"]
    assert client.get("/api/v1/rounds", headers=admin_token).json()["total"] == 0
    # the launch right after stores the configuration the plan showed
    launched = client.post("/api/v1/rounds", json={"reward": {"num_epochs": 2}}, headers=admin_token).json()
    assert launched["config"] == plan["config"]


def test_a_dry_run_of_an_impossible_round_lists_what_is_missing(client, admin_token):
    response = client.post("/api/v1/rounds?dry_run=true", headers=admin_token)
    assert response.status_code == 200
    plan = response.json()
    assert plan["possible"] is False
    by_what = {s["what"]: s for s in plan["shortfalls"]}
    assert (by_what["held-out pairs"]["there"], by_what["held-out pairs"]["needed"]) == (0, 10)
    assert by_what["held-out pairs"]["more_judgments"] == 34  # 10 held-out pairs at 30 %
    assert "no active policy version" in by_what["policy"]["message"]
    assert client.get("/api/v1/rounds", headers=admin_token).json()["total"] == 0


def test_a_dry_run_with_a_bad_config_is_a_422(client, admin_token):
    response = client.post("/api/v1/rounds?dry_run=true", json={"ppo": {"batch_size": 0}}, headers=admin_token)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "ppo", "batch_size"]


def test_the_config_endpoint_marks_the_derived_defaults(client, admin_token, trained_data):
    info = client.get("/api/v1/rounds/config", headers=admin_token).json()
    derived = info["derived"]
    assert {"data.heldout_fraction", "gates.min_rm_accuracy", "reward.num_epochs", "ppo.learning_rate"} <= set(derived)
    assert info["defaults"]["ppo"]["learning_rate"] == derived["ppo.learning_rate"]["value"]


def test_a_round_refused_by_its_evasion_gate_reports_its_side_effects(client, admin_token, db, settings, trained_data):
    from trainer.contract import GateConfig
    from trainer.round import gate_verdicts

    overrides = {"gates": {"max_evasion_increase": 0.05}, "evaluate": {"evasion_patterns": [r"\bno idea\b"]}}
    round_id = client.post("/api/v1/rounds", json=overrides, headers=admin_token).json()["id"]
    assert client.get(f"/api/v1/rounds/{round_id}", headers=admin_token).json()["side_effects"] == []
    evaluation = {"eval/kl": 0.3, "eval/eos_rate": 1.0, "eval/evasion_rate": 0.5, "eval/evasion_rate_old": 0.25}
    with db.session() as session:
        gates = GateConfig.model_validate(service.get_or_raise(db=session, round_id=round_id).config["gates"])
    verdicts = gate_verdicts({"evaluate": evaluation}, gates)
    reasons = [v["reason"] for v in verdicts.values() if not v["passed"]]
    script = {"end": "rejected", "evaluate": evaluation, "gates": verdicts, "rejected_reasons": reasons}
    fake_worker(settings, db, script).step()

    body = client.get(f"/api/v1/rounds/{round_id}", headers=admin_token).json()
    assert body["status"] == "rejected" and body["policy_number"] is None
    assert body["config"]["evaluate"]["evasion_patterns"] == [r"\bno idea\b"]
    assert body["error"] == (
        "Rejected by a gate: rise of the share of held-out answers marked as evasions (parent 25.0%, new 50.0%) "
        "is 0.25, the gate is <= 0.05 (gates.max_evasion_increase)"
    )
    assert body["results"]["evaluate"]["eval/evasion_rate"] == 0.5
    [evasions] = [f for f in body["side_effects"] if f["name"] == "eval/evasion_rate"]
    assert evasions == {
        "name": "eval/evasion_rate",
        "label": "refusals and evasions",
        "hint": "share matched by the evasion patterns",
        "share": True,
        "better": "lower",
        "parent": 0.25,
        "new": 0.5,
        "change": 0.25,
        "tone": "bad",
    }
