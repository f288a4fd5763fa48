import re

from sqlalchemy import text


def test_healthz_reports_process_up(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_ok_at_head(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


def test_readyz_503_when_migrations_are_behind(client, db):
    with db.engine.begin() as connection:
        head = connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        connection.execute(text("UPDATE alembic_version SET version_num = 'behind'"))
    try:
        response = client.get("/readyz")
    finally:
        # The PostgreSQL test database lives for the whole session: later tests migrate it again.
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head})
    assert response.status_code == 503 and "behind" in response.json()["migrations"]


def test_readyz_503_when_database_unreachable(app, client):
    app.state.db.engine.dispose()
    from app.core.db import Database

    app.state.db = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = client.get("/readyz")
    assert response.status_code == 503 and "unreachable" in response.json()["database"]


def test_the_icon_is_served_where_pages_link_it_and_where_browsers_look(client):
    login_page = client.get("/login").text
    assert re.search(r'<link rel="icon" type="image/svg\+xml" href="[^"]*/static/img/favicon.svg">', login_page)
    icon = client.get("/favicon.ico")  # asked for by browsers and tools regardless of the link
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.text.startswith("<svg")
