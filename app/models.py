"""Imports every domain's tables so Base.metadata is complete (Alembic and tests use this)."""

from app.admin.models import SiteSetting
from app.auth.models import ApiToken, LoginThrottle, Role, User, UserSession
from app.comparisons.models import Choice, Comparison, ComparisonStatus, Completion
from app.core.db import Base
from app.judgments.models import Judgment
from app.policies.models import PolicyStatus, PolicyVersion, RewardModel
from app.prompts.models import Prompt
from app.queue.models import QueueLock, Skip
from app.rollout.models import Rollout, RolloutStatus
from app.training.models import RoundMetric, RoundStatus, TrainingRound
from app.webhooks.models import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiToken",
    "Base",
    "Choice",
    "Comparison",
    "ComparisonStatus",
    "Completion",
    "Judgment",
    "LoginThrottle",
    "PolicyStatus",
    "PolicyVersion",
    "Prompt",
    "QueueLock",
    "RewardModel",
    "Role",
    "Rollout",
    "RolloutStatus",
    "RoundMetric",
    "RoundStatus",
    "SiteSetting",
    "Skip",
    "TrainingRound",
    "User",
    "UserSession",
    "WebhookDelivery",
    "WebhookEndpoint",
]
