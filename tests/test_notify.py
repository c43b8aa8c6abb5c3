"""Halt notifications: the message names the run, the slice, the records and how to resume; webhook and SMTP
deliveries reach real local servers; any delivery failure is logged with the full message and never raised."""

from __future__ import annotations

import json
import logging
import os
import socketserver
import sys
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from devstack.stack import free_port
from include.cosmos_archiver.pipeline.run_status import CLEAR_HINT
from include.cosmos_archiver.reporting.notifications import (
    DeliveryError,
    NotifyConfig,
    NotifyConfigError,
    deliver,
    deliver_all,
    halt_notice,
    redact_url,
    send_webhook,
    success_notice,
)

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
SECRET = "T0KEN-in-the-path"

VALIDATION: dict[str, Any] = {
    "slice_id": "2025/06/01",
    "ok": False,
    "source_count": 200,
    "sink_count": 170,
    "missing": [f"cust-{i:03d}/inv-{i}" for i in range(150)],
    "extra": [],
    "differing": ["cust-900/inv-900"],
    "bad_files": [
        {
            "path": "records/2025/06/01/part-00001.parquet",
            "reason": "sha256 abc does not match",
            "records": ["a/1", "a/2"],
        }
    ],
}


def _halt() -> Any:
    return halt_notice(
        dag_id="cosmos_archive",
        run_id="scheduled__2026-01-02T00:00:00+00:00",
        slice_id="2025/06/01",
        reason="slice 2025/06/01: validation FAILED",
        validation=VALIDATION,
        slice_start="2025-06-01T00:00:00+00:00",
        slice_end="2025-06-02T00:00:00+00:00",
        attempts=3,
        manifest_path="records/2025/06/01/_manifest.json",
        report_url="http://x/report.html",
    )


def test_halt_message_names_run_slice_records_and_how_to_resume() -> None:
    notice = _halt()
    assert "HALTED" in notice.subject and "2025/06/01" in notice.subject
    assert "scheduled__2026-01-02T00:00:00+00:00" in notice.subject
    text = notice.text
    assert "150 missing from the archive: cust-000/inv-0, " in text
    assert "cust-019/inv-19 … (+130 more" in text and "cust-020/inv-20" not in text  # 20 named in the text
    assert "1 differing from the source: cust-900/inv-900" in text
    assert "damaged file records/2025/06/01/part-00001.parquet: sha256 abc does not match (2 records" in text
    assert "source 200 records, archive 170 records" in text and "3 copy + validate attempts" in text
    assert CLEAR_HINT in text and "records/2025/06/01/_manifest.json" in text
    body = notice.webhook_body()
    assert body["counts"] == {"missing": 150, "extra": 0, "differing": 1, "bad_files": 1}
    assert len(body["records"]["missing"]) == 100 and body["truncated"] is True
    assert body["how_to_resume"] == CLEAR_HINT and body["text"].startswith(notice.subject)


def test_message_without_the_full_result_quotes_the_reason_and_is_capped() -> None:
    reason = "slice 2025/06/02: validation FAILED; 3 differing: a/1, a/2, a/3"
    notice = halt_notice(dag_id="d", run_id="r", slice_id="2025/06/02", reason=reason)
    assert reason in notice.text and CLEAR_HINT in notice.text
    huge = halt_notice(dag_id="d", run_id="r", slice_id="s", reason="x" * 100_000)
    assert len(huge.text) < 10_000 and "truncated" in huge.text


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, str], bytes]]] = []
    status = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, dict(self.headers), body))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"received": [], "status": 204})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_receives_the_json(hook_server: tuple[str, type[_Hook]]) -> None:
    base, handler = hook_server
    send_webhook(f"{base}/hooks/{SECRET}", _halt(), timeout_s=5, headers={"X-Archive": "yes"})
    [(path, headers, body)] = handler.received
    assert path == f"/hooks/{SECRET}" and headers["Content-Type"] == "application/json"
    assert headers["X-Archive"] == "yes"
    data = json.loads(body)
    assert data["event"] == "halted" and data["source"] == "cosmos-archive"
    assert data["slice_id"] == "2025/06/01" and data["run_id"] == "scheduled__2026-01-02T00:00:00+00:00"
    assert data["records"]["differing"] == ["cust-900/inv-900"] and "cust-000/inv-0" in data["text"]


def test_unreachable_webhook_logs_the_message_and_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    notice = _halt()
    url = f"http://127.0.0.1:{free_port()}/hooks/{SECRET}"  # nothing listens there
    with caplog.at_level(logging.ERROR, logger="include.cosmos_archiver.reporting.notifications"):
        assert deliver(notice, "webhook", lambda: send_webhook(url, notice, timeout_s=3)) is False
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    logged = record.getMessage()
    assert "webhook" in logged and "FAILED" in logged and "ConnectionError" in logged
    assert notice.subject in logged and notice.text in logged  # the full message is kept
    assert SECRET not in logged and "127.0.0.1" in logged  # the token in the URL is not


