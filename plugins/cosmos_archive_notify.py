"""Airflow notifiers for cosmos-archive: tell the operator once when the archive halts (and, optionally, when a
run succeeds), by webhook and/or e-mail, configured in the ``cosmos_archive_notify`` Variable.

- webhook: HTTP POST of JSON to the URL of an Airflow connection (default ``cosmos_archive_webhook``): ``host``
  is the full URL (or ``schema`` + ``host`` + ``port``, with the path in extra ``endpoint``); extra ``headers``
  is sent as is; a ``password`` becomes ``Authorization: Bearer <password>``.
- smtp: the SMTP provider's SmtpNotifier over an smtp connection (default ``smtp_default``) to ``to``.

Delivery never raises: a failing channel is logged at ERROR together with the full message, and the run goes on.

The DAG calls ``notify_halt(ctx, slice_id=..., reason=..., ...)`` from the task that sets Halted, and
``notify_success(ctx, slices_verified=..., records=...)`` from the run's last task (only sent if ``on_success``).
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import BaseHook, BaseNotifier, Variable
from cosmos_archive_runtime import connection_exists

from include.cosmos_archiver.reporting.notifications import (
    Notice,
    NotifyConfig,
    NotifyConfigError,
    attention_notice,
    deliver,
    deliver_all,
    halt_notice,
    send_webhook,
    success_notice,
)

NOTIFY_VARIABLE = "cosmos_archive_notify"
log = logging.getLogger(__name__)


def load_notify_config() -> NotifyConfig:
    """The Variable's settings; without the Variable, the webhook channel if its connection exists.

    A bad Variable is logged and treated as "no channel": a notification setting must not stop the archive.
    """
    try:
        raw = Variable.get(NOTIFY_VARIABLE, default=None)
        if raw is None:
            return NotifyConfig(channels=("webhook",) if connection_exists(NotifyConfig.webhook_conn_id) else ())
        values = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(values, dict):
            raise NotifyConfigError(f"the value must be a JSON object, got {type(values).__name__}")
        return NotifyConfig.from_mapping(values)
    except (NotifyConfigError, json.JSONDecodeError) as exc:
        log.error(
            "Variable %s is invalid (%s): no notification channel is used until it is fixed in Admin > Variables",
            NOTIFY_VARIABLE,
            exc,
        )
        return NotifyConfig()


def webhook_target(conn_id: str) -> tuple[str, dict[str, str]]:
    """(URL, headers) from an Airflow connection."""
    conn = BaseHook.get_connection(conn_id)
    extra: Mapping[str, Any] = conn.extra_dejson or {}
    host = (conn.host or "").strip()
    if not host:
        raise NotifyConfigError(f"connection {conn_id!r} has no host: put the webhook URL in its Host field")
    port = f":{conn.port}" if conn.port else ""
    url = host if "://" in host else f"{conn.schema or 'https'}://{host}{port}"
    endpoint = str(extra.get("endpoint") or "")
    if endpoint:
        url = url.rstrip("/") + "/" + endpoint.lstrip("/")
    headers = {str(k): str(v) for k, v in dict(extra.get("headers") or {}).items()}
    if conn.password and "Authorization" not in headers:
        headers["Authorization"] = f"Bearer {conn.password}"
    return url, headers


class CosmosArchiveNotifier(BaseNotifier):
    """Send one cosmos-archive Notice over one channel ("webhook" or "smtp"); never raises."""

    template_fields = ("conn_id", "to", "from_email")

    def __init__(
        self,
        notice: Notice,
        *,
        channel: str,
        conn_id: str,
        to: list[str] | tuple[str, ...] = (),
        from_email: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        super().__init__()
        if channel not in ("webhook", "smtp"):
            raise NotifyConfigError(f"channel={channel!r} must be 'webhook' or 'smtp'")
        self.notice = notice
        self.channel = channel
        self.conn_id = conn_id
        self.to = list(to)
        self.from_email = from_email
        self.timeout_s = timeout_s
        self.delivered: bool | None = None

    def notify(self, context: Any) -> None:
        self.delivered = deliver(self.notice, self.channel, lambda: self.send_now(context))

    def send_now(self, context: Any) -> None:
        """Send, raising on failure (``notify`` is the never-raising form)."""
        if self.channel == "webhook":
            url, headers = webhook_target(self.conn_id)
            send_webhook(url, self.notice, timeout_s=self.timeout_s, headers=headers)
            return
        body = f'<pre style="font-family: monospace">{html.escape(self.notice.text)}</pre>'
        SmtpNotifier(
            to=self.to,
            from_email=self.from_email,
            subject=self.notice.subject,
            html_content=body,
            smtp_conn_id=self.conn_id,
        ).notify(context)


def notifiers(notice: Notice, config: NotifyConfig) -> list[CosmosArchiveNotifier]:
    result = []
    for channel in config.channels:
        conn_id = config.webhook_conn_id if channel == "webhook" else config.smtp_conn_id
        result.append(
            CosmosArchiveNotifier(
                notice,
                channel=channel,
                conn_id=conn_id,
                to=config.to,
                from_email=config.from_email,
                timeout_s=config.timeout_s,
            )
        )
    return result


def send(notice: Notice, context: Any, config: NotifyConfig | None = None) -> dict[str, bool]:
    """Deliver ``notice`` over every configured channel; returns {channel: delivered}. Never raises."""
    try:
        config = config or load_notify_config()
        chosen = notifiers(notice, config)
    except Exception as exc:  # configuration lookups must not block the run either
        log.error("cannot read the notification settings (%s: %s)", exc.__class__.__name__, exc)
        chosen = []
    senders: list[tuple[str, Callable[[], object]]] = [(n.channel, lambda n=n: n.send_now(context)) for n in chosen]
    return deliver_all(notice, senders)


def notify_halt(
    context: Any, *, slice_id: str, reason: str, config: NotifyConfig | None = None, **details: Any
) -> dict[str, bool]:
    """Tell the operator the archive halted at ``slice_id``. Call it once, from the task that sets Halted.

    ``details``: halt_notice's optional fields (validation, slice_start, slice_end, attempts, manifest_path,
    report_url). Never raises: if even the message cannot be built from what it was given, a plain one is sent
    instead."""
    try:
        dag_run = context.get("dag_run")
        ti = context.get("ti") or context.get("task_instance")
        notice = halt_notice(
            dag_id=str(getattr(dag_run, "dag_id", None) or getattr(ti, "dag_id", None) or "cosmos_archive"),
            run_id=str(context.get("run_id") or getattr(dag_run, "run_id", "?")),
            slice_id=slice_id,
            reason=reason,
            log_url=getattr(ti, "log_url", None),
            **details,
        )
    except Exception as exc:
        log.error("could not build the full halt message (%s: %s); sending the plain reason", type(exc).__name__, exc)
        notice = halt_notice(
            dag_id="cosmos_archive", run_id=str(context.get("run_id", "?")), slice_id=slice_id, reason=str(reason)
        )
    return send(notice, context, config)


def notify_attention(context: Any, *, topic: str, text: str, payload: dict[str, Any] | None = None
                     ) -> dict[str, bool]:
    """Tell the operator about something to look at that did not stop the run (census, scrub). Never raises."""
    dag_run = context.get("dag_run")
    notice = attention_notice(dag_id=str(getattr(dag_run, "dag_id", "cosmos_archive")),
                              run_id=str(context.get("run_id") or getattr(dag_run, "run_id", "?")),
                              topic=topic, text=text, payload=payload)
    return send(notice, context)


def notify_success(
    context: Any, *, slices_verified: int, records: int, report_url: str | None = None
) -> dict[str, bool] | None:
    """Send the success message if ``on_success`` is set; called by the run's last task. Never raises."""
    try:
        config = load_notify_config()
    except Exception as exc:
        log.error("cannot read the notification settings (%s: %s)", exc.__class__.__name__, exc)
        return None
    if not config.on_success:
        return None
    dag_run = context.get("dag_run")
    notice = success_notice(
        dag_id=str(getattr(dag_run, "dag_id", "cosmos_archive")),
        run_id=str(context.get("run_id") or getattr(dag_run, "run_id", "?")),
        slices_verified=slices_verified,
        records=records,
        report_url=report_url,
    )
    return send(notice, context, config)

