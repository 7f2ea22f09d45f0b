"""MQTT brokers Farsight can start itself: a mosquitto process, or amqtt in a thread.

The demo prefers mosquitto when the binary is installed: amqtt 0.12 does not deliver QoS 1
messages queued for a persistent session after the subscriber reconnects (see
``tests/e2e/test_broker_promises.py``), which is a promise ingest relies on.
"""

from __future__ import annotations

import asyncio
import ctypes
import getpass
import importlib.util
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from farsight.errors import BrokerError, MissingExtraError
from farsight.logs import kv

if TYPE_CHECKING:
    from amqtt.broker import Broker

log = logging.getLogger("farsight.broker")

REPO_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto.conf"
_REPLACED = (
    "listener",
    "persistence_location",
    "log_dest",
    "pid_file",
    "allow_anonymous",
    "password_file",
    "acl_file",
    "use_username_as_clientid",
    "user",
    # Options of the listener they follow, which is replaced: see TlsListener.
    "cafile",
    "capath",
    "certfile",
    "keyfile",
    "require_certificate",
    "use_identity_as_username",
    "tls_version",
)


@dataclass(frozen=True, slots=True)
class BrokerAuth:
    """The files of an authenticating mosquitto (:func:`farsight.broker_acl.write_broker_files`
    writes them): only users of ``password_file`` connect, each may do what ``acl_file`` says.

    ``password_file`` None: identities come from client certificates alone (a TLS listener with
    ``use_identity_as_username``), and a client without one is refused.
    """

    password_file: Path | None
    acl_file: Path


@dataclass(frozen=True, slots=True)
class TlsListener:
    """A TLS listener of a mosquitto this process starts (8883 in production).

    ``farsight pki`` makes the files. With ``require_certificate`` a client must show a
    certificate the CA signed; with ``use_identity_as_username`` too, its subject CN is its MQTT
    user name, for ACLs. ``only`` leaves out the plain listener: the broker's ``port`` is then
    the TLS one.
    """

    cafile: Path
    certfile: Path
    keyfile: Path
    port: int | None = None
    require_certificate: bool = False
    use_identity_as_username: bool = False
    only: bool = False

    def __post_init__(self) -> None:
        if self.use_identity_as_username and not self.require_certificate:
            raise ValueError("use_identity_as_username needs require_certificate")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ValueError(f"port must be 1-65535, got {self.port}")

    def config_lines(self, port: int, host: str) -> list[str]:
        """mosquitto.conf lines of this listener on ``host:port``."""
        lines = [
            f"listener {port} {host}",
            f"cafile {self.cafile}",
            f"certfile {self.certfile}",
            f"keyfile {self.keyfile}",
            # The lowest version offered; mosquitto 2.0 would otherwise still take TLS 1.1.
            "tls_version tlsv1.2",
        ]
        if self.require_certificate:
            lines.append("require_certificate true")
        if self.use_identity_as_username:
            lines.append("use_identity_as_username true")
        return lines


class RunningBroker(Protocol):
    """A broker this process started; ``stop()`` ends it."""

    host: str
    port: int
    kind: str

    def stop(self) -> None: ...


_PORTS = random.SystemRandom()


def _ephemeral_low() -> int:
    """The lowest port the OS hands out for outgoing connections and ``bind(0)``."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port(rng: random.Random = _PORTS) -> int:
    """A TCP port that is free on loopback, below the OS's ephemeral range when it can be.

    A port from ``bind(0)`` comes from the range every outgoing connection also takes its local
    port from: between our releasing it and a server binding it, any client of the machine (a
    parallel test's HTTP or MQTT connection) may take it ("address already in use"). Below that
    range only another listener can, and then only by picking the same port at random.
    """
    low = _ephemeral_low()
    if low > 11024:
        for _ in range(50):
            port = rng.randrange(10000, low - 1)
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _reserve(host: str, port: int) -> socket.socket | None:
    """A bound, not listening socket on ``host:port`` (``port`` 0: one the OS picks), which keeps
    the port from being handed to anyone else; None when it is taken already."""
    s = socket.socket()
    # The broker's own connections may leave the port in TIME_WAIT after a stop.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
    except OSError:
        s.close()
        log.warning("broker port taken while stopped", extra=kv(host=host, port=port))
        return None
    return s


def wait_for_port(
    host: str, port: int, timeout: float = 10.0, proc: subprocess.Popen | None = None
) -> None:
    """Poll until ``host:port`` accepts a TCP connection, or raise :class:`BrokerError`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(
                f"broker exited with status {proc.returncode} before listening on {host}:{port}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has Linux send the child SIGTERM when this process dies, so a broker
    never outlives a platform that was killed (SIGKILL, a crash) without stopping it.

    The kernel sends the signal when the *thread* that started the child ends, so it is armed
    only from the main thread (whose end is the process's); elsewhere, and off Linux, None.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in it
    except (OSError, AttributeError):
        return None
    parent, sigterm = os.getpid(), int(signal.SIGTERM)

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, sigterm)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), sigterm)

    return arm


