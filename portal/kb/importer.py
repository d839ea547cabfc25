"""Import a folder of Markdown articles with YAML front matter into the knowledge base.

A file looks like this (slug, parent_category and published are optional)::

    ---
    title: Reset your password
    category: Sign-in
    parent_category: Account
    language: en
    slug: reset-password
    published: true
    ---
    The article body, in Markdown.

Articles are upserted by (language, slug), so importing a folder again updates what changed
and never duplicates anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from portal.core.contract import (
    Article,
    ArticleDraft,
    Category,
    Conflict,
    HelpdeskCore,
    NotFound,
)
from portal.core.slugs import slugify
from portal.i18n import LANGUAGES, normalize_language

SLUG_PATTERN = re.compile(r"[\w-]+")
REQUIRED_KEYS = ("title", "category", "language")
OPTIONAL_KEYS = ("parent_category", "slug", "published")
# The database's column sizes.
MAX_LENGTHS = {"title": 300, "slug": 200, "category": 200, "parent_category": 200}
_DELIMITER = "---"
_CLOSERS = ("---", "...")


@dataclass(frozen=True)
class ImportProblem:
    """Why one file could not be imported, and where."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class ArticleFileError(ValueError):
    """An article file is unusable; `problem` says where and why."""

    def __init__(self, problem: ImportProblem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True)
class ParsedArticle:
    """One article file's front matter and body, validated."""

    path: Path
    title: str
    category: str
    language: str
    slug: str
    body_md: str
    parent_category: str | None = None
    published: bool = True


@dataclass
class ImportReport:
    """What an import did: counts of articles, and the files it had to skip."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[ImportProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def __str__(self) -> str:
        summary = (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{len(self.errors)} error(s)"
        )
        return "\n".join([summary, *map(str, self.errors)])


class _FrontMatterLoader(yaml.SafeLoader):
    """SafeLoader where only true/false are booleans: `language: no` must stay Norwegian."""


_FrontMatterLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_FrontMatterLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _fail(path: Path, line: int, message: str) -> ArticleFileError:
    return ArticleFileError(ImportProblem(path, line, message))


def _split_front_matter(path: Path, text: str) -> tuple[str, str, int]:
    """The front matter's YAML, the body, and the file line the body starts on (1-based)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip() != _DELIMITER:
        raise _fail(path, 1, "no front matter: the file must start with a '---' line")
    for index in range(1, len(lines)):
        if lines[index].rstrip() in _CLOSERS:
            return "".join(lines[1:index]), "".join(lines[index + 1 :]), index + 2
    raise _fail(path, 1, "front matter is not closed: add a '---' line after it")


