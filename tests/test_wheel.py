"""Installed, not only checked out (SPEC §8): the wheel, installed into a fresh virtual environment, runs the
CLI and gunicorn from an empty folder on PostgreSQL and serves every kind of page.

Slow (it builds a wheel and starts a server) and PostgreSQL only: CI's PostgreSQL run runs it once.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, make_url, text

from duesflow import create_app

PG_URL = os.environ.get("DUESFLOW_TEST_DATABASE_URL")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_PASSWORD = "wheel-demo-password"
# Only what a deployment would set: no PYTHONPATH, nothing that points back at the checkout.
SERVER_ENV = {
    "DUESFLOW_SECRET_KEY": "wheel-test-secret-key-of-at-least-32-characters",
    "DUESFLOW_ARGON2_TIME_COST": "1",
    "DUESFLOW_ARGON2_MEMORY_COST": "1024",
    "DUESFLOW_ARGON2_PARALLELISM": "1",
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PG_URL, reason="builds and serves the wheel on PostgreSQL: set DUESFLOW_TEST_DATABASE_URL"),
]


def _run(command: list[str], **kwargs: object) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel_database() -> Iterator[str]:
    """A database of its own beside the test database (the CLI's migrations need an empty one)."""
    assert PG_URL
    url = make_url(PG_URL)
    name = f"{url.database}_wheel"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment with duesflow installed from a wheel built from a copy of this checkout.

    The venv sees the system's site-packages (the dependencies are not downloaded again); duesflow itself must
    come from the wheel, which the test checks through ``duesflow.__file__``.
    """
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(PROJECT_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "instance", "*.egg-info", "__pycache__", ".venv", ".pytest_cache"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(work / "dist"),
          str(source)])
    wheel = next((work / "dist").glob("duesflow-*.whl"))
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)])
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-index", str(wheel)])
    shutil.rmtree(source)  # nothing of the checkout is left to fall back on
    return venv


def test_the_wheel_serves_every_page_from_an_empty_folder(
        installed: Path, wheel_database: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("DUESFLOW_") and name != "PYTHONPATH"}
    env.update(SERVER_ENV, DUESFLOW_DATABASE_URL=wheel_database)
    python = str(installed / "bin" / "python")  # flask and gunicorn come from the system's site-packages

    where = _run([python, "-c", "import duesflow; print(duesflow.__file__)"], cwd=empty, env=env)
    assert Path(where.strip()).is_relative_to(installed), where

    flask = [python, "-m", "flask", "--app", "duesflow"]
    _run([*flask, "init-db"], cwd=empty, env=env)
    logins = _run([*flask, "demo", "--password", DEMO_PASSWORD], cwd=empty, env=env)
    assert "demo-clerk" in logins

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    server = subprocess.Popen(
        [python, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}", "duesflow:create_app()"],
        cwd=empty, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, server)
        _check_pages(base)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert b"Traceback" not in output, output.decode(errors="replace")[-4000:]


def _wait_healthy(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, server.communicate()[0].decode(errors="replace")
        try:
            health = requests.get(f"{base}/healthz", timeout=60)
        except requests.RequestException:  # not listening yet, or the workers still importing
            time.sleep(0.2)
            continue
        assert health.status_code == 200, health.text
        return
    pytest.fail("gunicorn did not answer /healthz")


def _check_pages(base: str) -> None:
    pages = requests.Session()
    login = pages.get(f"{base}/login", timeout=30)
    assert login.status_code == 200 and "登录" in login.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
    assert csrf
    home = pages.post(f"{base}/login", data={"username": "demo-clerk", "password": DEMO_PASSWORD,
                                             "csrf_token": csrf.group(1)}, timeout=30)
    assert home.status_code == 200 and "待办" in home.text and "退出" in home.text, home.text[:2000]

    stylesheet = pages.get(f"{base}/static/style.css", timeout=30)
    assert stylesheet.status_code == 200 and stylesheet.headers["Content-Type"].startswith("text/css")
    assert ":focus-visible" in stylesheet.text

    if any(rule.rule == "/verify" for rule in _url_map_rules()):
        assert requests.get(f"{base}/verify", timeout=30).status_code == 200

    token = requests.post(f"{base}/api/v1/auth/token", json={"username": "demo-central", "password": DEMO_PASSWORD},
                          timeout=30).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    receipted = requests.get(f"{base}/api/v1/payments?state=receipted", headers=auth, timeout=30).json()["items"]
    receipt = receipted[0]["receipt"]
    pdf = requests.get(f"{base}/api/v1/payments/{receipted[0]['id']}/receipt.pdf", headers=auth, timeout=60)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    page = requests.get(f"{base}/verify/{receipt['number']}?code={receipt['verification_code']}", timeout=30)
    assert page.status_code == 200 and "真实有效" in page.text, page.text[:2000]


def _url_map_rules() -> list:
    """The routes of this checkout's app (the wheel was built from it)."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://",
                      "SECRET_KEY": SERVER_ENV["DUESFLOW_SECRET_KEY"]})
    return list(app.url_map.iter_rules())
