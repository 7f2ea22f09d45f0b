"""Browser tests: the running demo (``farsight demo`` as a subprocess) driven by Playwright
through Debian's chromium (``/usr/bin/chromium``; no browser download).

Screenshots are kept under ``tests/artifacts/`` (git-ignored; ``FARSIGHT_TEST_ARTIFACTS``
moves it), and their paths are printed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from farsight.broker import free_port
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("FARSIGHT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("FARSIGHT_TEST_ARTIFACTS") or ROOT / "tests" / "artifacts")
AXE = ROOT / "hub" / "frontend" / "node_modules" / "axe-core" / "axe.min.js"
VENDOR = ROOT / "hub" / "static" / "vendor"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


class Demo:
    """``farsight demo`` in a subprocess on a free hub port, with its own data directory."""

    def __init__(self, data_dir: Path, duration_s: float = 900) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        # Its own broker port too (kept across a restart): the default 1883 is what every other
        # demo on this machine tries first.
        self.broker_port = free_port()
        self.duration_s = duration_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / "demo.log"
        self.token = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "FARSIGHT_DATA_DIR": str(self.data_dir),
            "FARSIGHT__BROKER__PORT": str(self.broker_port),
            # No simulated cameras: no browser test looks at video (tests/e2e/test_video_alert.py
            # covers that path), and rendering and analysing them costs a core's tenth throughout.
            "FARSIGHT__SIMULATOR__CAMERAS__ENABLED": "false",
            "PYTHONUNBUFFERED": "1",
        }
        # --duration is a safety net: a crashed test run never leaves a demo running for long.
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app",
                "demo",
                "--port",
                str(self.port),
                "--duration",
                str(self.duration_s),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(
            self._healthy,
            timeout=90,
            interval=0.2,
            what=f"the demo's /healthz on port {self.port} (log: {self.log})",
        )
        token_file = self.data_dir / "demo-token"
        wait_until(token_file.is_file, timeout=10, what="the demo token")
        self.token = token_file.read_text(encoding="utf-8").strip()

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"the demo exited with {self.proc.returncode}; log:\n{tail}")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """SIGINT (the demo stops its parts in order), then kill after a deadline."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        """Stop and start again on the same port and data (the hub restarts)."""
        self.stop()
        wait_until(self._port_free, timeout=30, what=f"port {self.port} to be free")
        self.start()

    def _port_free(self) -> bool:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", self.port))
                return True
            except OSError:
                return False

    def api(
        self, path: str, token: str | None = None, method: str = "GET", body: Any = None
    ) -> Any:
        req = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            headers={
                "Authorization": f"Bearer {token or self.token}",
                "Content-Type": "application/json",
            },
            data=json.dumps(body).encode() if body is not None else None,
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def publish(self, topic: str, doc: dict[str, Any]) -> None:
        """Publish ``doc`` on the demo's broker at QoS 1, as one of its devices would: with that
        device's credentials, which the demo files in its data directory."""
        import paho.mqtt.publish

        from farsight.credentials import read_secrets, username_of_topic

        username = username_of_topic(topic)
        assert username is not None, f"{topic} is no device topic"
        secret = read_secrets(self.data_dir / "trust" / "demo-secrets.json")[username]
        paho.mqtt.publish.single(
            topic,
            json.dumps(doc),
            qos=1,
            hostname="127.0.0.1",
            port=self.broker_port,
            auth={"username": username, "password": secret.password},
        )

    def issue_token(self, user: str, department: str | None) -> str:
        """A token issued by ``farsight token issue`` against the demo's database."""
        args = [sys.executable, "-m", "app", "token", "issue", "--user", user]
        if department:
            args += ["--department", department]
        out = subprocess.run(
            args,
            cwd=ROOT,
            env={**os.environ, "FARSIGHT_DATA_DIR": str(self.data_dir)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout.strip().splitlines()[0]


@pytest.fixture(scope="package")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """One demo for the browser tests, stopped when they are done (it keeps two cores busy)."""
    if not (VENDOR / "leaflet" / "leaflet.js").is_file():
        pytest.fail(
            "the dashboard's assets are not built: run `python -m hub.build_assets`"
            " (./run test does)",
            pytrace=False,
        )
    d = Demo(tmp_path_factory.mktemp("demo") / "var")
    d.data_dir.mkdir()
    d.start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module. Not for the session: Playwright's sync API keeps an event
    loop running in the main thread while it is open, and later tests call asyncio.run()."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: ./run test installs Debian's chromium", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


class Page:
    """A fresh browser context and page; console errors and CSP violations are collected."""

    def __init__(self, browser: Any, viewport: dict[str, int], name: str) -> None:
        self.context = browser.new_context(
            viewport=viewport,
            device_scale_factor=1,
            is_mobile=viewport["width"] < 600,
            has_touch=viewport["width"] < 600,
        )
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.name = name
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def shot(self, label: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(path), full_page=False)
        print(f"screenshot: {path}")
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``open_page(viewport=DESKTOP)``: a new page; every one is closed at the end of the test."""
    pages: list[Page] = []

    def make(viewport: dict[str, int] = DESKTOP, name: str | None = None) -> Page:
        p = Page(browser, viewport, name or request.node.name)
        pages.append(p)
        return p

    yield make
    blocked = [e for p in pages for e in p.errors if "Content Security Policy" in e]
    for p in pages:
        p.close()
    # The dashboard must work under its strict CSP: anything it refused is a bug.
    assert not blocked, blocked


def axe_violations(
    page: Any, serious: tuple[str, ...] = ("serious", "critical")
) -> list[dict[str, Any]]:
    """Run axe-core in the page; the violations of the given impacts (id, impact, help, nodes)."""
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `python -m hub.build_assets` (npm ci)", pytrace=False)
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Injected from the test, not served by the hub: a script tag's content is allowed by CSP
        # only from 'self', so evaluate it in the page's context instead.
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        "async () => { const r = await axe.run(document, {resultTypes: ['violations']}); "
        "return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, "
        "nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))})); }"
    )
    return [v for v in result if v["impact"] in serious]
