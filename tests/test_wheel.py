"""A built wheel serves pages without the source tree: templates and static files ship inside."""

import os
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

from tests.processes import free_port

ROOT = Path(__file__).parent.parent

pytestmark = pytest.mark.slow


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def test_installed_wheel_serves_the_demo(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(ROOT),
        ],
        check=True,
    )
    [wheel] = dist.glob("portal-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    bindir = venv / "bin"
    py = bindir / "python"
    # The dependencies come from this test run's environment; only portal itself is the wheel's.
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        check=True,
    )
    env = {
        **os.environ,
        "PORTAL_DATA_DIR": str(tmp_path / "data"),
        "PORTAL_PORT": str(free_port()),
    }
    env.pop("PYTHONPATH", None)
    where = subprocess.run(
        [py, "-c", "import portal; print(portal.__file__)"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert str(venv) in where, f"portal was imported from {where}, not the wheel"
    subprocess.run(
        [bindir / "portal", "demo"], cwd=tmp_path, env=env, check=True, capture_output=True
    )
    server = subprocess.Popen([bindir / "portal", "serve"], cwd=tmp_path, env=env)
    base = f"http://127.0.0.1:{env['PORTAL_PORT']}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = _get(base + "/kb/en/")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        assert status == 200 and "Demo Co" in body
        css_status, css = _get(base + "/static/css/portal.css")
        assert css_status == 200 and "--brand" in css
    finally:
        server.terminate()
        server.wait(timeout=10)
