"""The folder importer against a real embedded core on SQLite."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from textwrap import dedent

import pytest

import portal.demo
from portal.core.embedded.core import EmbeddedCore
from portal.kb.importer import (
    ArticleFileError,
    ImportProblem,
    import_folder,
    parse_article_file,
)
from tests.conftest import sqlite_database

DEMO_ARTICLES = Path(portal.demo.__file__).parent / "articles"


@pytest.fixture
async def core(tmp_path: Path) -> AsyncIterator[EmbeddedCore]:
    core = EmbeddedCore(sqlite_database(tmp_path))  # a copy of a migrated one: no migrating
    await core.start()
    try:
        yield core
    finally:
        await core.close()


@pytest.fixture
async def tenant_id(core: EmbeddedCore) -> int:
    return (await core.tenants.create_tenant("demo", "Demo Co")).id


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def article(
    title: str = "Reset your password",
    *,
    category: str = "Sign-in",
    parent: str | None = "Account",
    language: str = "en",
    extra: str = "",
    body: str = "Open **Settings** and choose *Reset password*.",
) -> str:
    lines = ["---", f"title: {title}", f"category: {category}"]
    if parent:
        lines.append(f"parent_category: {parent}")
    lines.append(f"language: {language}")
    lines.extend(line for line in extra.splitlines() if line)
    lines.extend(["---", "", body, ""])
    return "\n".join(lines)


def problem_of(path: Path) -> ImportProblem:
    with pytest.raises(ArticleFileError) as caught:
        parse_article_file(path)
    return caught.value.problem


# ------------------------------------------------------------------------------- parsing


def test_parse_defaults(tmp_path: Path) -> None:
    parsed = parse_article_file(write(tmp_path, "a.md", article("Reset your password!")))
    assert parsed.title == "Reset your password!"
    assert parsed.slug == "reset-your-password"
    assert parsed.language == "en"
    assert parsed.category == "Sign-in"
    assert parsed.parent_category == "Account"
    assert parsed.published is True
    assert parsed.body_md == "Open **Settings** and choose *Reset password*.\n"


def test_parse_normalises_language_and_keeps_norwegian_no(tmp_path: Path) -> None:
    assert parse_article_file(write(tmp_path, "a.md", article(language="no"))).language == "nb"
    assert parse_article_file(write(tmp_path, "b.md", article(language="zh-CN"))).language == (
        "zh-Hans"
    )
    assert parse_article_file(write(tmp_path, "c.md", article(language="ja-JP"))).language == "ja"


def test_parse_default_slug_keeps_cjk(tmp_path: Path) -> None:
    parsed = parse_article_file(write(tmp_path, "a.md", article("如何重置密码", language="zh")))
    assert parsed.slug == "如何重置密码"


def test_parse_explicit_slug_and_unpublished(tmp_path: Path) -> None:
    text = article(extra="slug: reset-password\npublished: false")
    parsed = parse_article_file(write(tmp_path, "a.md", text))
    assert parsed.slug == "reset-password"
    assert parsed.published is False


def test_parse_accepts_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_bytes(b"\xef\xbb\xbf" + article().replace("\n", "\r\n").encode())
    assert parse_article_file(path).title == "Reset your password"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("# No front matter\n\nJust text.\n", 1, "no front matter"),
        ("---\ntitle: x\ncategory: y\nlanguage: en\n\nbody\n", 1, "not closed"),
        (
            "---\ntitle: x\ncategory: y\nlanguage: en\nslug: [unclosed\n---\nbody\n",
            6,
            "not valid YAML",
        ),
        ("---\ntitle: ok\n  category: bad indent\nlanguage: en\n---\nbody\n", 3, "not valid YAML"),
        ("---\ncategory: y\nlanguage: en\n---\nbody\n", 1, "missing 'title'"),
        ("---\ntitle: x\ncategory: y\n---\nbody\n", 1, "missing 'language'"),
        ("---\ntitle: x\nlanguage: en\n---\nbody\n", 1, "missing 'category'"),
        ("---\ntitle: x\ncategory: y\nlanguage: de\n---\nbody\n", 4, "unsupported language 'de'"),
        ("---\ntitle: x\ncategory: y\nlanguage: en\nslug: a b\n---\nbody\n", 5, "bad slug"),
        ("---\ntitle: x\ncategory: y\nlanguage: en\nslug: a/b\n---\nbody\n", 5, "bad slug"),
        ("---\ntitle: [a, b]\ncategory: y\nlanguage: en\n---\nbody\n", 2, "must be text"),
        (
            "---\ntitle: x\ncategory: y\nlanguage: en\npublished: yes\n---\nbody\n",
            5,
            "true or false",
        ),
        ("---\ntitle: x\ncategory: y\nlanguage: en\npublised: false\n---\nbody\n", 5, "unknown"),
        ("---\ntitle: x\ntitle: z\ncategory: y\nlanguage: en\n---\nbody\n", 3, "twice"),
        ("---\n- a list\n---\nbody\n", 1, "mapping"),
        ("---\ntitle: x\ncategory: y\nlanguage: en\n---\n\n\n", 6, "no body"),
        (
            "---\ntitle: x\ncategory: Account\nparent_category: account\nlanguage: en\n---\nbody\n",
            4,
            "must differ",
        ),
    ],
)
def test_parse_reports_line_and_reason(tmp_path: Path, text: str, line: int, fragment: str) -> None:
    path = write(tmp_path, "bad.md", text)
    problem = problem_of(path)
    assert problem.path == path
    assert problem.line == line, problem
    assert fragment in problem.message
    assert str(problem) == f"{path}:{line}: {problem.message}"


def test_parse_reports_non_utf8_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.md"
    path.write_bytes(
        article(body="line one\nSkriv inn e-postadressen din på nytt.").encode("latin-1")
    )
    problem = problem_of(path)
    assert "UTF-8" in problem.message
    assert problem.line == 9


# ------------------------------------------------------------------------------ importing


async def test_import_creates_categories_and_parents(
    core: EmbeddedCore, tenant_id: int, tmp_path: Path
) -> None:
    write(tmp_path, "en/reset.md", article(extra="slug: reset-password"))
    write(tmp_path, "en/magic.md", article("Sign in with a magic link", extra="slug: magic-link"))
    write(
        tmp_path,
        "nb/reset.md",
        article(
            "Tilbakestill passordet",
            category="Innlogging",
            parent="Konto",
            language="nb",
            extra="slug: reset-password",
        ),
    )
    write(tmp_path, "en/flat.md", article("Rate our support", category="Tickets", parent=None))

    report = await import_folder(core, tenant_id, tmp_path)

    assert report.errors == []
    assert (report.created, report.updated) == (4, 0)
    en = {c.name: c for c in await core.kb.list_categories(tenant_id, "en")}
    assert set(en) == {"Account", "Sign-in", "Tickets"}
    assert en["Sign-in"].parent_id == en["Account"].id
    assert en["Account"].parent_id is None
    assert en["Tickets"].parent_id is None
    nb = {c.name: c for c in await core.kb.list_categories(tenant_id, "nb")}
    assert set(nb) == {"Konto", "Innlogging"}
    assert nb["Innlogging"].parent_id == nb["Konto"].id

    reset = await core.kb.get_article_by_slug(tenant_id, "en", "reset-password")
    assert reset.category_id == en["Sign-in"].id
    assert reset.title == "Reset your password"
    norwegian = await core.kb.get_article_by_slug(tenant_id, "nb", "reset-password")
    assert norwegian.category_id == nb["Innlogging"].id
    assert {a.language for a in await core.kb.translations(tenant_id, "reset-password")} == {
        "en",
        "nb",
    }


async def test_reimport_updates_instead_of_duplicating(
    core: EmbeddedCore, tenant_id: int, tmp_path: Path
) -> None:
    path = write(tmp_path, "reset.md", article(extra="slug: reset-password"))
    write(tmp_path, "other.md", article("Attach files", category="Tickets", parent="Support"))
    first = await import_folder(core, tenant_id, tmp_path)
    assert (first.created, first.updated, first.errors) == (2, 0, [])
    categories = await core.kb.list_categories(tenant_id)

    again = await import_folder(core, tenant_id, tmp_path)
    assert (again.created, again.updated, again.unchanged, again.errors) == (0, 0, 2, [])

    path.write_text(article("Reset your password quickly", extra="slug: reset-password"))
    changed = await import_folder(core, tenant_id, tmp_path)
    assert (changed.created, changed.updated, changed.unchanged) == (0, 1, 1)

    articles = await core.kb.list_articles(tenant_id, published_only=False)
    assert len(articles) == 2
    resets = [a for a in articles if a.slug == "reset-password"]
    assert [a.title for a in resets] == ["Reset your password quickly"]
    assert len(await core.kb.list_categories(tenant_id)) == len(categories)


async def test_bad_files_are_reported_and_the_rest_import(
    core: EmbeddedCore, tenant_id: int, tmp_path: Path
) -> None:
    write(tmp_path, "01-good.md", article("First good article"))
    no_front = write(tmp_path, "02-no-front-matter.md", "# Just a heading\n\nText.\n")
    broken = write(
        tmp_path,
        "03-broken-yaml.md",
        '---\ntitle: Broken\ncategory: Sign-in\nlanguage: en\nslug: "unterminated\n---\nbody\n',
    )
    missing = write(tmp_path, "04-missing.md", "---\ntitle: No category\nlanguage: en\n---\nbody\n")
    german = write(tmp_path, "05-german.md", article("Passwort zurücksetzen", language="de"))
    bad_slug = write(tmp_path, "06-bad-slug.md", article("Bad slug", extra="slug: bad slug!"))
    latin1 = tmp_path / "07-latin1.md"
    latin1.write_bytes(article("Blåbær", body="Æøå").encode("latin-1"))
    write(tmp_path, "sub/08-good.md", article("Second good article", language="ja"))

    report = await import_folder(core, tenant_id, tmp_path)

    assert report.created == 2
    problems = {p.path.name: p for p in report.errors}
    assert set(problems) == {
        no_front.name,
        broken.name,
        missing.name,
        german.name,
        bad_slug.name,
        latin1.name,
    }
    assert problems[no_front.name].line == 1
    assert problems[broken.name].line >= 5
    assert problems[missing.name].line == 1
    assert "category" in problems[missing.name].message
    assert problems[german.name].line == 5
    assert "unsupported language" in problems[german.name].message
    assert problems[bad_slug.name].line == 6
    assert problems[latin1.name].line == 2
    for problem in report.errors:
        assert str(problem).startswith(f"{problem.path}:{problem.line}: ")
    titles = {a.title for a in await core.kb.list_articles(tenant_id, published_only=False)}
    assert titles == {"First good article", "Second good article"}


async def test_unsupported_language_is_an_error(
    core: EmbeddedCore, tenant_id: int, tmp_path: Path
) -> None:
    path = write(tmp_path, "fr.md", article("Réinitialiser le mot de passe", language="fr"))
    report = await import_folder(core, tenant_id, tmp_path)
    assert report.created == 0
    assert [(p.path, p.line) for p in report.errors] == [(path, 5)]
    assert "'fr'" in report.errors[0].message
    assert await core.kb.list_articles(tenant_id, published_only=False) == []


async def test_default_slug_comes_from_title(
    core: EmbeddedCore, tenant_id: int, tmp_path: Path
) -> None:
    write(tmp_path, "a.md", article("Follow up on a ticket"))
    write(tmp_path, "b.md", article("パスワードをリセットする方法", language="ja"))
    report = await import_folder(core, tenant_id, tmp_path)
    assert report.errors == []
    assert (await core.kb.get_article_by_slug(tenant_id, "en", "follow-up-on-a-ticket")).title == (
        "Follow up on a ticket"
    )
    ja = await core.kb.get_article_by_slug(tenant_id, "ja", "パスワードをリセットする方法")
    assert ja.language == "ja"


async def test_published_false_imports_a_draft(
    core: EmbeddedCore, tenant_id: int, tmp_path: Path
) -> None:
    write(tmp_path, "draft.md", article("Coming soon", extra="published: false"))
    write(tmp_path, "live.md", article("Live now"))
    report = await import_folder(core, tenant_id, tmp_path)
    assert report.created == 2
    assert [a.title for a in await core.kb.list_articles(tenant_id)] == ["Live now"]
    draft = await core.kb.get_article_by_slug(tenant_id, "en", "coming-soon")
    assert draft.published is False


async def test_same_slug_twice_in_one_folder_is_reported(
    core: EmbeddedCore, tenant_id: int, tmp_path: Path
) -> None:
    write(tmp_path, "a.md", article("One", extra="slug: same"))
    second = write(tmp_path, "b.md", article("Two", extra="slug: same"))
    report = await import_folder(core, tenant_id, tmp_path)
    assert report.created == 1
    assert [p.path for p in report.errors] == [second]
    assert (await core.kb.get_article_by_slug(tenant_id, "en", "same")).title == "One"


async def test_import_demo_articles(core: EmbeddedCore, tenant_id: int) -> None:
    report = await import_folder(core, tenant_id, DEMO_ARTICLES)
    assert report.errors == [], "\n".join(map(str, report.errors))
    articles = await core.kb.list_articles(tenant_id, published_only=False)
    assert len(articles) >= 14
    by_language: dict[str, int] = {}
    for item in articles:
        by_language[item.language] = by_language.get(item.language, 0) + 1
    assert set(by_language) == {"en", "nb", "zh-Hans", "ja", "ar"}
    assert by_language["en"] >= 5
    assert min(by_language.values()) >= 3
    assert (await core.kb.get_article_by_slug(tenant_id, "zh-Hans", "reset-password")).title == (
        "如何重置密码"
    )
    assert (await core.kb.get_article_by_slug(tenant_id, "ja", "reset-password")).title == (
        "パスワードをリセットする方法"
    )
    assert len(await core.kb.translations(tenant_id, "reset-password")) == 5
    assert any(re.search(r"\bkundeportal\b", a.body_md) for a in articles if a.language == "nb")

    existing = {(a.language, a.slug) for a in articles}
    for item in articles:
        for language, slug in re.findall(r"\]\(/kb/([\w-]+)/articles/([\w-]+)\)", item.body_md):
            assert (language, slug) in existing, f"{item.language}/{item.slug} links to {slug}"

    again = await import_folder(core, tenant_id, DEMO_ARTICLES)
    assert (again.created, again.updated, again.errors) == (0, 0, [])
    assert len(await core.kb.list_articles(tenant_id, published_only=False)) == len(articles)