def test_webhook_answering_500_is_logged_not_raised(
    hook_server: tuple[str, type[_Hook]], caplog: pytest.LogCaptureFixture
) -> None:
    base, handler = hook_server
    handler.status = 500
    notice = _halt()
    with pytest.raises(DeliveryError, match="HTTP 500"):
        send_webhook(f"{base}/x", notice)
    with caplog.at_level(logging.ERROR, logger="include.cosmos_archiver.reporting.notifications"):
        result = deliver_all(
            notice, [("webhook", lambda: send_webhook(f"{base}/x", notice)), ("broken", lambda: 1 / 0)]
        )
    assert result == {"webhook": False, "broken": False}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and "HTTP 500" in errors[0] and "ZeroDivisionError" in errors[1]
    assert all("cust-900/inv-900" in e for e in errors)


def test_no_channel_configured_logs_the_message(caplog: pytest.LogCaptureFixture) -> None:
    notice = success_notice(dag_id="d", run_id="r1", slices_verified=4, records=1234, report_url="http://x/r")
    with caplog.at_level(logging.ERROR, logger="include.cosmos_archiver.reporting.notifications"):
        assert deliver_all(notice, []) == {}
    assert "no notification channel" in caplog.text and "Records archived: 1,234" in caplog.text


def test_redact_url_and_config_errors() -> None:
    assert redact_url(f"https://hooks.example.com/services/{SECRET}?sig=abc") == "https://hooks.example.com/…"
    assert redact_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    cfg = NotifyConfig.from_mapping({"channels": "webhook, smtp", "to": ["ops@example.com"], "timeout_s": "5"})
    assert cfg.channels == ("webhook", "smtp") and cfg.timeout_s == 5.0
    with pytest.raises(NotifyConfigError, match="'pager'"):
        NotifyConfig.from_mapping({"channels": ["pager"]})
    with pytest.raises(NotifyConfigError, match='"smtp" needs recipients'):
        NotifyConfig.from_mapping({"channels": ["smtp"]})
    with pytest.raises(NotifyConfigError, match=r"unknown notification setting\(s\) \['chanels'\]"):
        NotifyConfig.from_mapping({"chanels": ["webhook"]})
    with pytest.raises(NotifyConfigError, match="on_success='yes'"):
        NotifyConfig.from_mapping({"on_success": "yes"})


# ---- the Airflow side: notifiers over connections defined as AIRFLOW_CONN_* environment variables -------------


