"""Knowledge base search and page throughput at 5,000 and 50,000 generated articles.

Prints, for each size (suffix `_5k`, `_50k`; `_1k`, `_5k` with --quick):
  index_build / index_size / search_p50 / search_p99   the index, and in-process search latency
                                                       over 500 queries
and, for each of three paths served by `portal serve` on one uvicorn worker pinned to one core,
loaded by wrk (16 connections) on the other core, then the same for its floor:
  article_page   GET /kb/en/articles/SLUG over a hot set of 1,000 articles
  search_page    GET /kb/LANG/search?q=Q over 200 queries in four languages
  search_json    GET /kb/search.json?q=Q&lang=LANG (the widget's type-ahead), the same queries
  article_walk   only where there are more English articles than pages kept (50k): a crawler's
                 walk, every published English article once, in turn, with no first views; each
                 answer is a page rendered anew while older ones age out of the caches. No
                 target: the caches' worst case, and what full garbage collections cost in it
the figures NAME_rps (req/s), NAME_p50_ms / NAME_p99_ms (latency under that load), NAME_cpu_ms
(the server's CPU time per request), NAME_busy (its CPU time / wall time), NAME_bytes (the mean
answer), the same for the floor (NAME_floor_*), and NAME_vs_floor (ours / floor, req/s) and
NAME_cpu_vs_floor (ours / floor, CPU per request). The floor (`_floor.BARE_ROUTES`) renders a
Jinja page of the article or search page's size, or encodes a JSON answer of search.json's size.
Before its load, each distinct path is asked once, one request at a time: NAME_first_view_ms is
the mean time of those first views (the client's part included), and the load then measures the
steady state, with pages and answers kept. Each path runs 10 s after a 2 s warm-up (2 s with
--quick, with no warm-up but the first views); ours and its floor run one after the other, so
that both see the same machine. NAME_busy well under 100 % means the server waited (for the
database, or for a core other programs on the machine were using): NAME_cpu_vs_floor is then the
steadier of the two ratios. NAME_loop_stall_ms is the event loop's longest stall during the
load, NAME_floor_loop_stall_ms the floor's (the same watch: the machine's own stalls);
NAME_loop_stall_off_cpu_ms how long the server was off the CPU across that stall (near 0: its own
work held the loop; near the stall's length: the machine did not run it), NAME_gc_pause_ms the
longest GC pause.
Run: .venv/bin/python benchmarks/kb_search.py [--quick] [--postgres]
  --postgres  our core on a new PostgreSQL database (PORTAL_BENCH_PG_DSN, default the local
              server as `postgres`); the floor is unchanged. PostgreSQL's own CPU is not counted
              in NAME_cpu_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from urllib.parse import quote

from _floor import BARE_ROUTES, floor_server
from _load import (
    SERVER_CPU,
    Run,
    Timing,
    figures,
    mean_size,
    pin_to_load_core,
    show,
    side_by_side,
    wrk,
)
from _server import database, free_port, lag_file, served

from portal.core.embedded import schema  # noqa: E402
from portal.core.embedded.core import EmbeddedCore  # noqa: E402
from portal.kb.search import SearchService  # noqa: E402
from portal.kb.store import MAX_PAGES  # noqa: E402

EN = (
    "account password reset login email invoice billing refund order shipping delivery "
    "ticket support portal customer organization export privacy security token browser "
    "mobile app notification attachment upload download settings profile subscription plan "
    "payment card address tracking return warranty chat agent widget language search"
).split()
NB = (
    "konto passord tilbakestill innlogging epost faktura betaling refusjon bestilling levering "
    "sak kundeportal kunde organisasjon eksport personvern sikkerhet nettleser mobil varsel "
    "vedlegg opplasting innstillinger profil abonnement kort adresse sporing retur garanti"
).split()
ZH = list(
    "账户密码重置登录邮件发票付款退款订单配送工单支持门户客户组织导出隐私安全浏览器手机通知附件上传设置资料订阅"
)
JA = list(
    "アカウントパスワードリセットログインメール請求書支払い返金注文配送チケットサポート顧客組織設定通知添付"
)


def words(rng: random.Random, lang: str, n: int) -> str:
    if lang == "en":
        return " ".join(rng.choice(EN) for _ in range(n))
    if lang == "nb":
        return " ".join(rng.choice(NB) for _ in range(n))
    chars = ZH if lang == "zh-Hans" else JA
    sentences = [
        "".join(rng.choice(chars) for _ in range(rng.randint(6, 16))) for _ in range(n // 6)
    ]
    return "。".join(sentences)


def queries(rng: random.Random, count: int) -> list[tuple[str, str]]:
    pool = (
        [(w, "en") for w in EN]
        + [(w, "nb") for w in NB]
        + [("".join(rng.sample(ZH, 2)), "zh-Hans") for _ in range(40)]
        + [("パスワード", "ja"), ("アカウント", "ja"), ("チケット", "ja"), ("サポート", "ja")]
        + [(f"{rng.choice(EN)} {rng.choice(EN)}", "en") for _ in range(40)]
    )
    return [rng.choice(pool) for _ in range(count)]


async def seed(core: EmbeddedCore, tenant_id: int, count: int, rng: random.Random) -> list[str]:
    """Bulk-insert generated articles straight into the tables; returns English page paths."""
    langs = ["en", "en", "nb", "zh-Hans", "ja"]
    now = datetime.now(UTC)
    rows, paths = [], []
    async with core.engine.begin() as conn:
        categories = {}
        for lang in set(langs):
            result = await conn.execute(
                schema.kb_categories.insert().values(
                    tenant_id=tenant_id,
                    language=lang,
                    slug="general",
                    name="General",
                    description="",
                    position=0,
                    created_at=now,
                )
            )
            categories[lang] = result.inserted_primary_key[0]
        for i in range(count):
            lang = langs[i % len(langs)]
            slug = f"article-{i}"
            rows.append(
                dict(
                    tenant_id=tenant_id,
                    category_id=categories[lang],
                    language=lang,
                    slug=slug,
                    title=words(rng, lang, rng.randint(3, 7)),
                    body_md="## Steps\n\n" + words(rng, lang, rng.randint(150, 300)),
                    published=i % 20 != 0,
                    views=rng.randint(0, 1000),
                    revision=i + 1,
                    created_at=now,
                    updated_at=now,
                )
            )
            if lang == "en" and i % 20 != 0:
                paths.append(f"/kb/en/articles/{slug}")
            if len(rows) == 2000:
                await conn.execute(schema.kb_articles.insert(), rows)
                rows = []
        if rows:
            await conn.execute(schema.kb_articles.insert(), rows)
        await conn.execute(
            schema.tenants.update()
            .where(schema.tenants.c.id == tenant_id)
            .values(kb_revision=count)
        )
    return paths


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def floor_paths(kind: str, size: int, paths: list[str]) -> list[str]:
    """The floor's paths answering like `paths`: as many, each a page or JSON of `size` bytes."""
    if kind == "json":
        return [f"/json/{size}?{path.split('?', 1)[1]}" for path in paths]
    return [f"/page/{size}{path}" for path in paths]


