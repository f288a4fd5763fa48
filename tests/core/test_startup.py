import gc

from fastapi.testclient import TestClient

from app.main import create_app


def test_startup_freezes_what_is_alive_so_full_collections_skip_it(settings):
    """GC_FREEZE_ON_START (on by default in a real server) moves the app's startup objects out of the
    collector's sight; the test settings turn it off, which is checked here too."""
    gc.unfreeze()
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() == 0
    try:
        with TestClient(create_app(settings.model_copy(update={"GC_FREEZE_ON_START": True}))) as client:
            assert client.get("/healthz").status_code == 200
            assert gc.get_freeze_count() > 10_000  # the whole app: modules, routes, schemas, models
    finally:
        gc.unfreeze()
