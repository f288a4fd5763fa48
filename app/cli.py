"""The `prefloop` command line: serving, database, accounts, and (as they land) the loop's jobs."""

from __future__ import annotations

import logging
from typing import Annotated, NoReturn

import typer

from app.auth import service as auth_service
from app.auth.models import Role, Scope
from app.core.config import Settings, get_settings
from app.core.db import Database, utcnow
from app.core.errors import DomainError
from app.core.migrations import current_revision, head_revision, upgrade_to_head
from app.core.security import generate_password
from app.export import cli as export_cli
from app.policies import cli as policies_cli
from app.prompts import cli as prompts_cli
from app.sampler import cli as sampler_cli
from app.simulate import cli as simulate_cli
from app.training import cli as training_cli
from app.webhooks import cli as webhooks_cli

cli = typer.Typer(
    help="prefloop: collect human preferences and train the next policy from them.",
    no_args_is_help=True,
    add_completion=False,
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
users_cli = typer.Typer(help="Accounts.", no_args_is_help=True)
tokens_cli = typer.Typer(help="API tokens.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(users_cli, name="users")
cli.add_typer(tokens_cli, name="tokens")
export_cli.register(cli)  # export
policies_cli.register(cli)  # policy register|list|activate, bootstrap
prompts_cli.register(cli)  # prompts import
sampler_cli.register(cli)  # sampler
simulate_cli.register(cli)  # simulate
training_cli.register(cli)  # worker, rounds launch|list|show|cancel|retry
webhooks_cli.register(cli)  # webhooks deliver


def fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def ensure_first_admin(settings: Settings, db: Database) -> tuple[str, str] | None:
    """On a database without any admin, create one with a random password (printed once)."""
    with db.write_session() as session:
        if auth_service.count_admins(db=session) > 0:
            return None
        username = "admin" if auth_service.get_by_username(db=session, username="admin") is None else "prefloop-admin"
        password = generate_password()
        auth_service.create(
            db=session,
            username=username,
            password=password,
            role=Role.admin,
            min_password_length=settings.MIN_PASSWORD_LENGTH,
        )
    return username, password


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations up to head."""
    settings = get_settings()
    settings.make_data_dir()
    upgrade_to_head(settings.database_url)
    typer.echo(f"database at {head_revision()}")


@db_cli.command("current")
def db_current() -> None:
    """Show the database's migration revision and the head."""
    db = Database(get_settings().database_url)
    typer.echo(f"current: {current_revision(db.engine)}  head: {head_revision()}")
    db.dispose()


def _password(given: str | None, *, generate: bool, prompt: str) -> str:
    """--password as given, else a generated one (--generate-password), else asked for twice."""
    if given is not None:
        return given
    return generate_password() if generate else typer.prompt(prompt, hide_input=True, confirmation_prompt=True)


@users_cli.command("create")
def users_create(
    username: str,
    admin: bool = typer.Option(False, "--admin", help="Give the account the admin role."),
    password: str = typer.Option(None, "--password", help="Omit to be prompted (or to get a generated one)."),
    generate: bool = typer.Option(False, "--generate-password", help="Generate and print a password."),
) -> None:
    """Create an account."""
    settings = get_settings()
    password = _password(password, generate=generate, prompt="Password")
    db = Database(settings.database_url)
    try:
        with db.write_session() as session:
            user = auth_service.create(
                db=session,
                username=username,
                password=password,
                role=Role.admin if admin else Role.annotator,
                min_password_length=settings.MIN_PASSWORD_LENGTH,
            )
            role = user.role.value
    except DomainError as exc:
        fail(exc.msg)
    typer.echo(f"created {role} '{username}'" + (f" with password: {password}" if generate else ""))


@users_cli.command("set-password")
def users_set_password(
    username: str,
    password: str = typer.Option(None, "--password", help="Omit to be prompted (or to get a generated one)."),
    generate: bool = typer.Option(False, "--generate-password", help="Generate and print a password."),
) -> None:
    """Give USERNAME a new password and sign them out of every browser (e.g. a forgotten password)."""
    settings = get_settings()
    password = _password(password, generate=generate, prompt="New password")
    db = Database(settings.database_url)
    try:
        with db.write_session() as session:
            user = auth_service.get_by_username(db=session, username=username)
            if user is None:
                fail(f"no user named '{username}'")
            auth_service.set_password(
                db=session, user=user, password=password, min_password_length=settings.MIN_PASSWORD_LENGTH
            )
    except DomainError as exc:
        fail(exc.msg)
    finally:
        db.dispose()
    typer.echo(f"new password for '{username}'" + (f": {password}" if generate else "") + "; signed out everywhere")


@tokens_cli.command("create")
def tokens_create(
    username: str,
    name: str = typer.Option("cli", help="A label for the token."),
    scopes: Annotated[
        list[Scope] | None, typer.Option("--scope", help="A scope (repeatable). Default: every scope the role allows.")
    ] = None,
    expires_in_days: Annotated[int | None, typer.Option(help="Default: the token never expires.")] = None,
) -> None:
    """Create an API token for USERNAME and print it (it is shown only once)."""
    db = Database(get_settings().database_url)
    try:
        with db.write_session() as session:
            user = auth_service.get_by_username(db=session, username=username)
            if user is None:
                fail(f"no user named '{username}'")
            _api_token, token = auth_service.create_token(
                db=session, user=user, name=name, scopes=scopes or None, expires_in_days=expires_in_days
            )
    except DomainError as exc:
        fail(exc.msg)
    typer.echo(token)


@tokens_cli.command("list")
def tokens_list(username: Annotated[str | None, typer.Argument(help="Only this account's tokens.")] = None) -> None:
    """List API tokens with their scopes, expiry and status (never the secret part)."""
    db = Database(get_settings().database_url)
    with db.session() as session:
        user = None
        if username is not None and (user := auth_service.get_by_username(db=session, username=username)) is None:
            fail(f"no user named '{username}'")
        now = utcnow()
        typer.echo(f"{'id':>5}  {'prefix':<10}{'user':<20}{'name':<20}{'scopes':<24}{'expires':<18}status")
        for t in auth_service.list_tokens(db=session, user=user):
            expires = f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "never"
            status = "revoked" if t.revoked_at else ("expired" if t.expired(now) else "active")
            typer.echo(
                f"{t.id:>5}  {t.prefix:<10}{t.user.username:<20}{t.name:<20}{','.join(t.scopes):<24}"
                f"{expires:<18}{status}"
            )


@cli.command()
def serve(
    host: str = typer.Option(None, help="Defaults to PREFLOOP_HOST."),
    port: int = typer.Option(None, help="Defaults to PREFLOOP_PORT."),
    workers: int = typer.Option(None, help="Defaults to PREFLOOP_WORKERS."),
) -> None:
    """Apply migrations, create the first admin if there is none, and run the web server."""
    import uvicorn

    settings = get_settings()
    settings.make_data_dir()
    upgrade_to_head(settings.database_url)
    db = Database(settings.database_url)
    if settings.CREATE_FIRST_ADMIN and (created := ensure_first_admin(settings, db)):
        username, password = created
        typer.secho(
            "\n  First start: created an admin account (this password is shown only once)", fg=typer.colors.GREEN
        )
        typer.secho(f"    username: {username}\n    password: {password}\n", bold=True)
    db.dispose()
    host, port = host or settings.HOST, port or settings.PORT
    typer.secho(f"  prefloop is running: open http://{host}:{port}/ in your browser\n", fg=typer.colors.GREEN)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.WORKERS,
        log_level="info",
        access_log=False,
    )


def configure_logging() -> None:
    """Our own progress at INFO; libraries that narrate every step (alembic's migrations, httpx's
    "HTTP Request: POST …" line for each of the simulator's and webhook sender's requests) only warn."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("alembic", "httpx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def main() -> None:
    configure_logging()
    cli()
