"""A new API token shown once, on the page a token form redirects to (post/redirect/get): a reload then
neither re-submits the form nor shows the token again.

The token crosses the redirect in the session cookie, which is signed but readable, so it travels sealed
(encrypted under a key of its own, app.core.security.seal) and expires within minutes; the page that
shows it removes it from the session.
"""

from __future__ import annotations

from fastapi import Request

from app.core.security import seal, unseal

PURPOSE = "prefloop new api token v1"
SESSION_KEY = "new_token"
MAX_AGE_S = 300  # a redirect takes milliseconds; this only bounds a copy of the cookie taken meanwhile


def hold(request: Request, *, secret_key: str, token: str, owner: str) -> None:
    """Keep `token` (of user `owner`) for the next page."""
    request.session[SESSION_KEY] = {"token": seal(secret_key, PURPOSE, token), "owner": owner}


def take(request: Request, *, secret_key: str) -> dict[str, str]:
    """The held token as {"new_token", "new_token_owner"} for a page's context, once; {} when none."""
    held = request.session.pop(SESSION_KEY, None)
    if not isinstance(held, dict) or not isinstance(held.get("token"), str):
        return {}
    token = unseal(secret_key, PURPOSE, held["token"], max_age_s=MAX_AGE_S)
    return {"new_token": token, "new_token_owner": str(held.get("owner", ""))} if token else {}
