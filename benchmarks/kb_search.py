"""Knowledge base search and page throughput at 5,000 and 50,000 generated articles.

Prints, for each size: index build time, index size, search latency p50/p99 over 500 queries,
and article-page and search-page requests/s through uvicorn on one worker.
Run: .venv/bin/python benchmarks/kb_search.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _server import free_port, http_load, served  # noqa: E402

from portal.core.embedded import schema  # noqa: E402
from portal.core.embedded.core import EmbeddedCore  # noqa: E402
from portal.kb.search import SearchService  # noqa: E402

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


async def measure(count: int, seconds: float, tag: str) -> None:
    rng = random.Random(count)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        core = EmbeddedCore(f"sqlite+aiosqlite:///{data}/portal.db")
        await core.start()
        tenant = await core.create_tenant("bench", "Bench", domains=("127.0.0.1",))
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
        print(f"search_p99_{tag}: {percentile(latencies, 99):.2f} ms")
        search.close()
        await core.close()

        port = free_port()
        with served(data, port):
            # A help center's traffic goes mostly to its popular articles: a hot set of 1,000.
            hot = rng.sample(paths, min(1000, len(paths)))
            await http_load(port, hot, 2)  # warm the page cache
            print(f"article_page_rps_{tag}: {await http_load(port, hot, seconds):.0f} req/s")
            search_paths = [f"/kb/{lang}/search?q={quote(q)}" for q, lang in queries(rng, 200)]
            print(
                f"search_page_rps_{tag}: {await http_load(port, search_paths, seconds):.0f} req/s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    args = parser.parse_args()
    sizes = [(1000, "1k"), (5000, "5k")] if args.quick else [(5000, "5k"), (50000, "50k")]
    for count, tag in sizes:
        asyncio.run(measure(count, 3 if args.quick else 10, tag))


if __name__ == "__main__":
    main()
