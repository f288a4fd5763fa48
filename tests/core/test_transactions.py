"""A request's data is committed before its response is sent, so a failed commit is never a 200."""

from sqlalchemy import func, select

from app.auth.models import User


def test_failed_commit_returns_500_and_stores_nothing(app, client, db, admin_token, monkeypatch):
    from sqlalchemy.orm import Session

    def failing_commit(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Session, "commit", failing_commit)
    response = client.post("/api/v1/users", json={"username": "zed", "password": "long enough pw"}, headers=admin_token)
    monkeypatch.undo()
    assert response.status_code == 500
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(User).where(User.username == "zed")) == 0
