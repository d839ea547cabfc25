"""The `portal` command: serve, demo, sample-site, migrate, reindex, kb-import, create-tenant,
tenants, create-agent, settings."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import resource
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from portal.core.contract import Conflict, NotFound
from portal.core.embedded.core import EmbeddedCore
from portal.settings import Settings, SettingsError, settings_table

T = TypeVar("T")

log = logging.getLogger(__name__)


def _core(settings: Settings) -> EmbeddedCore:
    settings.data_path.mkdir(parents=True, exist_ok=True)
    return EmbeddedCore(settings.resolved_database_url)


async def _with_core(settings: Settings, action: Callable[[EmbeddedCore], Awaitable[T]]) -> T:
    core = _core(settings)
    await core.start()
    try:
        return await action(core)
    finally:
        await core.close()


def _raise_open_files_limit() -> None:
    """Each chat socket is an open file; systemd and shells often allow only 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    log.info("open files allowed: %d (each chat socket takes one)", soft)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from portal.app import create_app
    from portal.serving import run_server

    _raise_open_files_limit()
    app = create_app(settings, compile_templates=True)
    run_server(app, settings, host=args.host, port=args.port)
    return 0


def cmd_sample_site(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from portal.demo.sample_site import SAMPLE_HOST, SAMPLE_PORT, sample_site

    service = args.service or f"http://{settings.host}:{settings.port}"
    host, port = args.host or SAMPLE_HOST, int(args.port or SAMPLE_PORT)
    print(f"sample site with the widget: http://{host}:{port}/ (widget from {service})")
    uvicorn.run(sample_site(service), host=host, port=port, log_level="warning")
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    async def action(core: EmbeddedCore) -> None:
        print(f"database is up to date: {settings.resolved_database_url.split('@')[-1]}")

    asyncio.run(_with_core(settings, action))
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from portal.demo.loader import load_demo

    if settings.production:
        print(
            "portal demo makes an admin with a known password; not in production", file=sys.stderr
        )
        return 2
    asyncio.run(_with_core(settings, lambda core: load_demo(core, settings)))
    return 0


def cmd_reindex(settings: Settings, args: argparse.Namespace) -> int:
    from portal.kb.search import SearchService

    async def action(core: EmbeddedCore) -> int:
        search = SearchService(settings.data_path / "indexes", core)
        try:
            tenants = await core.tenants.list_tenants()
            if args.tenant:
                tenants = [t for t in tenants if t.slug == args.tenant]
                if not tenants:
                    print(f"no tenant {args.tenant!r}", file=sys.stderr)
                    return 1
            for tenant in tenants:
                await search.rebuild(tenant.id)
                print(f"{tenant.slug}: index rebuilt")
        finally:
            search.close()
        return 0

    return asyncio.run(_with_core(settings, action))


def cmd_kb_import(settings: Settings, args: argparse.Namespace) -> int:
    from portal.kb.importer import import_folder

    async def action(core: EmbeddedCore) -> int:
        try:
            tenant = await core.tenants.get_tenant(args.tenant)
        except NotFound:
            print(
                f"no tenant {args.tenant!r}; create it with `portal demo` or the admin",
                file=sys.stderr,
            )
            return 1
        report = await import_folder(core, tenant.id, Path(args.path))
        for problem in report.errors:
            print(problem, file=sys.stderr)
        print(f"{report.created} created, {report.updated} updated, {len(report.errors)} failed")
        return 1 if report.errors else 0

    return asyncio.run(_with_core(settings, action))


def cmd_create_agent(settings: Settings, args: argparse.Namespace) -> int:
    from portal.security import hash_password

    password = args.password or getpass.getpass("Password: ")
    if len(password) < 8:
        print("the password needs at least 8 characters", file=sys.stderr)
        return 1

    async def action(core: EmbeddedCore) -> int:
        try:
            tenant = await core.tenants.get_tenant(args.tenant)
            await core.tenants.create_agent(
                tenant.id, args.email, args.name, hash_password(password), args.role
            )
        except (NotFound, Conflict) as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"agent {args.email} created for {tenant.slug}")
        return 0

    return asyncio.run(_with_core(settings, action))


def cmd_create_tenant(settings: Settings, args: argparse.Namespace) -> int:
    from portal.provisioning import Refused, checked, provision
    from portal.security import Signer

    try:
        request = checked(args.slug, args.name, args.admin_email)
    except Refused as exc:
        for field, error in exc.errors.items():
            print(f"portal: --{field.replace('_', '-')}: {error}", file=sys.stderr)
        return 1

    async def action(core: EmbeddedCore) -> int:
        try:
            made = await provision(core, settings, Signer(settings.secret_key), request)
        except Refused as exc:
            print(f"portal: --slug: {exc.errors['slug']}", file=sys.stderr)
            return 1
        print(f"tenant {made.tenant.slug} created: {made.tenant.name}")
        print(f"admin: {made.admin.email}")
        print("the admin chooses a password here (the link works once, for 7 days):")
        print(made.welcome_url)
        return 0

    return asyncio.run(_with_core(settings, action))


