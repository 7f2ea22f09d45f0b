"""Send the evidence files made at the site to the hub, so the alerts that cite them can show them.

Findings reach the hub through the buffer; the files they cite (snapshots, clips) are written to
``<data_dir>/evidence`` by the cameras at the gateway and are sent separately, over HTTPS to the
hub's ``POST /api/evidence``, when the link is up. Files are named by their SHA-256, so a
re-send is harmless and the hub's answer proves the upload (it returns the hash it computed).
What was sent is remembered in ``<data_dir>/evidence-sent.db``; a failure is retried at the next
scan, with the interval doubling up to ten minutes while the hub is unreachable.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

import httpx

from edge.config import EvidenceUploadSettings
from farsight.logs import kv

log = logging.getLogger("farsight.edge.evidence")

MAX_BACKOFF_S = 600.0


class EvidenceUploader:
    """Background thread that uploads new evidence files to the hub."""

    def __init__(self, data_dir: Path, settings: EvidenceUploadSettings) -> None:
        self.root = data_dir / "evidence"
        self.settings = settings
        self.token = os.environ.get(settings.token_env, "")
        self._db = sqlite3.connect(data_dir / "evidence-sent.db", check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS sent (sha TEXT PRIMARY KEY, size INTEGER NOT NULL, at REAL"
            " NOT NULL)"
        )
        self._db.commit()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.failures = 0
        self.state = "idle"

    def _sent(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT sha FROM sent")}

    def pending(self) -> list[Path]:
        """Files under the evidence folder not yet acknowledged by the hub, oldest first."""
        if not self.root.is_dir():
            return []
        done = self._sent()
        files = [
            p
            for p in self.root.glob("??/*.*")
            if p.is_file() and p.name.split(".", 1)[0] not in done
        ]
        return sorted(files, key=lambda p: p.stat().st_mtime)

    def upload_once(self, client: httpx.Client) -> int:
        """Send every pending file; stop at the first failure. Returns how many were sent."""
        n = 0
        for path in self.pending():
            sha = path.name.split(".", 1)[0]
            data = path.read_bytes()
            r = client.post(
                "/api/evidence", content=data, headers={"Authorization": f"Bearer {self.token}"}
            )
            if r.status_code != 201 or r.json().get("sha256") != sha:
                raise httpx.HTTPStatusError(
                    f"hub answered {r.status_code} for {sha}", request=r.request, response=r
                )
            self._db.execute(
                "INSERT OR IGNORE INTO sent (sha, size, at) VALUES (?, ?, strftime('%s','now'))",
                (sha, len(data)),
            )
            self._db.commit()
            n += 1
            self.sent += 1
        return n

    def _run(self) -> None:
        s = self.settings
        verify: bool | str = str(s.ca_file) if s.ca_file else True
        wait = s.interval_s
        with httpx.Client(base_url=s.hub_url or "", timeout=s.timeout_s, verify=verify) as client:
            while not self._stop.wait(wait):
                try:
                    self.upload_once(client)
                    self.state, wait = "ok", s.interval_s
                except (httpx.HTTPError, OSError, ValueError) as exc:
                    self.failures += 1
                    self.state, wait = "failing", min(MAX_BACKOFF_S, wait * 2)
                    log.warning(
                        "evidence upload failed; retrying",
                        extra=kv(error=str(exc)[:200], retry_s=wait),
                    )

    def start(self) -> None:
        if not self.settings.hub_url:
            return
        if not self.token:
            log.warning("evidence upload off: no token", extra=kv(variable=self.settings.token_env))
            self.state = "no token"
            return
        self._thread = threading.Thread(target=self._run, name="edge-evidence", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.timeout_s + 5)
        self._db.close()