class _SmtpSink(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) to accept one message: EHLO/HELO, MAIL, RCPT, DATA, QUIT."""

    messages: ClassVar[list[dict[str, Any]]] = []

    def handle(self) -> None:
        self.wfile.write(b"220 sink ESMTP\r\n")
        mail: dict[str, Any] = {"rcpt": []}
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.wfile.write(b"250-sink\r\n250 8BITMIME\r\n")
            elif verb in (b"HELO", b"RSET", b"NOOP"):
                self.wfile.write(b"250 ok\r\n")
            elif verb == b"MAIL":
                mail["from"] = line.decode().split(":", 1)[1].strip()
                self.wfile.write(b"250 ok\r\n")
            elif verb == b"RCPT":
                mail["rcpt"].append(line.decode().split(":", 1)[1].strip())
                self.wfile.write(b"250 ok\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 end with .\r\n")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                mail["data"] = data
                type(self).messages.append(mail)
                mail = {"rcpt": []}
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"502 not implemented\r\n")


@pytest.fixture
def smtp_sink() -> Iterator[tuple[int, type[_SmtpSink]]]:
    handler = type("Sink", (_SmtpSink,), {"messages": []})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", free_port()), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.delenv("AIRFLOW_VAR_COSMOS_ARCHIVE_NOTIFY", raising=False)
    import cosmos_archive_notify

    return cosmos_archive_notify


def _conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def _context() -> dict[str, Any]:
    return {"run_id": "manual__2026-01-02T00:00:00+00:00"}


def test_notify_halt_posts_to_the_webhook_connection(
    plugin: Any, hook_server: tuple[str, type[_Hook]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, handler = hook_server
    _conn(
        monkeypatch,
        "archive_hook_test",
        conn_type="http",
        host=f"{base}/hooks",
        password="s3cret-token",
        extra={"endpoint": SECRET, "headers": {"X-Team": "billing"}},
    )
    config = NotifyConfig(channels=("webhook",), webhook_conn_id="archive_hook_test", timeout_s=5)
    result = plugin.notify_halt(
        _context(), slice_id="2025/06/01", reason="validation FAILED", validation=VALIDATION, attempts=3, config=config
    )
    assert result == {"webhook": True}
    [(path, headers, body)] = handler.received
    assert path == f"/hooks/{SECRET}" and headers["Authorization"] == "Bearer s3cret-token"
    assert headers["X-Team"] == "billing"
    data = json.loads(body)
    assert data["run_id"] == "manual__2026-01-02T00:00:00+00:00" and data["counts"]["missing"] == 150


def test_config_from_the_variable(
    plugin: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_VAR_COSMOS_ARCHIVE_NOTIFY",
        json.dumps({"channels": ["smtp"], "to": ["ops@example.com"], "on_success": True}),
    )
    config = plugin.load_notify_config()
    assert config.channels == ("smtp",) and config.to == ("ops@example.com",) and config.on_success
    monkeypatch.setenv("AIRFLOW_VAR_COSMOS_ARCHIVE_NOTIFY", '{"channels": ["fax"]}')
    with caplog.at_level(logging.ERROR):
        assert plugin.load_notify_config().channels == ()
    assert "cosmos_archive_notify is invalid" in caplog.text and "'fax'" in caplog.text


def test_smtp_channel_delivers_the_mail(
    plugin: Any, smtp_sink: tuple[int, type[_SmtpSink]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, handler = smtp_sink
    _conn(
        monkeypatch,
        "archive_smtp_test",
        conn_type="smtp",
        host="127.0.0.1",
        port=port,
        extra={"disable_tls": True, "disable_ssl": True, "timeout": 5, "retry_limit": 0},
    )
    config = NotifyConfig(
        channels=("smtp",), smtp_conn_id="archive_smtp_test", to=("ops@example.com",), from_email="archive@example.com"
    )
    assert plugin.notify_halt(_context(), slice_id="2025/06/01", reason="r", validation=VALIDATION, config=config) == {
        "smtp": True
    }
    [mail] = handler.messages
    assert mail["rcpt"] == ["<ops@example.com>"]
    msg = message_from_bytes(mail["data"], policy=policy.default)
    assert "HALTED: slice 2025/06/01" in msg["Subject"]
    html_part = msg.get_body(("html",))
    assert html_part is not None
    content = html_part.get_content()
    assert "cust-900/inv-900" in content and "cosmos_archive_status" in content


def test_smtp_failure_is_logged_not_raised(
    plugin: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _conn(
        monkeypatch,
        "archive_smtp_down",
        conn_type="smtp",
        host="127.0.0.1",
        port=free_port(),
        extra={"disable_tls": True, "disable_ssl": True, "timeout": 2, "retry_limit": 0},
    )
    config = NotifyConfig(
        channels=("smtp", "webhook"),
        smtp_conn_id="archive_smtp_down",
        webhook_conn_id="no_such_conn_here",
        to=("ops@example.com",),
        from_email="a@example.com",
    )
    with caplog.at_level(logging.ERROR, logger="include.cosmos_archiver.reporting.notifications"):
        result = plugin.notify_halt(_context(), slice_id="2025/06/01", reason="r", validation=VALIDATION, config=config)
    assert result == {"smtp": False, "webhook": False}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert "over smtp FAILED" in errors[0] and "over webhook FAILED" in errors[1] and "no_such_conn_here" in errors[1]
    assert all("HALTED: slice 2025/06/01" in e and "cust-000/inv-0" in e for e in errors)


def test_notifier_as_an_airflow_callback_never_raises(plugin: Any, caplog: pytest.LogCaptureFixture) -> None:
    notifier = plugin.CosmosArchiveNotifier(_halt(), channel="webhook", conn_id="no_such_conn_either")
    with caplog.at_level(logging.ERROR, logger="include.cosmos_archiver.reporting.notifications"):
        notifier(_context())  # BaseNotifier.__call__: renders templates, then notify()
    assert notifier.delivered is False and "no_such_conn_either" in caplog.text


def test_success_is_sent_only_when_on_success_is_set(plugin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_COSMOS_ARCHIVE_NOTIFY", json.dumps({"channels": ["webhook"]}))
    assert plugin.notify_success(_context(), slices_verified=1, records=2) is None  # on_success off: nothing sent
    monkeypatch.setenv(
        "AIRFLOW_VAR_COSMOS_ARCHIVE_NOTIFY",
        json.dumps({"channels": ["webhook"], "webhook_conn_id": "no_success_conn", "on_success": True}),
    )
    assert plugin.notify_success(_context(), slices_verified=1, records=2) == {"webhook": False}  # tried, failed


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")
def test_library_has_no_airflow_import() -> None:
    import subprocess

    code = (
        "import sys; import include.cosmos_archiver.reporting.notifications; "
        "import include.cosmos_archiver.reporting.run_report; "
        "sys.exit(any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(PLUGINS.parent)}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


def test_a_malformed_result_still_notifies_with_the_plain_reason(
    plugin: Any, hook_server: tuple[str, type[_Hook]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, handler = hook_server
    _conn(monkeypatch, "archive_hook_plain", conn_type="http", host=f"{base}/plain")
    config = NotifyConfig(channels=("webhook",), webhook_conn_id="archive_hook_plain", timeout_s=5)
    result = plugin.notify_halt(
        _context(),
        slice_id="2025/06/03",
        reason="3 differing: a/1",
        validation={"bad_files": ["not-a-dict"]},
        config=config,
    )
    assert result == {"webhook": True}
    data = json.loads(handler.received[0][2])
    assert data["slice_id"] == "2025/06/03" and "3 differing: a/1" in data["text"]
