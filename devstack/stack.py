"""Start, health-check and stop the embedded local stack: cosmosdb-server (TLS) behind the RU gateway, and Azurite.

cosmosdb-server listens on an internal backend port (``cosmos_backend_port``, default ``cosmos_port + 10``); the RU
gateway (``devstack.ru_gateway``, a separate process) listens on ``cosmos_port``, so
``cosmos_endpoint`` — what every client uses — charges and throttles RU like Cosmos DB (``provisioned_ru``), as a
``provisioned`` account (priority-based execution and throughput buckets honoured) or a ``serverless`` one (neither;
``account_mode``, env COSMOS_ARCHIVE_ACCOUNT_MODE), under a charge model (``charge_model``: ``published``, Microsoft's
figures, the default, or ``seed``; env COSMOS_ARCHIVE_CHARGE_MODEL) with ``physical_partitions`` physical partitions
(0: derived from ``data_gb``, 50 GB each, as Azure splits; env COSMOS_ARCHIVE_PHYSICAL_PARTITIONS,
COSMOS_ARCHIVE_DATA_GB).

Every server listens on 127.0.0.1 only. State (pid files, logs, TLS material) lives in one state directory, so
``up`` is idempotent (a healthy service already running is reused) and ``down`` stops exactly what ``up`` started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from devstack.ru_gateway.charge_model import PRESETS
from devstack.ru_gateway.config import ACCOUNT_MODES
from devstack.tls import TlsFiles, ensure_local_tls
from include.cosmos_archiver.clients import CA_BUNDLE_ENV

REPO_ROOT = Path(__file__).resolve().parents[1]  # the dev kit lives at the project root
LOOPBACK = "127.0.0.1"

# The well-known, documented development credentials of the local emulators; never real secrets.
EMULATOR_COSMOS_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class StackError(RuntimeError):
    """The local stack cannot start or is unhealthy; the message says what to do."""


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path = REPO_ROOT / ".local-stack"
    cosmos_port: int = 8081
    blob_port: int = 10000
    node_modules: Path = REPO_ROOT / "node_modules"
    start_timeout_s: float = 30.0
    cosmos_backend_port: int | None = None  # None: cosmos_port + 10
    provisioned_ru: float = 5000.0
    metrics_delay_s: float = 0.0  # the gateway's Azure Monitor reporting delay (Azure: ~120 s)
    account_mode: str = "provisioned"  # or "serverless": the gateway ignores priority and throughput buckets
    charge_model: str = "published"  # or "seed" (the design seed's 1 RU/KB read, 5 RU/KB write)
    physical_partitions: int = 0  # 0: derived from data_gb, 50 GB each (partitions.py)
    data_gb: float = 0.0

    def __post_init__(self) -> None:
        if self.charge_model not in PRESETS:
            raise StackError(
                f"charge model {self.charge_model!r} must be one of {', '.join(PRESETS)} (COSMOS_ARCHIVE_CHARGE_MODEL)"
            )
        if self.account_mode not in ACCOUNT_MODES:
            raise StackError(
                f"account mode {self.account_mode!r} must be one of {', '.join(ACCOUNT_MODES)} "
                "(COSMOS_ARCHIVE_ACCOUNT_MODE)"
            )

    @classmethod
    def from_env(cls) -> StackConfig:
        """Ports and state directory from COSMOS_ARCHIVE_* variables, with the defaults above."""
        env = os.environ
        base = cls()
        return cls(
            state_dir=Path(env.get("COSMOS_ARCHIVE_STATE_DIR", base.state_dir)),
            cosmos_port=_port(env, "COSMOS_ARCHIVE_COSMOS_PORT", base.cosmos_port),
            blob_port=_port(env, "COSMOS_ARCHIVE_BLOB_PORT", base.blob_port),
            cosmos_backend_port=_port(env, "COSMOS_ARCHIVE_COSMOS_BACKEND_PORT", 0) or None,
            provisioned_ru=_positive(env, "COSMOS_ARCHIVE_PROVISIONED_RU", base.provisioned_ru),
            metrics_delay_s=_positive(env, "COSMOS_ARCHIVE_METRICS_DELAY_S", base.metrics_delay_s, allow_zero=True),
            account_mode=env.get("COSMOS_ARCHIVE_ACCOUNT_MODE", base.account_mode).strip().lower(),
            charge_model=env.get("COSMOS_ARCHIVE_CHARGE_MODEL", base.charge_model).strip().lower(),
            physical_partitions=int(_positive(env, "COSMOS_ARCHIVE_PHYSICAL_PARTITIONS", 0, allow_zero=True)),
            data_gb=_positive(env, "COSMOS_ARCHIVE_DATA_GB", base.data_gb, allow_zero=True),
        )

    @property
    def backend_port(self) -> int:
        """cosmosdb-server's own port, behind the RU gateway."""
        return self.cosmos_backend_port if self.cosmos_backend_port is not None else self.cosmos_port + 10

    @property
    def cosmos_backend_endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.backend_port}/"

    @property
    def gateway_stats_url(self) -> str:
        return f"{self.cosmos_endpoint}_gateway/stats"

    @property
    def cosmos_endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.cosmos_port}/"

    @property
    def blob_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.blob_port}/{AZURITE_ACCOUNT}"

    @property
    def blob_connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"