async def measure(
    data: Path, url: str, count: int, timing: Timing, tag: str, floor: tuple[int, int, Path]
) -> None:
    """Seed `count` articles, build the index, then load ours and the floor (port, pid, and
    where it reports its loop's stalls)."""
    rng = random.Random(count)
    core = EmbeddedCore(url)
    await core.start()
    tenant = await core.tenants.create_tenant("bench", "Bench", domains=("127.0.0.1",))
    paths = await seed(core, tenant.id, count, rng)
    search = SearchService(data / "indexes", core)
    started = time.perf_counter()
    await search.catch_up(tenant.id)
    print(f"index_build_{tag}: {time.perf_counter() - started:.1f} s")
    print(f"index_size_{tag}: {folder_size(data / 'indexes') / 1e6:.1f} MB")
    latencies = []
    for query, lang in queries(rng, 500):
        t0 = time.perf_counter()
        search.search(tenant.id, query, language=lang, limit=10)
        latencies.append((time.perf_counter() - t0) * 1000)
    print(f"search_p50_{tag}: {percentile(latencies, 50):.2f} ms")
    print(f"search_p99_{tag}: {percentile(latencies, 99):.2f} ms", flush=True)
    search.close()
    await core.close()

    # A help center's traffic goes mostly to its popular articles: a hot set of 1,000.
    hot = rng.sample(paths, min(1000, len(paths)))
    searches = queries(rng, 200)
    loads = [
        ("article_page", "page", hot),
        ("search_page", "page", [f"/kb/{lg}/search?q={quote(q)}" for q, lg in searches]),
        (
            "search_json",
            "json",
            [f"/kb/search.json?q={quote(q)}&lang={lg}" for q, lg in searches],
        ),
    ]
    port = free_port()
    floor_port, floor_pid, floor_lag = floor
    sizes: dict[str, int] = {}
    with served(data, port, cpu=SERVER_CPU, database_url=url) as server:

        def against_floor(
            kind: str, load_paths: list[str], size: int, timing: Timing
        ) -> tuple[Run, Run]:
            """Ours, then the floor answering like it (pages or JSON of `size` bytes)."""
            return side_by_side(
                partial(wrk, port, server.pid, paths=load_paths, lag_file=lag_file(data)),
                partial(
                    wrk,
                    floor_port,
                    floor_pid,
                    paths=floor_paths(kind, size, load_paths),
                    lag_file=floor_lag,
                ),
                timing,
            )

        for name, kind, load_paths in loads:
            # Every distinct path once first, one at a time: the load then measures the steady
            # state (pages and answers kept), and the mean first view is its own figure.
            distinct = sorted(set(load_paths))
            started = time.perf_counter()
            size = sizes[name] = mean_size(port, distinct)
            first_view = (time.perf_counter() - started) / len(distinct) * 1000
            show([(f"{name}_first_view_ms_{tag}", first_view, "ms")])
            ours, theirs = against_floor(kind, load_paths, size, timing)
            show([(f"{name}_bytes_{tag}", size, "bytes")])
            show(figures(name, ours, theirs, f"_{tag}"))
        if len(paths) > MAX_PAGES:
            walk = rng.sample(paths, len(paths))
            # (No warm-up: it would render what is measured.)
            cold = Timing(warm=0, run=timing.run)
            ours, theirs = against_floor("page", walk, sizes["article_page"], cold)
            show(figures("article_walk", ours, theirs, f"_{tag}"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--postgres", action="store_true", help="our core on PostgreSQL")
    args = parser.parse_args()
    pin_to_load_core()
    sizes = [(1000, "1k"), (5000, "5k")] if args.quick else [(5000, "5k"), (50000, "50k")]
    # --quick has two indexes to build and six loads per size: no room for a warm-up beyond the
    # first views.
    timing = Timing(warm=0, run=2) if args.quick else Timing(warm=2, run=10)
    floor_port = free_port()
    with (
        tempfile.TemporaryDirectory() as floor_dir,
        floor_server(BARE_ROUTES, floor_port, cpu=SERVER_CPU, lag=Path(floor_dir) / "lag") as floor,
    ):
        floor_of = (floor_port, floor.pid, Path(floor_dir) / "lag")
        for count, tag in sizes:
            with (
                tempfile.TemporaryDirectory() as tmp,
                database(Path(tmp), args.postgres) as url,
            ):
                asyncio.run(measure(Path(tmp), url, count, timing, tag, floor_of))


if __name__ == "__main__":
    main()