def _load_yaml(path: Path, source: str) -> tuple[dict[str, Any], dict[str, int]]:
    """The front matter mapping, and each key's file line."""
    # The YAML starts on the file's second line, after the opening '---'.
    offset = 2
    loader = _FrontMatterLoader(source)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + offset if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise _fail(path, line, f"front matter is not valid YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise _fail(path, 1, f"front matter is not valid YAML: {exc}") from exc
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise _fail(path, 1, "front matter must be a mapping of keys to values")
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, _value in node.value:
            line = key_node.start_mark.line + offset
            name = str(key_node.value)
            if name in lines:
                # PyYAML would silently keep the last value; a repeated key is a mistake.
                raise _fail(path, line, f"'{name}' is given twice (first on line {lines[name]})")
            lines[name] = line
    return data, lines


def _text(path: Path, data: dict[str, Any], lines: dict[str, int], key: str) -> str | None:
    """The key's value as stripped text, None if absent; wrong types and lengths are errors."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail(path, lines.get(key, 1), f"'{key}' must be text, not {_kind(value)}")
    value = str(value).strip()
    if not value:
        raise _fail(path, lines.get(key, 1), f"'{key}' must not be empty")
    limit = MAX_LENGTHS.get(key)
    if limit is not None and len(value) > limit:
        raise _fail(path, lines.get(key, 1), f"'{key}' is longer than {limit} characters")
    return value


def _required_text(path: Path, data: dict[str, Any], lines: dict[str, int], key: str) -> str:
    value = _text(path, data, lines, key)
    if value is None:
        raise _fail(path, 1, f"front matter is missing '{key}'")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def parse_article_text(path: Path, text: str) -> ParsedArticle:
    """Parse and validate one article's text; `path` is only used in error reports."""
    front, body, body_line = _split_front_matter(path, text)
    data, lines = _load_yaml(path, front)

    unknown = sorted(str(key) for key in data if key not in REQUIRED_KEYS + OPTIONAL_KEYS)
    if unknown:
        allowed = ", ".join(REQUIRED_KEYS + OPTIONAL_KEYS)
        raise _fail(
            path,
            lines.get(unknown[0], 1),
            f"unknown front matter key '{unknown[0]}' (allowed: {allowed})",
        )
    missing = [key for key in REQUIRED_KEYS if data.get(key) is None]
    if missing:
        # A missing key has no line of its own: point at the start of the front matter.
        names = ", ".join(f"'{key}'" for key in missing)
        raise _fail(path, 1, f"front matter is missing {names}")

    title = _required_text(path, data, lines, "title")
    category = _required_text(path, data, lines, "category")
    raw_language = _required_text(path, data, lines, "language")
    parent_category = _text(path, data, lines, "parent_category")

    language = normalize_language(raw_language)
    if language is None:
        supported = ", ".join(LANGUAGES)
        raise _fail(
            path,
            lines["language"],
            f"unsupported language '{raw_language}' (supported: {supported})",
        )

    slug = _text(path, data, lines, "slug")
    if slug is None:
        slug = slugify(title)
    elif not SLUG_PATTERN.fullmatch(slug):
        raise _fail(
            path,
            lines["slug"],
            f"bad slug '{slug}': use only letters, digits, '-' and '_', e.g. '{slugify(slug)}'",
        )

    published = data.get("published", True)
    if not isinstance(published, bool):
        raise _fail(path, lines.get("published", 1), "'published' must be true or false")

    if parent_category is not None and slugify(parent_category) == slugify(category):
        raise _fail(path, lines["parent_category"], "'parent_category' must differ from 'category'")

    body_md = body.strip("\r\n")
    if not body_md.strip():
        raise _fail(path, body_line, "the article has no body after the front matter")

    return ParsedArticle(
        path=path,
        title=title,
        category=category,
        language=language,
        slug=slug,
        body_md=body_md + "\n",
        parent_category=parent_category,
        published=published,
    )


def parse_article_file(path: Path) -> ParsedArticle:
    """Read and validate one article file, raising `ArticleFileError` if it is unusable."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _fail(path, 1, f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise _fail(path, line, f"not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    return parse_article_text(path, text)


def article_files(path: Path) -> list[Path]:
    """Every `*.md` file under `path`, sorted, skipping hidden files and folders."""
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a folder")
    return sorted(
        file
        for file in path.rglob("*.md")
        if file.is_file() and not any(part.startswith(".") for part in file.relative_to(path).parts)
    )


class _Categories:
    """Category lookups for one import, so each (language, name) costs one core call."""

    def __init__(self, core: HelpdeskCore, tenant_id: int) -> None:
        self.core = core
        self.tenant_id = tenant_id
        self._known: dict[tuple[str, str, int | None], Category] = {}

    async def ensure(self, language: str, name: str, parent: Category | None) -> Category:
        parent_id = parent.id if parent is not None else None
        key = (language, slugify(name), parent_id)
        if key in self._known:
            return self._known[key]
        category = await self.core.kb.ensure_category(
            self.tenant_id, language, name, parent_id=parent_id
        )
        if parent_id is not None and category.parent_id != parent_id:
            # The category existed already under another parent (or none): the file wins.
            category = await self.core.kb.update_category(
                self.tenant_id,
                category.id,
                name=category.name,
                description=category.description,
                parent_id=parent_id,
                position=category.position,
            )
        self._known[key] = category
        return category


def _same(existing: Article, draft: ArticleDraft) -> bool:
    return (
        existing.title == draft.title
        and existing.body_md == draft.body_md
        and existing.published == draft.published
        and existing.category_id == draft.category_id
    )


async def import_folder(core: HelpdeskCore, tenant_id: int, path: Path) -> ImportReport:
    """Import every article file under `path`; bad files are reported, the rest still import."""
    report = ImportReport()
    categories = _Categories(core, tenant_id)
    seen: dict[tuple[str, str], Path] = {}
    for file in article_files(path):
        try:
            parsed = parse_article_file(file)
        except ArticleFileError as exc:
            report.errors.append(exc.problem)
            continue
        key = (parsed.language, parsed.slug)
        if key in seen:
            report.errors.append(
                ImportProblem(
                    file,
                    1,
                    f"slug '{parsed.slug}' is already used by {seen[key]} for language "
                    f"{parsed.language}; give one of them another slug",
                )
            )
            continue
        seen[key] = file

        try:
            parent = (
                await categories.ensure(parsed.language, parsed.parent_category, None)
                if parsed.parent_category
                else None
            )
            category = await categories.ensure(parsed.language, parsed.category, parent)
            draft = ArticleDraft(
                language=parsed.language,
                slug=parsed.slug,
                title=parsed.title,
                body_md=parsed.body_md,
                published=parsed.published,
                category_id=category.id,
            )
            try:
                existing: Article | None = await core.kb.get_article_by_slug(
                    tenant_id, parsed.language, parsed.slug
                )
            except NotFound:
                existing = None
            if existing is not None and _same(existing, draft):
                # Saving would bump the revision and make every cache re-render for nothing.
                report.unchanged += 1
                continue
            await core.kb.save_article(tenant_id, draft)
        except (Conflict, NotFound) as exc:
            report.errors.append(ImportProblem(file, 1, f"could not save the article: {exc}"))
            continue
        if existing is None:
            report.created += 1
        else:
            report.updated += 1
    return report
