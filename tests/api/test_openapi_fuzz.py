"""Every /api/v1 operation fuzzed from the OpenAPI schema (schemathesis, in-process, as an admin), with
valid and invalid inputs: no 5xx, every status is one the operation documents (app.router.document_errors),
and every response matches its declared schema and media type."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.export.conftest import build_world

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance, content_type_conformance]
EXAMPLES_PER_MODE = 10


def _fuzz(operation, mode: GenerationMode, headers: dict[str, str], keep: dict[str, int]) -> str | None:
    """None, or the first failure's report (schemathesis prints the request to reproduce it).

    `keep` maps path parameters to the fuzzing admin's own ids (its account, its token): revoking or
    deactivating those would turn every later request into a 401 and end the fuzzing unnoticed."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        print_blob=False,
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        assume(all(case.path_parameters.get(name) != value for name, value in keep.items()))
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # nothing to vary in this mode (e.g. no parameters to make invalid)
        return None
    except (Exception, FailureGroup) as exc:  # a failed check, or an error the app raised: reported
        details = exc.exceptions[0] if isinstance(exc, FailureGroup) else exc
        return f"{operation.label} ({mode.value}): {type(details).__name__}: {str(details)[:1500]}"
    return None


@pytest.mark.slow
def test_api_has_no_server_errors_and_honours_its_schema(app, client, db, admin_token):
    build_world(db)  # the lists and exports have rows to serialize
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(path_regex="^/api/v1/")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    me = client.get("/api/v1/me", headers=admin_token).json()["id"]
    own = {"user_id": me, "token_id": client.get("/api/v1/tokens", headers=admin_token).json()[0]["id"]}
    failures = [
        failure
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if (failure := _fuzz(operation, mode, admin_token, own))
    ]
    assert not failures, "\n\n".join(failures)
    assert client.get("/api/v1/me", headers=admin_token).status_code == 200  # still fuzzing as the admin