def cmd_tenants(settings: Settings, args: argparse.Namespace) -> int:
    from portal.provisioning import tenant_hosts

    async def action(core: EmbeddedCore) -> int:
        for tenant in await core.tenants.list_tenants():
            print(f"{tenant.slug}\t{tenant.name}\t{' '.join(tenant_hosts(settings, tenant))}")
        return 0

    return asyncio.run(_with_core(settings, action))


def cmd_core_webhook(settings: Settings, args: argparse.Namespace) -> int:
    from portal.core.webhooks.endpoints import BadEndpoint, Endpoints

    async def action(core: EmbeddedCore) -> int:
        try:
            tenant = await core.tenants.get_tenant(args.tenant)
        except NotFound:
            print(f"portal: --tenant: no tenant {args.tenant!r}", file=sys.stderr)
            return 1
        try:
            endpoint = await Endpoints(core.engine).create(tenant.id, args.url)
        except BadEndpoint as exc:
            print(f"portal: --url: {exc}", file=sys.stderr)
            return 1
        print(f"webhook {endpoint.id} of {tenant.slug}: {endpoint.url}")
        print("its secret, shown once (the edge's PORTAL_CORE_WEBHOOK_SECRET):")
        print(endpoint.secret)
        return 0

    return asyncio.run(_with_core(settings, action))


def cmd_settings(settings: Settings, args: argparse.Namespace) -> int:
    for name, default, help_text in settings_table():
        print(f"{name}={default!r}\n    {help_text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portal", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the portal with uvicorn")
    serve.add_argument("--host")
    serve.add_argument("--port")
    serve.set_defaults(func=cmd_serve)
    sample = sub.add_parser(
        "sample-site", help="a sample company website on another origin, showing the widget"
    )
    sample.add_argument("--host", help="default 127.0.0.2")
    sample.add_argument("--port", help="default 8001")
    sample.add_argument("--service", help="the service's URL, default http://PORTAL_HOST:PORT")
    sample.set_defaults(func=cmd_sample_site)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("demo", help="load the demo tenant and articles").set_defaults(func=cmd_demo)
    reindex = sub.add_parser("reindex", help="rebuild the search index from the core")
    reindex.add_argument("--tenant", help="only this tenant (slug)")
    reindex.set_defaults(func=cmd_reindex)
    kb_import = sub.add_parser("kb-import", help="import a folder of Markdown articles")
    kb_import.add_argument("path")
    kb_import.add_argument("--tenant", required=True, help="tenant slug")
    kb_import.set_defaults(func=cmd_kb_import)
    tenant = sub.add_parser(
        "create-tenant", help="create a tenant and its first admin; prints the admin's link"
    )
    tenant.add_argument("--slug", required=True, help="its subdomain: SLUG.PORTAL_BASE_DOMAIN")
    tenant.add_argument("--name", required=True, help="the company's name, as customers see it")
    tenant.add_argument("--admin-email", required=True, help="the first admin's email address")
    tenant.set_defaults(func=cmd_create_tenant)
    sub.add_parser("tenants", help="list tenants: slug, name, hosts").set_defaults(func=cmd_tenants)
    agent = sub.add_parser("create-agent", help="create an agent account")
    agent.add_argument("--tenant", required=True)
    agent.add_argument("--email", required=True)
    agent.add_argument("--name", required=True)
    agent.add_argument("--role", choices=["admin", "agent"], default="agent")
    agent.add_argument("--password", help="prompted for when omitted")
    agent.set_defaults(func=cmd_create_agent)
    webhook = sub.add_parser(
        "core-webhook", help="register an edge's webhook endpoint at this core; prints its secret"
    )
    webhook.add_argument("--tenant", required=True, help="tenant slug")
    webhook.add_argument("--url", required=True, help="e.g. https://edge.example.com/_core/events")
    webhook.set_defaults(func=cmd_core_webhook)
    sub.add_parser("settings", help="list every PORTAL_* setting").set_defaults(func=cmd_settings)
    from portal.core.api.commands import add_commands as add_core_api_commands

    add_core_api_commands(sub)  # portal core, portal core-key
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"portal: {exc}", file=sys.stderr)
        return 2
    return args.func(settings, args)


if __name__ == "__main__":
    sys.exit(main())
