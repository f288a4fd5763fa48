"""The policies API: lineage and metrics, activation and rollback, reward models, and who may do what."""

from __future__ import annotations

import json

from app.policies import registry
from app.policies import service as policy_service
from app.policies.models import PolicyStatus
from tests.factories import make_training_round, publish_policy_version


def test_list_and_read_versions_with_lineage(client, settings, db, admin_token, tiny_policy_dir, active_policy):
    v2 = publish_policy_version(
        settings,
        db,
        source_dir=tiny_policy_dir,
        number=2,
        parent_id=active_policy,
        status=PolicyStatus.candidate,
        source="round 2",
        metrics={"n": 2},
    )
    make_training_round(db, policy_version_id=v2, base_policy_version_id=active_policy)

    listed = client.get("/api/v1/policies", headers=admin_token)
    assert listed.status_code == 200
    body = listed.json()
    lineage = [(v["number"], v["status"], v["parent_number"]) for v in body]
    assert lineage == [(2, "candidate", 1), (1, "active", None)]
    assert body[0]["round_id"] is not None and body[1]["round_id"] is None
    assert body[0]["metrics"] == {"n": 2} and body[0]["source"] == "round 2"
    assert body[0]["path"].endswith("policy/v0002")

    one = client.get("/api/v1/policies/2", headers=admin_token)
    assert one.status_code == 200 and one.json() == body[0]


def test_activate_then_roll_back(client, settings, db, admin_token, tiny_policy_dir, active_policy):
    publish_policy_version(
        settings, db, source_dir=tiny_policy_dir, number=2, parent_id=active_policy, status=PolicyStatus.candidate
    )
    response = client.post("/api/v1/policies/2/activate", headers=admin_token)
    assert response.status_code == 200
    assert response.json()["status"] == "active" and response.json()["activated_at"]
    assert {v["number"]: v["status"] for v in client.get("/api/v1/policies", headers=admin_token).json()} == {
        2: "active",
        1: "archived",
    }

    rollback = client.post("/api/v1/policies/1/activate", headers=admin_token)
    assert rollback.status_code == 200 and rollback.json()["status"] == "active"
    with db.session() as session:
        assert policy_service.get_active(db=session).number == 1


def test_activating_a_version_with_missing_files_is_refused(
    client, settings, db, admin_token, tiny_policy_dir, active_policy
):
    publish_policy_version(settings, db, source_dir=tiny_policy_dir, number=2, status=PolicyStatus.candidate)
    (registry.version_dir(settings.registry_dir, "policy", 2) / "config.json").unlink()
    response = client.post("/api/v1/policies/2/activate", headers=admin_token)
    assert response.status_code == 409
    [error] = response.json()["detail"]
    assert error["type"] == "invalid_state"
    assert error["msg"].startswith("Policy version 2 cannot be activated: ")
    assert "has no config.json" in error["msg"]
    with db.session() as session:
        assert policy_service.get_active(db=session).number == 1


def test_unknown_version_is_404(client, admin_token, active_policy):
    for response in (
        client.get("/api/v1/policies/9", headers=admin_token),
        client.post("/api/v1/policies/9/activate", headers=admin_token),
        client.get("/api/v1/reward-models/9", headers=admin_token),
    ):
        assert response.status_code == 404
    assert response.json()["detail"][0]["msg"] == "Reward model 9 does not exist."
    assert client.get("/api/v1/policies/9", headers=admin_token).json()["detail"][0]["msg"] == (
        "Policy version 9 does not exist."
    )


def test_version_number_must_be_an_integer(client, admin_token):
    response = client.get("/api/v1/policies/latest", headers=admin_token)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["path", "number"]


def test_annotators_and_anonymous_clients_cannot_use_the_policies_api(client, annotator_token, active_policy):
    for method, url in (
        ("get", "/api/v1/policies"),
        ("get", "/api/v1/policies/1"),
        ("post", "/api/v1/policies/1/activate"),
        ("get", "/api/v1/reward-models"),
    ):
        denied = client.request(method, url, headers=annotator_token)
        assert denied.status_code == 403 and denied.json()["detail"][0]["msg"] == "Admin role required."
        assert client.request(method, url).status_code == 401


def test_reward_models_are_listed_with_normalization(client, settings, db, admin_token, tiny_policy_dir):
    path = registry.publish(
        registry_dir=settings.registry_dir, kind="reward", number=1, source_dir=tiny_policy_dir, manifest={}
    )
    with db.session() as session:
        policy_service.record_reward_model(
            db=session, number=1, path=path, metrics={"heldout_accuracy": 0.71}, score_mean=0.25, score_std=1.5
        )
    [model] = client.get("/api/v1/reward-models", headers=admin_token).json()
    assert model["number"] == 1 and model["metrics"] == {"heldout_accuracy": 0.71}
    assert (model["score_mean"], model["score_std"]) == (0.25, 1.5)
    assert json.loads((path / "manifest.json").read_text())["kind"] == "reward"
    assert client.get("/api/v1/reward-models/1", headers=admin_token).json() == model
