"""The table of contents: every JSON router under /api/v1 and every page router, in one place.

API routes are authenticated by their own dependencies (ApiUser / ApiAdmin); the token scope each router
needs is declared here (the accounts router declares it per route), and a route that declares none
refuses every request (tests/auth/test_scopes.py walks them all). Every page of the admin console needs
an admin, declared here once for all of them.
"""

from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from app.admin import pages as admin_pages
from app.annotate import pages as annotate_pages
from app.api import home
from app.api.deps import SAFE_METHODS, page_admin, scope_required
from app.auth import console_pages as auth_console_pages
from app.auth import pages as auth_pages
from app.auth import views as auth_views
from app.auth.models import Scope
from app.comparisons import pages as comparison_pages
from app.core import health
from app.core.errors import ErrorResponse
from app.export import pages as export_pages
from app.export import views as export_views
from app.judgments import pages as judgment_pages
from app.judgments import views as judgment_views
from app.policies import pages as policy_pages
from app.policies import views as policy_views
from app.prompts import pages as prompt_pages
from app.prompts import views as prompt_views
from app.queue import views as queue_views
from app.ratings import views as rating_views
from app.rollout import views as rollout_views
from app.sampler import views as sampler_views
from app.stats import views as stats_views
from app.training import pages as training_pages
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
api_router.include_router(rollout_views.router, tags=["policies"], dependencies=ADMIN)  # /rollouts
api_router.include_router(training_views.router, tags=["training"], dependencies=ADMIN)  # /rounds
# /stats/progress|annotators|agreement: about annotators and the loop, not preference data
api_router.include_router(stats_views.router, tags=["stats"], dependencies=ADMIN)
api_router.include_router(webhook_views.router, tags=["webhooks"], dependencies=ADMIN)

# The admin console, one router per domain, all under /admin: every page needs an admin (an annotator gets
# a 403 page, an anonymous browser the sign-in page).
CONSOLE_ROUTERS = [
    admin_pages.router,  # /admin (dashboard), /admin/annotators, /admin/guidelines
    auth_console_pages.router,  # /admin/users, /admin/tokens
    prompt_pages.router,  # /admin/prompts
    comparison_pages.router,  # /admin/gold, /admin/comparisons/{id}
    judgment_pages.router,  # /admin/judgments
    export_pages.router,  # /admin/export
    policy_pages.router,  # /admin/policies, /admin/rollouts/{id}/stop
    training_pages.router,  # /admin/rounds
]

page_router = APIRouter(include_in_schema=False)
page_router.include_router(auth_pages.router)  # /login, /logout, /account
page_router.include_router(annotate_pages.router)  # /annotate
for console_router in CONSOLE_ROUTERS:
    page_router.include_router(console_router, prefix="/admin", dependencies=[Depends(page_admin)])
page_router.include_router(home.router)  # /

public_router = APIRouter(tags=["health"])
public_router.include_router(health.router)


ERROR_DESCRIPTIONS = {
    400: "The body could not be read (e.g. a malformed multipart form).",
    401: "No credentials, or an invalid, revoked or expired token.",
    403: "The account lacks the role, or a browser session sent no CSRF token.",
    404: "A record named in the path or body does not exist.",
    409: "The request conflicts with stored data or with the state of what it acts on.",
    413: "The request body is larger than this route's limit.",
    422: "A parameter or body field is invalid; `loc` names it.",
}


def _error_statuses(route: RouteContext, method: str) -> set[int]:
    """The error statuses an API route can answer, from its parameters and method: every API route is
    authenticated (401, 403), see app.api.deps; writes pass app.core.limits first (401, 413)."""
    params = {"path": False, "query": False}
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        params["path"] |= bool(dependant.path_params)
        params["query"] |= bool(dependant.query_params or dependant.header_params or dependant.cookie_params)
        pending.extend(dependant.dependencies)
    statuses = {401, 403}
    if method not in SAFE_METHODS:  # anonymous writes and bodies over the limit end in the middleware
        statuses |= {401, 404, 409, 413}
    if route.body_field is not None:
        statuses |= {400, 413, 422}
    if params["path"]:
        statuses |= {404, 422}
    if params["query"]:
        statuses.add(422)
    return statuses


def document_errors(app: FastAPI) -> None:
    """Describe every API error status in the OpenAPI schema, all with the one error body (ErrorResponse)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()  # FastAPI keeps it as app.openapi_schema: edited in place below
        error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(error_schema.pop("$defs", {}))
        components["ErrorResponse"] = error_schema
        content = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        for context in iter_route_contexts(app.routes):
            # Path and methods are None only for routes that are not APIRoutes.
            if not isinstance(context.original_route, APIRoute) or not (context.path or "").startswith("/api/"):
                continue
            for method in context.methods or ():
                operation = schema["paths"][context.path_format][method.lower()]
                for status in sorted(_error_statuses(context, method)):
                    operation["responses"][str(status)] = {
                        "description": ERROR_DESCRIPTIONS[status],
                        "content": content,
                    }
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        return schema

    # Replacing the method is FastAPI's documented way to extend the schema ("Extending OpenAPI").
    app.openapi = openapi  # type: ignore[method-assign]
