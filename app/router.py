"""The table of contents: every JSON router under /api/v1 and every page router, in one place.

API routes are authenticated by their own dependencies (ApiUser / ApiAdmin); admin-only routers are
listed separately so the split is visible here.
"""

from fastapi import APIRouter

from app.auth import pages as auth_pages
from app.auth import views as auth_views
from app.core import health
from app.ratings import views as rating_views

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(auth_views.router, tags=["accounts"])
api_router.include_router(rating_views.router, tags=["policies"])

page_router = APIRouter(include_in_schema=False)
page_router.include_router(auth_pages.router)
page_router.include_router(health.home_router)

public_router = APIRouter(tags=["health"])
public_router.include_router(health.router)
