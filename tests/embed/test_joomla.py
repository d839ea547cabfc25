"""The Joomla module (embed-examples/joomla/mod_portalwidget), run by the real php-cli.

No Joomla here: the module's helper and template use nothing of it, so tests/embed/joomla_render.php
runs them as the module's dispatcher would with one stub (`_JEXEC`). Every PHP file of both
plugins passes `php -l`.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.embed.conftest import php_binary

EXAMPLES = Path(__file__).resolve().parents[2] / "embed-examples"
MODULE = EXAMPLES / "joomla" / "mod_portalwidget"
RENDER = Path(__file__).with_name("joomla_render.php")
QUEUE = (
    "window.PortalWidget=window.PortalWidget||"
    "function(){(PortalWidget.q=PortalWidget.q||[]).push(arguments)}"
)
PAYLOAD = '"></script><script>alert(1)</script>'


@pytest.fixture(scope="module")
def php() -> str:
    return php_binary()


def render(php: str, **data: Any) -> str:
    """What the module prints for `options=...` (through its helper) or `portal=...` (the
    template alone)."""
    done = subprocess.run(
        [php, str(RENDER), str(MODULE)],
        input=json.dumps(data),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and done.stderr == "", done.stdout + done.stderr
    return done.stdout


def php_files() -> list[Path]:
    return sorted(
        [
            *EXAMPLES.joinpath("joomla").rglob("*.php"),
            *EXAMPLES.joinpath("wordpress").rglob("*.php"),
        ]
    )


def test_every_php_file_of_both_plugins_passes_php_lint(php):
    files = php_files()
    assert len(files) >= 10
    for path in files:
        done = subprocess.run([php, "-l", str(path)], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{path}: {done.stdout}{done.stderr}"


def test_the_manifest_names_what_the_module_holds():
    manifest = ET.parse(MODULE / "mod_portalwidget.xml").getroot()
    assert (manifest.tag, manifest.get("type"), manifest.get("client")) == (
        "extension",
        "module",
        "site",
    )
    namespace = manifest.find("namespace")
    assert namespace is not None and namespace.text == "Portal\\Module\\PortalWidget"
    for folder in manifest.iter("folder"):
        assert (MODULE / folder.text).is_dir(), folder.text
    for language in manifest.iter("language"):
        assert (MODULE / language.text).is_file(), language.text
    helper = (MODULE / "src" / "Helper" / "PortalWidgetHelper.php").read_text()
    assert "namespace Portal\\Module\\PortalWidget\\Site\\Helper;" in helper
    # Every label the manifest uses is in the language file.
    strings = (MODULE / "language" / "en-GB" / "mod_portalwidget.ini").read_text()
    keys = set(re.findall(r"^([A-Z_]+)=", strings, re.M))
    used = set(re.findall(r"\bMOD_PORTALWIDGET_[A-Z_]+", ET.tostring(manifest, encoding="unicode")))
    assert used - keys == set()
    names = {field.get("name") for field in manifest.iter("field")}
    assert {"host", "pages", "menu_items", "position", "color", "mode", "app"} <= names


def test_the_module_prints_the_snippet_with_its_options(php):
    out = render(
        php,
        options={"host": " Support.Example.com/ ", "color": "#A10", "position": "left"},
        language="nb-NO",
    )
    assert out.count(QUEUE) == 1
    scripts = re.findall(r"<script\b[^>]*>", out)
    assert scripts == [
        "<script>",
        '<script async src="https://support.example.com/widget.js?lang=nb">',
    ]
    assert out.index(QUEUE) < out.index("widget.js")
    assert 'PortalWidget("style",{"color":"#aa1100","position":"left"});' in out

    plain = render(php, options={"host": "http://127.0.0.1:8000"}, language="en-GB")
    assert plain == (
        f"<script>{QUEUE};</script>\n"
        '<script async src="http://127.0.0.1:8000/widget.js?lang=en"></script>\n'
    )


def test_hostile_options_print_nothing_unsafe(php):
    # Not an origin: nothing at all (the dispatcher renders nothing).
    for host in (
        "https://x.test/" + PAYLOAD,
        "javascript:alert(1)",
        "https://x.test/path",
        "https://user@x.test",
        "",
    ):
        assert render(php, options={"host": host}) == "", host
    # A bad colour or side is dropped; the snippet stays.
    out = render(php, options={"host": "x.test", "color": PAYLOAD, "position": PAYLOAD})
    assert "alert" not in out and '"style"' not in out and out.count(QUEUE) == 1
    # The title of an app's frame is the company's text: escaped.
    out = render(php, options={"host": "x.test", "mode": "app", "app": "kb", "title": PAYLOAD})
    assert "<script>alert" not in out
    (frame,) = re.findall(r"<iframe\b[^>]*>", out)
    assert html.unescape(re.search(r'title="([^"]*)"', frame)[1]) == PAYLOAD


def test_the_template_escapes_whatever_it_is_given(php):
    """Data made up past the helper's checks: the template alone still escapes every value."""
    out = render(
        php,
        portal={
            "mode": "launcher",
            "loader": "https://x.test/widget.js?a=1&b=" + PAYLOAD,
            "style": {"color": PAYLOAD, "position": "left"},
        },
    )
    assert "<script>alert" not in out and out.count("<script") == 2
    assert 'src="https://x.test/widget.js?a=1&amp;b=&quot;&gt;&lt;/script&gt;' in out
    assert '"color":"\\u0022\\u003E\\u003C\\/script\\u003E\\u003Cscript\\u003Ealert(1)' in out

    out = render(
        php,
        portal={
            "mode": "app",
            "src": "https://x.test/kb/?embed=1&x=" + PAYLOAD,
            "title": PAYLOAD,
            "height": "480px;background:url(x)",
            "origin": PAYLOAD,
        },
    )
    assert "<script>alert" not in out and "height:480px;border:0" in out
    assert out.count("</script>") == 1


