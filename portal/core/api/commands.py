"""`portal core` (serve the core API alone) and `portal core-key` (its tenants' bearer keys)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from portal.core.api.keys import ApiKeys
from portal.core.contract import NotFound
from portal.core.embedded.core import EmbeddedCore
from portal.settings import Settings


def cmd_core(settings: Settings, args: argparse.Namespace) -> int:
    from portal.core.api.app import create_core_app
    from portal.serving import run_server

    settings.data_path.mkdir(parents=True, exist_ok=True)
    run_server(create_core_app(settings), settings, host=args.host, port=args.port)
    return 0


def cmd_core_key(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_core_key(settings, args))


async def _core_key(settings: Settings, args: argparse.Namespace) -> int:
    settings.data_path.mkdir(parents=True, exist_ok=True)
    core = EmbeddedCore(settings.resolved_database_url)
    await core.start()
    try:
        keys = ApiKeys(core.engine)
        if args.revoke:
            revoked = await keys.revoke(args.revoke)
            if revoked is None:
                print(f"portal: no core API key {args.revoke!r}", file=sys.stderr)
                return 1
            print(f"revoked {revoked.id} ({revoked.tenant_slug})")
            return 0
        if not args.tenant:
            print("portal: core-key needs --tenant SLUG (or --revoke KEY_ID)", file=sys.stderr)
            return 2
        try:
            tenant = await core.tenants.get_tenant(args.tenant)
        except NotFound:
            print(f"portal: no tenant {args.tenant!r}", file=sys.stderr)
            return 1
        if args.list:
            for key in await keys.list(tenant.id):
                state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
                print(f"{key.id}  {key.created_at:%Y-%m-%d %H:%M}  {state}  {key.name}")
            return 0
        record, secret = await keys.create(tenant.id, args.name or "")
        print(secret)
        print(
            f"core API key {record.id} for {tenant.slug}: shown once, store it now "
            "(PORTAL_CORE_KEY on the edge)",
            file=sys.stderr,
        )
        return 0
    finally:
        await core.close()


def add_commands(sub: Any) -> None:
    """Register the commands on `portal`'s subparsers."""
    core = sub.add_parser("core", help="serve the core's HTTP API (/core/v1) alone")
    core.add_argument("--host")
    core.add_argument("--port")
    core.set_defaults(func=cmd_core)
    key = sub.add_parser(
        "core-key", help="create (printed once), list or revoke a tenant's core API keys"
    )
    key.add_argument("--tenant", help="tenant slug")
    key.add_argument("--name", help="what the key is for, e.g. the edge's name")
    key.add_argument("--list", action="store_true", help="list the tenant's keys")
    key.add_argument("--revoke", metavar="KEY_ID", help="revoke a key by its id")
    key.set_defaults(func=cmd_core_key)