def mosquitto_binary() -> str | None:
    """Path of the mosquitto binary, if installed (Debian puts it in /usr/sbin)."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


def mosquitto_config(
    base: str,
    port: int,
    persistence_dir: Path,
    host: str = "127.0.0.1",
    auth: BrokerAuth | None = None,
    tls: TlsListener | None = None,
) -> str:
    """``base`` with its listener, persistence location and logging replaced for a local run;
    anonymous, or with ``auth``'s password and ACL files.

    With ``tls``, a TLS listener on ``tls.port`` besides the plain one on ``port``, or on
    ``port`` alone when ``tls.only``.
    """
    kept = [line for line in base.splitlines() if line.strip().split(" ", 1)[0] not in _REPLACED]
    # The session is the user's: nobody takes over another identity's client id (and its
    # persistent session) by connecting with it. A listener option: repeated under each.
    per_listener = ["use_username_as_clientid true"] if auth is not None else []
    if tls is None:
        kept += [f"listener {port} {host}", *per_listener]
    elif tls.only:
        kept += [*tls.config_lines(port, host), *per_listener]
    else:
        if tls.port is None:
            raise ValueError("a TLS listener beside the plain one needs its own port")
        kept += [f"listener {port} {host}", *per_listener]
        kept += [*tls.config_lines(tls.port, host), *per_listener]
    if auth is None:
        kept.append("allow_anonymous true")
    else:
        kept += [
            "allow_anonymous false",
            f"acl_file {auth.acl_file}",
        ]
        if auth.password_file is not None:
            kept.append(f"password_file {auth.password_file}")
    kept += [
        f"persistence_location {persistence_dir}/",
        "log_dest stderr",
        # Started as root, mosquitto would drop to the 'mosquitto' user, which cannot write a
        # persistence file into our data directory: a restart would lose every queued message.
        # The broker we start runs as whoever started it, like the rest of the platform.
        f"user {getpass.getuser()}",
    ]
    return "\n".join(kept) + "\n"


class MosquittoBroker:
    """A mosquitto process configured from ``deploy/mosquitto.conf`` on a loopback port."""

    kind = "mosquitto"

    def __init__(
        self,
        port: int | None = None,
        data_dir: Path | None = None,
        conf: Path | None = None,
        host: str = "127.0.0.1",
        auth: BrokerAuth | None = None,
        tls: TlsListener | None = None,
    ) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise BrokerError(
                "mosquitto is not installed; install it with `apt-get install mosquitto`"
                " (./run test does this)"
            )
        self.host = host
        # The port stays bound by a placeholder socket whenever mosquitto is not running on it
        # (before the first start, between a stop and a restart), so no other process (another
        # test's free_port(), in a parallel run) is handed it meanwhile.
        self._hold: socket.socket | None = _reserve(host, port or 0)
        if port:
            self.port = port
        elif self._hold is not None:
            self.port = int(self._hold.getsockname()[1])
        else:
            self.port = free_port()
        # A second listener (TLS beside the plain one) holds its port the same way.
        self._tls_hold: socket.socket | None = None
        self.tls_port: int | None = None
        if tls is not None and tls.only:
            self.tls_port = self.port
        elif tls is not None:
            self._tls_hold = _reserve(host, tls.port or 0)
            if tls.port:
                self.tls_port = tls.port
            elif self._tls_hold is not None:
                self.tls_port = int(self._tls_hold.getsockname()[1])
            else:
                self.tls_port = free_port()
            tls = replace(tls, port=self.tls_port)
        self.tls = tls
        self._tmp = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="farsight-mosquitto-")
            data_dir = Path(self._tmp.name)
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = conf or REPO_CONF
        base = (
            conf.read_text(encoding="utf-8")
            if conf.exists()
            else "set_tcp_nodelay true\nmax_inflight_messages 1000\n"
            "max_queued_messages 1000000\npersistence true\n"
        )
        self.conf_path = self.data_dir / "mosquitto.conf"
        self.auth = auth
        self.conf_path.write_text(
            mosquitto_config(base, self.port, self.data_dir, host, auth, tls), encoding="utf-8"
        )
        self.log_path = self.data_dir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        """Start (or restart) the process on the same port and persistence directory.

        The broker runs in a session of its own, so a Ctrl-C in the terminal reaches the platform
        and not its broker: the platform stops it last, after ingest has read what it holds. It
        dies with the process that started it (see :func:`die_with_parent`).
        """
        self._release()
        with self.log_path.open("ab") as out:  # the child keeps its own copy of the file
            self.proc = subprocess.Popen(
                [mosquitto_binary() or "mosquitto", "-c", str(self.conf_path)],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                # Safe with threads: the hook only calls prctl and getppid between fork and exec.
                preexec_fn=die_with_parent(),  # noqa: PLW1509
            )
        wait_for_port(self.host, self.port, proc=self.proc)
        if self.tls_port is not None and self.tls_port != self.port:
            wait_for_port(self.host, self.tls_port, proc=self.proc)
        log.info(
            "broker started",
            extra=kv(
                kind="mosquitto",
                host=self.host,
                port=self.port,
                tls_port=self.tls_port,
                pid=self.proc.pid,
            ),
        )

    @property
    def pid(self) -> int | None:
        """The running process's id, else None."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def reload(self) -> None:
        """Have the running broker read its password and ACL files again (SIGHUP)."""
        pid = self.pid
        if pid is None:
            raise BrokerError("the broker is not running")
        os.kill(pid, signal.SIGHUP)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 5 s); mosquitto saves its persistence
        file."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self._hold = _reserve(self.host, self.port)  # until start() or close()
            if self.tls_port is not None and self.tls_port != self.port:
                self._tls_hold = _reserve(self.host, self.tls_port)
        self.proc = None

    def _release(self) -> None:
        if self._hold is not None:
            self._hold.close()
            self._hold = None
        if self._tls_hold is not None:
            self._tls_hold.close()
            self._tls_hold = None

    def close(self) -> None:
        self.stop()
        self._release()
        if self._tmp is not None:
            self._tmp.cleanup()


