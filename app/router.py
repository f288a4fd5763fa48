"""The table of contents: every JSON router under /api/v1 and every page router, in one place.

API routes are authenticated by their own dependencies (ApiUser / ApiAdmin); admin-only routers are
listed separately so the split is visible here.
"""

from fastapi import APIRouter

from app.admin import pages as admin_pages
from app.auth import pages as auth_pages
from app.auth import views as auth_views
from app.core import health
from app.export import views as export_views
from app.judgments import views as judgment_views
from app.policies import views as policy_views
from app.prompts import views as prompt_views
from app.queue import pages as queue_pages
from app.queue import views as queue_views
from app.ratings import views as rating_views
from app.sampler import views as sampler_views
from app.stats import views as stats_views
from app.training import views as training_views
from app.webhooks import views as webhook_views

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(auth_views.router, tags=["accounts"])
api_router.include_router(queue_views.router)  # /queue/next, /queue/{id}/skip|release
api_router.include_router(judgment_views.router)  # /judgments
api_router.include_router(export_views.router, tags=["export"])
api_router.include_router(policy_views.router, tags=["policies"])
api_router.include_router(sampler_views.router, tags=["policies"])
api_router.include_router(prompt_views.router, tags=["prompts"])
api_router.include_router(rating_views.router, tags=["policies"])
api_router.include_router(training_views.router, tags=["training"])  # /rounds
api_router.include_router(stats_views.router, tags=["stats"])  # /stats/progress|annotators|agreement
api_router.include_router(webhook_views.router, tags=["webhooks"])

page_router = APIRouter(include_in_schema=False)
page_router.include_router(auth_pages.router)
page_router.include_router(queue_pages.router)  # /annotate
page_router.include_router(admin_pages.router)  # /admin/...
page_router.include_router(health.home_router)

public_router = APIRouter(tags=["health"])
public_router.include_router(health.router)