def test_one_app_in_a_frame(php):
    cases = {
        ("kb", 0, ""): "https://x.test/kb/?embed=1",
        ("kb", 0, "nb"): "https://x.test/kb/nb/?embed=1",
        ("chat", 0, ""): "https://x.test/messenger?embed=1",
        ("form", 7, ""): "https://x.test/forms/7?embed=1",
        ("tickets", 0, ""): "https://x.test/portal?embed=1",
    }
    for (app, form_id, lang), src in cases.items():
        options = {"host": "x.test", "mode": "app", "app": app, "form_id": form_id, "lang": lang}
        out = render(php, options={**options, "height": 99999})
        (frame,) = re.findall(r"<iframe\b[^>]*>", out)
        assert f'src="{src}"' in frame and "height:4000px" in frame and "data-portal-frame" in frame
        assert 'e.origin!=="https:\\/\\/x.test"' in out and "portal:height" in out
    assert render(php, options={"host": "x.test", "mode": "app", "app": "form"}) == ""
    assert render(php, options={"host": "x.test", "mode": "app", "app": "nonsense"}) == ""


def test_which_pages_show_the_launcher(php):
    code = (
        "define('_JEXEC', 1); require getenv('HELPER');"
        "use Portal\\Module\\PortalWidget\\Site\\Helper\\PortalWidgetHelper as H;"
        "echo json_encode(["
        "H::shows('all', [], 0, 5), H::shows('all', [], 9, 5),"
        "H::shows('front', [], 5, 5), H::shows('front', [], 6, 5), H::shows('front', [], 0, 0),"
        "H::shows('chosen', ['6', 7], 6, 5), H::shows('chosen', [7], 6, 5),"
        "H::shows('chosen', [], 6, 5), H::shows('chosen', [0], 0, 5)]);"
    )
    done = subprocess.run(
        [php, "-r", code],
        env={"HELPER": str(MODULE / "src" / "Helper" / "PortalWidgetHelper.php")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == [True, True, True, False, False, True, False, False, False]
