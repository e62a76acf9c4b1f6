"""Operator commands, in Flask's CLI: `flask --app app keys|db|providers ...` from the repository root, with
the same settings (.env, environment) as the server. They call what the admin API calls, on the app the
factory built: its key store, its router, its state store.

    keys create NAME [--policy JSON] | keys update ID --policy JSON | keys list [--json] | keys revoke ID_OR_KEY
    db upgrade | db copy --to URL | db backup PATH
    providers reset ID
"""
from __future__ import annotations

import functools
import json

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup

from routes.admin import change_key, health_entry, new_key
from utils.dbops import backup_sqlite, copy_keys
from utils.errors import GatewayError
from utils.keys import ID_CHARS
from utils.schema import migrate
from utils.settings import SettingsError, load_settings

keys = AppGroup("keys", help="Create, list and revoke API keys.")
db = AppGroup("db", help="Migrate, copy and back up the key database (DATABASE_URL).")
providers = AppGroup("providers", help="Bring a provider back into the rotation.")
GROUPS = (keys, db, providers)


def plainly(command):
    """What the API would answer as an error (a bad name, the database away) ends the command with its
    message and exit status 1, not a traceback."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        # A command sends no webhook itself (it would be cut short as it exits): the server sends what it queued.
        current_app.extensions["deliverer"].stop()
        try:
            return command(*args, **kwargs)
        except GatewayError as exc:
            raise click.ClickException(exc.message) from None
    return run


def shown(url: str) -> str:
    """A database URL fit for a terminal: without its password."""
    return sa.make_url(url).render_as_string(hide_password=True)


# A key's policy as POST /admin/keys and PATCH /admin/keys/<id> take it, checked by the same code.
POLICY = click.option("--policy", "policy_json", metavar="JSON", help='Policy fields as the admin API takes them, e.g. '
                      '\'{"limits": {"requestsPerDay": 100}, "expiresAt": "2027-01-01T00:00:00Z"}\'.')


def policy(text: str | None) -> dict:
    try:
        body = json.loads(text) if text else {}
    except ValueError as exc:
        raise click.BadParameter(f"not JSON ({exc})", param_hint="--policy") from None
    if not isinstance(body, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--policy")
    return body


@keys.command("create")
@click.argument("name")
@POLICY
@plainly
def create_key(name: str, policy_json: str | None):
    """Create a key named NAME and print it (shown this once; only its hash is kept)."""
    key, _ = new_key({**policy(policy_json), "name": name})
    click.echo(key)
    click.echo("Keep it now: it is shown only once.", err=True)


@keys.command("update")
@click.argument("key_id")
@POLICY
@plainly
def update_key(key_id: str, policy_json: str | None):
    """Change the policy (or `name`) of the key with id KEY_ID: a field set to null clears it. Prints the key as
    `keys list --json` shows it."""
    click.echo(json.dumps(change_key(key_id, policy(policy_json)), indent=2))


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, as GET /admin/keys lists them.")
@plainly
def list_keys(as_json: bool):
    """List the keys: id, masked key, name, use."""
    listed = current_app.extensions["keys"].list()
    if as_json:
        click.echo(json.dumps(listed, indent=2))
        return
    rows = [("ID", "KEY", "NAME", "CREATED", "LAST USED", "REQUESTS", "TOKENS IN/OUT")] + [
        (k["id"], k["key"], k["name"], k["createdAt"], k["lastUsed"] or "never", str(k["requestCount"]),
         f"{k['promptTokens']}/{k['completionTokens']}") for k in listed]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


@keys.command("revoke")
@click.argument("id_or_key")
@plainly
def revoke_key(id_or_key: str):
    """Revoke a key: by the 12-character ID `keys list` shows, or by the key itself."""
    store = current_app.extensions["keys"]
    as_id = len(id_or_key) == ID_CHARS
    events = current_app.extensions["events"]  # the store's revoke_key, telling webhooks
    if not (events.revoke_key(store, key_id=id_or_key) if as_id else events.revoke_key(store, key=id_or_key)):
        raise click.ClickException("API key not found" + ("" if as_id else f" (an id has {ID_CHARS} characters)"))
    click.echo("Revoked.")


@db.command("upgrade")
@plainly
def upgrade():
    """Bring the database to the latest schema (the gateway also does it when it starts)."""
    before, after = migrate(current_app.extensions["keys"].engine)
    click.echo(f"Already at revision {after}." if before == after
               else f"Upgraded from {before or 'an empty database'} to {after}.")


@db.command("copy")
@click.option("--to", "target", required=True, metavar="URL",
              help="The database to copy into: sqlite:///path or postgresql://user@host/name.")
@plainly
def copy(target: str):
    """Copy every key and its usage into another database, migrating it first. Keys already there are left
    as they are, and named. Stop the gateway first, or the last seconds of its usage may not be copied."""
    try:
        target_url = load_settings({"DATABASE_URL": target}).database_url  # the same URL forms as DATABASE_URL
    except SettingsError:
        raise click.BadParameter("must be a sqlite:/// path or a postgresql:// URL", param_hint="--to") from None
    store = current_app.extensions["keys"]
    if sa.make_url(target_url) == store.engine.url:
        raise click.BadParameter("is the database DATABASE_URL already names", param_hint="--to")
    store.flush()
    try:
        copied, skipped = copy_keys(store.engine, target_url)
    except sa.exc.OperationalError as exc:  # the target is unreachable or refuses us: say which and why
        raise click.ClickException(f"{shown(target_url)}: {exc.orig}") from None
    click.echo(f"Copied {copied} key{'s' * (copied != 1)} to {shown(target_url)}.")
    if skipped:
        click.echo(f"Skipped {len(skipped)} already there (left unchanged): {', '.join(skipped)}")


@db.command("backup")
@click.argument("path", type=click.Path(dir_okay=False))
@plainly
def backup(path: str):
    """Write a consistent copy of the SQLite database to PATH while the gateway runs (PostgreSQL: pg_dump)."""
    engine = current_app.extensions["keys"].engine
    if engine.dialect.name != "sqlite":
        raise click.ClickException("db backup is for SQLite; back PostgreSQL up with pg_dump (README, Operations)")
    try:
        backup_sqlite(engine, path)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; choose a new file") from None
    click.echo(f"Backed up to {path}.")


@providers.command("reset")
@click.argument("provider_id", metavar="ID")
@plainly
def reset(provider_id: str):
    """Take provider ID back into the rotation now: forget its failures, back-off, missing model and quota."""
    ext = current_app.extensions
    router = ext["router"]
    provider = router.by_id(provider_id.strip().lower())
    if provider is None:
        raise click.BadParameter(f"unknown provider; one of {', '.join(p.id for p in router.providers)}",
                                 param_hint="ID")
    if not ext["settings"].redis_url:
        # The state lives in the gateway's own memory, out of this process's reach.
        raise click.ClickException("REDIS_URL is not set, so the running gateway keeps provider state in its own "
                                   f"process: use POST /admin/providers/{provider_id}/reset on it instead")
    router.reset(provider)
    click.echo(json.dumps(health_entry(router, provider)))