def _positive(env: os._Environ[str] | dict[str, str], name: str, default: float, allow_zero: bool = False) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a number; set it to a number, e.g. {default:g}") from None
    if not (value >= 0 if allow_zero else value > 0):
        raise StackError(f"{name}={raw!r} must be {'>= 0' if allow_zero else '> 0'}, e.g. {default:g}")
    return value


def _port(env: os._Environ[str] | dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a port number; set it to an integer 1-65535") from None
    if not 0 < port < 65536:
        raise StackError(f"{name}={port} is out of range; set it to an integer 1-65535")
    return port


@dataclass
class Service:
    name: str
    argv: list[str]
    port: int
    healthy: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((LOOPBACK, port)) == 0


def _https_ok(url: str, ca_file: Path) -> Callable[[], bool]:
    def check() -> bool:
        ctx = ssl.create_default_context(cafile=str(ca_file))
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    return check


def _http_answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # Azurite answers an anonymous request with 4xx: it is up.
        except (OSError, urllib.error.URLError):
            return False

    return check


def _require_node(config: StackConfig) -> str:
    node = shutil.which("node")
    if node is None:
        raise StackError("node is not on PATH: install Node.js 20 (apt-get install nodejs npm), then run `npm ci`")
    for package in ("@vercel/cosmosdb-server", "azurite"):
        if not (config.node_modules / package / "package.json").exists():
            raise StackError(
                f"npm package {package} is not installed under {config.node_modules}: run `npm ci` in {REPO_ROOT}"
            )
    return node


SERVICE_NAMES = ("cosmosdb-server", "ru-gateway", "azurite-blob")  # start order; down() stops in reverse
GATEWAY_MODULE = f"{__package__.rsplit('.', 1)[0]}.ru_gateway"


def services(config: StackConfig, tls: TlsFiles) -> list[Service]:
    node = _require_node(config)
    if config.backend_port in (config.cosmos_port, config.blob_port):
        raise StackError(
            f"cosmosdb-server's backend port {config.backend_port} collides with another stack port; "
            f"set COSMOS_ARCHIVE_COSMOS_BACKEND_PORT to a free port"
        )
    python_path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return [
        Service(
            name="cosmosdb-server",
            argv=[
                node,
                str(Path(__file__).with_name("cosmosdb_server_launcher.js")),
                LOOPBACK,
                str(config.backend_port),
                str(tls.server_cert),
                str(tls.server_key),
            ],
            port=config.backend_port,
            healthy=_https_ok(config.cosmos_backend_endpoint, tls.ca_cert),
        ),
        Service(
            name="ru-gateway",
            argv=[
                sys.executable,
                "-m",
                GATEWAY_MODULE,
                "--port",
                str(config.cosmos_port),
                "--backend",
                config.cosmos_backend_endpoint.rstrip("/"),
                "--state-dir",
                str(config.state_dir),
                "--provisioned-ru",
                f"{config.provisioned_ru:g}",
                "--reporting-delay-s",
                f"{config.metrics_delay_s:g}",
                "--account",
                config.account_mode,
                "--charge-model",
                config.charge_model,
                "--physical-partitions",
                str(config.physical_partitions),
                "--data-gb",
                f"{config.data_gb:g}",
            ],
            port=config.cosmos_port,
            healthy=_https_ok(f"{config.cosmos_endpoint}_gateway/health", tls.ca_cert),
            env={"PYTHONPATH": python_path},
        ),
        Service(
            name="azurite-blob",
            argv=[
                node,
                str(config.node_modules / "azurite" / "dist" / "src" / "blob" / "main.js"),
                "--blobHost",
                LOOPBACK,
                "--blobPort",
                str(config.blob_port),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--silent",
                "--loose",
            ],
            port=config.blob_port,
            healthy=_http_answers(f"http://{LOOPBACK}:{config.blob_port}/{AZURITE_ACCOUNT}?comp=list"),
        ),
    ]


def _pid_file(config: StackConfig, name: str) -> Path:
    return config.state_dir / f"{name}.pid"


def _running_pid(config: StackConfig, name: str) -> int | None:
    path = _pid_file(config, name)
    if not path.exists():
        return None
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError, PermissionError):
        path.unlink(missing_ok=True)
        return None
    return pid


def _start(config: StackConfig, svc: Service) -> None:
    if _running_pid(config, svc.name) is not None and svc.healthy():
        return
    if _port_open(svc.port):
        raise StackError(
            f"port {svc.port} on {LOOPBACK} is already in use by another process, so {svc.name} cannot start: "
            f"stop that process or choose another port (COSMOS_ARCHIVE_*_PORT)"
        )
    config.log_dir.mkdir(parents=True, exist_ok=True)
    log_path = config.log_dir / f"{svc.name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            svc.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=config.state_dir,
            env={**os.environ, **svc.env},
            start_new_session=True,
        )
    _pid_file(config, svc.name).write_text(str(proc.pid))
    deadline = time.monotonic() + config.start_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise StackError(f"{svc.name} exited with code {proc.returncode} while starting; log {log_path}:\n{tail}")
        if svc.healthy():
            return
        time.sleep(0.2)
    _stop_pid(proc.pid)
    raise StackError(
        f"{svc.name} did not become healthy on port {svc.port} in {config.start_timeout_s:.0f}s; see {log_path}"
    )


