"""Where templates and static files live: the source tree, or inside an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_BUNDLED = _PACKAGE / "_bundled"


def _resource(name: str) -> Path:
    # A wheel carries them under portal/_bundled (hatch force-include); a checkout at the top.
    bundled = _BUNDLED / name
    return bundled if bundled.is_dir() else _PACKAGE.parent / name


TEMPLATES_DIR = _resource("templates")
STATIC_DIR = _resource("static")
DEMO_ARTICLES_DIR = _PACKAGE / "demo" / "articles"
