"""The layout's rules (docs/architecture.md), read from the import statements of app/ and trainer/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, absolute (`from app.x import y` gives app.x and app.x.y)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def domain_imports(path: Path) -> set[str]:
    """The app packages (app.<name>) a file imports, other than its own."""
    own = path.relative_to(APP).parts[0]
    return {m.split(".")[1] for m in imported_modules(path) if m.startswith("app.") and m.split(".")[1] != own}


def service_calls(path: Path) -> set[str]:
    """The other domains whose service module a file imports."""
    own = path.relative_to(APP).parts[0]
    calls = set()
    for module in imported_modules(path):
        parts = module.split(".")
        if parts[0] == "app" and len(parts) >= 3 and parts[2] == "service" and parts[1] != own:
            calls.add(parts[1])
    return calls


def test_core_imports_no_domain():
    for path in (APP / "core").glob("*.py"):
        assert domain_imports(path) == set(), path


def test_api_plumbing_depends_on_core_and_auth_only():
    for path in (APP / "api").glob("*.py"):
        assert domain_imports(path) <= {"core", "auth"}, path


@pytest.mark.parametrize("path", sorted(APP.glob("*/service.py")), ids=lambda p: p.parent.name)
def test_no_service_imports_a_view_or_a_page(path):
    routes = {m for m in imported_modules(path) if m.startswith("app.") and m.rsplit(".", 1)[-1] in {"views", "pages"}}
    assert routes == set()


# Who calls whose service (docs/architecture.md): each edge one way only. Routes (views, pages) and
# command lines sit on top and may call any service.
ROUTES = {"views.py", "pages.py", "console_pages.py", "cli.py"}
SERVICE_EDGES_FORBIDDEN = [
    ("queue", "judgments"),
    ("comparisons", "judgments"),
    ("comparisons", "queue"),
    ("comparisons", "prompts"),
    ("comparisons", "sampler"),
    ("prompts", "sampler"),
    ("policies", "training"),
    ("policies", "rollout"),  # a rollout activates through the policies service, never the reverse
    ("ratings", "rollout"),
    ("rollout", "judgments"),  # a stored judgment asks the rollout to decide, never the reverse
]


@pytest.mark.parametrize("caller, callee", SERVICE_EDGES_FORBIDDEN)
def test_services_call_each_other_one_way(caller, callee):
    domain = [p for p in (APP / caller).glob("*.py") if p.name not in ROUTES]
    assert [p.name for p in domain if callee in service_calls(p)] == []


def test_policies_know_nothing_of_training_rounds():
    """Training depends on policies (a round publishes a version), not the reverse, tables included."""
    domain = [p for p in (APP / "policies").glob("*.py") if p.name not in ROUTES]
    assert [p.name for p in domain if "training" in domain_imports(p)] == []


def test_the_trainer_contract_imports_neither_torch_nor_the_app():
    modules = imported_modules(ROOT / "trainer" / "contract.py")
    assert not {m for m in modules if m.split(".")[0] in {"torch", "transformers", "app"}}
