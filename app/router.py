"""The table of contents: every JSON router under /api/v1 and every page router, in one place.

API routes are authenticated by their own dependencies (ApiUser / ApiAdmin); the token scope each router
needs is declared here (the accounts router declares it per route), and a route that declares none
refuses every request (tests/auth/test_scopes.py walks them all).
"""

from fastapi import APIRouter

from app.admin import pages as admin_pages
from app.api.deps import scope_required
from app.auth import pages as auth_pages
from app.auth import views as auth_views
from app.auth.models import Scope
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

ANNOTATE = [scope_required(Scope.annotate)]
EXPORT = [scope_required(Scope.export)]
ADMIN = [scope_required(Scope.admin)]

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(auth_views.router, tags=["accounts"])  # /me and own tokens: any scope; /users: admin
api_router.include_router(queue_views.router, dependencies=ANNOTATE)  # /queue/next, /queue/{id}/skip|release
api_router.include_router(judgment_views.router, dependencies=ANNOTATE)  # /judgments
api_router.include_router(export_views.router, tags=["export"], dependencies=EXPORT)
api_router.include_router(policy_views.router, tags=["policies"], dependencies=ADMIN)
api_router.include_router(sampler_views.router, tags=["policies"], dependencies=ADMIN)
api_router.include_router(prompt_views.router, tags=["prompts"], dependencies=ADMIN)
api_router.include_router(rating_views.router, tags=["policies"], dependencies=ADMIN)
api_router.include_router(training_views.router, tags=["training"], dependencies=ADMIN)  # /rounds
# /stats/progress|annotators|agreement: about annotators and the loop, not preference data
api_router.include_router(stats_views.router, tags=["stats"], dependencies=ADMIN)
api_router.include_router(webhook_views.router, tags=["webhooks"], dependencies=ADMIN)

page_router = APIRouter(include_in_schema=False)
page_router.include_router(auth_pages.router)
page_router.include_router(queue_pages.router)  # /annotate
page_router.include_router(admin_pages.router)  # /admin/...
page_router.include_router(health.home_router)

public_router = APIRouter(tags=["health"])
public_router.include_router(health.router)