class AmqttBroker:
    """amqtt's pure-Python broker, run on its own event loop in a daemon thread."""

    kind = "amqtt"

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        # Checked before the thread starts (the import itself happens there, see _run), so a
        # missing package reads as such rather than as a broker that failed to start.
        if importlib.util.find_spec("amqtt") is None:
            raise MissingExtraError(
                "amqtt", "demo", "the demo's fallback broker", instead="or install mosquitto"
            )
        self.host = host
        self.port = port or free_port()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self._config = config
        self._loop = asyncio.new_event_loop()
        self._broker: Broker | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="amqtt-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise BrokerError("amqtt broker did not start within 15 s")
        if self._error is not None:
            raise BrokerError(f"amqtt broker failed to start: {self._error}")
        wait_for_port(self.host, self.port)
        log.info("broker started", extra=kv(kind="amqtt", host=self.host, port=self.port))

    def _run(self) -> None:
        # amqtt looks up the current event loop while it is built: build it on its own thread.
        from amqtt.broker import Broker  # imported here: only the demo without mosquitto needs it

        asyncio.set_event_loop(self._loop)
        try:
            broker = self._broker = Broker(self._config, loop=self._loop)
            self._loop.run_until_complete(broker.start())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._broker is None or not self._loop.is_running():
            return
        fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        try:
            fut.result(timeout=10)
        except Exception as exc:  # noqa: BLE001 - shutting down anyway
            log.warning("amqtt shutdown failed", extra=kv(error=exc))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def close(self) -> None:
        self.stop()


def start_embedded(
    kind: str, port: int, data_dir: Path, auth: BrokerAuth | None = None
) -> RunningBroker:
    """Start the demo's broker: ``auto`` prefers a mosquitto binary, else amqtt. ``auth`` applies
    to mosquitto only: amqtt cannot enforce mosquitto's ACL file (the caller says so)."""
    if kind == "auto":
        kind = "mosquitto" if mosquitto_binary() else "amqtt"
        if kind == "amqtt":
            log.warning(
                "mosquitto not installed; using amqtt, which loses QoS 1 messages queued for"
                " offline persistent sessions"
            )
    if kind == "mosquitto":
        return MosquittoBroker(port=port, data_dir=data_dir / "mosquitto", auth=auth)
    if kind == "amqtt":
        return AmqttBroker(port=port)
    raise BrokerError(f"unknown embedded broker {kind!r}; known: auto, mosquitto, amqtt")