def _stop_pid(pid: int, grace_s: float = 2.0) -> None:
    # Every service keeps its data in memory, so nothing is lost by not waiting long: Azurite otherwise waits
    # for clients' keep-alive connections to close before it exits.
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with suppress(ChildProcessError):  # reap our own child, if it is one
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def up(config: StackConfig | None = None) -> StackConfig:
    """Start every service that is not already running and healthy; raise StackError with advice otherwise."""
    config = config or StackConfig.from_env()
    config.state_dir.mkdir(parents=True, exist_ok=True)
    tls = ensure_local_tls(config.state_dir)
    started: list[Service] = []
    try:
        for svc in services(config, tls):
            _start(config, svc)
            started.append(svc)
    except BaseException:
        down(config)
        raise
    return config


def down(config: StackConfig | None = None) -> list[str]:
    """Stop every service this state directory started; return the names stopped."""
    config = config or StackConfig.from_env()
    stopped = []
    for name in reversed(SERVICE_NAMES):
        pid = _running_pid(config, name)
        if pid is not None:
            _stop_pid(pid)
            stopped.append(name)
        _pid_file(config, name).unlink(missing_ok=True)
    return stopped


def status(config: StackConfig | None = None) -> dict[str, str]:
    config = config or StackConfig.from_env()
    tls = ensure_local_tls(config.state_dir)
    result = {}
    for svc in services(config, tls):
        pid = _running_pid(config, svc.name)
        if pid is None:
            result[svc.name] = "stopped"
        else:
            result[svc.name] = f"running pid {pid} port {svc.port} " + ("healthy" if svc.healthy() else "UNHEALTHY")
    return result


CHARGE_MODEL_SOURCES = {
    "published": "Microsoft's published figures; see docs/benchmarks.md",
    "seed": "the design seed's flat 1 RU/KB read, 5 RU/KB write; see docs/benchmarks.md",
}


def gateway_stats(config: StackConfig | None = None) -> dict:
    """The running RU gateway's ``GET /_gateway/stats`` (last second; ``totals`` since it started, by class)."""
    config = config or StackConfig.from_env()
    ctx = ssl.create_default_context(cafile=str(ensure_local_tls(config.state_dir).ca_cert))
    with urllib.request.urlopen(f"{config.gateway_stats_url}?seconds=1", context=ctx, timeout=5) as resp:
        return json.load(resp)


def gateway_ru_total(config: StackConfig | None = None) -> float:
    """Every RU the running gateway has charged since it started, all traffic classes."""
    return sum(cell["ru"] for cell in gateway_stats(config)["totals"].values())


def charge_model_line(config: StackConfig | None = None) -> str:
    """One line saying who charged the RU a demo prints: the running gateway, under the model it reports on
    ``GET /_gateway/stats`` (the model in force, not the environment's wish), never Azure."""
    try:
        preset = gateway_stats(config)["config"]["charge_model"]["preset"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"RU charged by the local RU gateway (its charge model could not be read: {exc}), not by Azure"
    return (f"RU charged by the local RU gateway under its {preset!r} model "
            f"({CHARGE_MODEL_SOURCES.get(preset, 'see docs/benchmarks.md')}), not by Azure")


def trust_env(ca_bundle: Path) -> dict[str, str]:
    """Environment that makes the SDKs trust ``ca_bundle`` (verification stays on). ``COSMOS_ARCHIVE_CA_BUNDLE`` is
    what the product's clients verify loopback endpoints with first (``clients.ca_bundle``)."""
    return {CA_BUNDLE_ENV: str(ca_bundle), "REQUESTS_CA_BUNDLE": str(ca_bundle), "SSL_CERT_FILE": str(ca_bundle)}


def client_env(config: StackConfig) -> dict[str, str]:
    """Environment that makes the SDKs trust the stack's local CA."""
    return trust_env(ensure_local_tls(config.state_dir).ca_bundle)


@contextmanager
def trusting(ca_bundle: Path) -> Iterator[None]:
    """Trust ``ca_bundle`` in this process for a block (every variable of :func:`trust_env`), then restore the
    environment as it was: a server a test starts with its own CA must not inherit another stack's."""
    trust = trust_env(ca_bundle)
    saved = {key: os.environ.get(key) for key in trust}
    os.environ.update(trust)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def running_stack(config: StackConfig) -> Iterator[StackConfig]:
    """Start the stack for a block (tests, benchmarks), trusting its CA in this process, then stop it and restore
    the environment as it was."""
    up(config)
    try:
        with trusting(ensure_local_tls(config.state_dir).ca_bundle):
            yield config
    finally:
        down(config)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":  # pragma: no cover - convenience
    print(up() and status(), file=sys.stderr)
