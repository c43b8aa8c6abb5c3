"""Operator notifications: what to say when the archive halts (or finishes), and delivery that never blocks a run.

The message names the DAG run, the slice, which records are missing/extra/differing (20 per kind in the text, 100
in the webhook JSON, with the full counts) and how to clear the Halted status. Delivery goes through ``deliver``: if a
channel fails, the error and the full message are logged at ERROR and nothing is raised, so a broken mail server
or webhook can never stop the archive from recording its own state. Webhook URLs often embed a secret token, so
they are logged with the path and query redacted. No Airflow import: the Airflow side is
plugins/cosmos_archive_notify.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from include.cosmos_archiver.errors import TerminalError, TransientError
from include.cosmos_archiver.id_lists import IDS_NAMED, name_ids
from include.cosmos_archiver.pipeline.run_status import CLEAR_HINT

log = logging.getLogger(__name__)

SOURCE = "cosmos-archive"
IDS_IN_PAYLOAD = 100  # and in the webhook's JSON
MAX_TEXT_CHARS = 20_000
CHANNELS = ("webhook", "smtp")
DEFAULT_WEBHOOK_CONN_ID = "cosmos_archive_webhook"
DEFAULT_SMTP_CONN_ID = "smtp_default"


class NotifyConfigError(TerminalError, ValueError):
    """A notification setting is invalid; the message names it."""


class DeliveryError(TransientError, RuntimeError):
    """A channel could not deliver; the message is safe to log (no secret URL parts)."""


@dataclass(frozen=True)
class Notice:
    event: str  # "halted", "succeeded" or "attention" (records left out, a damaged archive)
    subject: str
    text: str
    payload: dict[str, Any] = field(default_factory=dict)

    def webhook_body(self) -> dict[str, Any]:
        """The JSON posted to a webhook: ``text`` (what chat webhooks display) plus structured fields."""
        return {
            "source": SOURCE,
            "event": self.event,
            "subject": self.subject,
            "text": f"{self.subject}\n\n{self.text}",
            **self.payload,
        }


@dataclass(frozen=True)
class NotifyConfig:
    """Which channels to use. From the JSON of an Airflow Variable, e.g.
    ``{"channels": ["webhook", "smtp"], "to": ["billing-ops@example.com"], "on_success": false}``."""

    channels: tuple[str, ...] = ()
    webhook_conn_id: str = DEFAULT_WEBHOOK_CONN_ID
    smtp_conn_id: str = DEFAULT_SMTP_CONN_ID
    to: tuple[str, ...] = ()
    from_email: str | None = None
    on_success: bool = False
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        unknown = [c for c in self.channels if c not in CHANNELS]
        if unknown:
            raise NotifyConfigError(f"channels={list(self.channels)!r}: {unknown} unknown; use any of {list(CHANNELS)}")
        if "smtp" in self.channels and not self.to:
            raise NotifyConfigError('channel "smtp" needs recipients: set "to" to a list of e-mail addresses')
        bad = [a for a in self.to if "@" not in a]
        if bad:
            raise NotifyConfigError(f"to={list(self.to)!r}: {bad} are not e-mail addresses")
        if not self.timeout_s > 0:
            raise NotifyConfigError(f"timeout_s={self.timeout_s!r} must be a positive number of seconds")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> NotifyConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise NotifyConfigError(f"unknown notification setting(s) {unknown}; known settings are {sorted(known)}")
        data = dict(values)
        for key in ("channels", "to"):
            if key in data:
                value = data[key]
                if isinstance(value, str):
                    value = [v.strip() for v in value.split(",") if v.strip()]
                if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                    raise NotifyConfigError(f"{key}={data[key]!r} must be a list of strings")
                data[key] = tuple(value)
        if "on_success" in data and not isinstance(data["on_success"], bool):
            raise NotifyConfigError(f"on_success={data['on_success']!r} must be true or false")
        if "timeout_s" in data:
            try:
                data["timeout_s"] = float(data["timeout_s"])
            except (TypeError, ValueError):
                raise NotifyConfigError(f"timeout_s={data['timeout_s']!r} must be a number of seconds") from None
        return cls(**data)


def _ids(label: str, ids: Sequence[str]) -> str:
    return f"{len(ids)} {label}: {name_ids(ids)}"


def _cap(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 80] + "\n… (message truncated; the task log and the slice's manifest have everything)"


def halt_notice(
    *,
    dag_id: str,
    run_id: str,
    slice_id: str,
    reason: str,
    validation: Mapping[str, Any] | None = None,
    slice_start: str | None = None,
    slice_end: str | None = None,
    attempts: int | None = None,
    manifest_path: str | None = None,
    report_url: str | None = None,
    log_url: str | None = None,
) -> Notice:
    """The message for a persistent validation failure that halted the archive.

    ``validation`` is ValidationResult.to_dict() when available (it names every record); otherwise ``reason``
    (ValidationResult.message(), which already names up to IDS_NAMED records per category) is quoted.
    """
    subject = f"[{SOURCE}] HALTED: slice {slice_id} failed validation (DAG {dag_id}, run {run_id})"
    lines = [
        "The archive is HALTED: a slice failed for good. No newer slice of any run starts its copy or purge, and",
        "later runs start nothing, until an operator clears the status. The reason below says which case it is,",
        "what to do, and what this run archived and purged before the halt.",
        "",
        f"DAG:    {dag_id}",
        f"Run:    {run_id}",
        f"Slice:  {slice_id}" + (f"  [{slice_start} .. {slice_end})" if slice_start and slice_end else ""),
    ]
    if attempts is not None:
        lines.append(f"Tries:  {attempts} copy + validate attempts")
    payload: dict[str, Any] = {
        "dag_id": dag_id,
        "run_id": run_id,
        "slice_id": slice_id,
        "slice_start": slice_start,
        "slice_end": slice_end,
        "attempts": attempts,
        "reason": _cap(reason, 4000),
        "how_to_resume": CLEAR_HINT,
        "report_url": report_url,
        "log_url": log_url,
        "manifest_path": manifest_path,
    }
    truncated = False
    if validation is not None:
        lines.append(
            f"Counts: source {validation.get('source_count', '?')} records, "
            f"archive {validation.get('sink_count', '?')} records"
        )
        lines += ["", "What differs:"]
        counts: dict[str, int] = {}
        records: dict[str, list[str]] = {}
        for key, label in (
            ("missing", "missing from the archive"),
            ("extra", "extra in the archive"),
            ("differing", "differing from the source"),
        ):
            ids = [str(i) for i in validation.get(key) or []]
            counts[key] = len(ids)
            records[key] = ids[:IDS_IN_PAYLOAD]
            truncated = truncated or len(ids) > IDS_IN_PAYLOAD
            if ids:
                lines.append("  " + _ids(label, ids))
        bad_files = list(validation.get("bad_files") or [])
        counts["bad_files"] = len(bad_files)
        for bad in bad_files[:IDS_NAMED]:
            lines.append(
                f"  damaged file {bad.get('path')}: {bad.get('reason')} "
                f"({len(bad.get('records') or [])} records cannot be checked)"
            )
        if len(bad_files) > IDS_NAMED:
            lines.append(f"  … (+{len(bad_files) - IDS_NAMED} more damaged files)")
        payload.update(
            counts=counts,
            records=records,
            bad_files=[{"path": b.get("path"), "reason": b.get("reason")} for b in bad_files[:IDS_IN_PAYLOAD]],
        )
    lines += ["", "Reason, case and remedy:", "  " + _cap(reason, 4000)]
    payload["truncated"] = truncated
    lines += [
        "",
        "What to do:",
        "  1. Read the validate task's log for this slice"
        + (f" ({log_url})" if log_url else "")
        + " and the slice's manifest"
        + (f" {manifest_path}" if manifest_path else "")
        + " (status 'failed').",
        "  2. Act on the case the reason names: records changed in Cosmos DB need nothing (copied again); a damaged",
        "     archive not purged yet is copied again from Cosmos DB automatically; a damaged archive of a PURGED",
        "     slice is repaired from its replica (the scrub does it) or its records at risk are restored by hand.",
        f"  3. Clear the Halted status: {CLEAR_HINT}.",
        "  4. The next run (or one you trigger) re-plans every slice that is not verified yet, starting with this one.",
    ]
    if report_url:
        lines += ["", f"Run report: {report_url}"]
    return Notice("halted", subject, _cap("\n".join(lines)), payload)


def success_notice(
    *,
    dag_id: str,
    run_id: str,
    slices_verified: int | None = None,
    records: int | None = None,
    report_url: str | None = None,
) -> Notice:
    subject = f"[{SOURCE}] run {run_id} of {dag_id} succeeded"
    lines = [f"DAG {dag_id}, run {run_id}: every planned slice was archived and verified."]
    if slices_verified is not None:
        lines.append(f"Slices verified: {slices_verified}")
    if records is not None:
        lines.append(f"Records archived: {records:,}")
    if report_url:
        lines.append(f"Run report: {report_url}")
    payload = {
        "dag_id": dag_id,
        "run_id": run_id,
        "slices_verified": slices_verified,
        "records": records,
        "report_url": report_url,
    }
    return Notice("succeeded", subject, "\n".join(lines), payload)


def attention_notice(*, dag_id: str, run_id: str, topic: str, text: str,
                     payload: dict[str, Any] | None = None) -> Notice:
    """Something an operator must look at that did not stop the run: documents the archive leaves out (census),
    archived files that no longer match their manifest (scrub)."""
    subject = f"[{SOURCE}] {topic} (run {run_id} of {dag_id})"
    return Notice("attention", subject, _cap(text), {"dag_id": dag_id, "run_id": run_id, "topic": topic,
                                                      **(payload or {})})


def redact_url(url: str) -> str:
    """scheme://host[:port]/… — enough to find the endpoint, without a token that may sit in the path or query."""
    parts = urlsplit(url)
    hidden = "/…" if (parts.path not in ("", "/") or parts.query) else parts.path
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{hidden}"


def send_webhook(
    url: str, notice: Notice, *, timeout_s: float = 10.0, headers: Mapping[str, str] | None = None
) -> None:
    """POST the notice as JSON; raise DeliveryError (with the URL redacted) unless the answer is 2xx."""
    safe = redact_url(url)
    try:
        response = requests.post(url, json=notice.webhook_body(), headers=dict(headers or {}), timeout=timeout_s)
    except requests.RequestException as exc:
        detail = str(exc)
        parts = urlsplit(url)
        for secret in (url, parts.path + (f"?{parts.query}" if parts.query else ""), parts.path):
            if secret not in ("", "/"):
                detail = detail.replace(secret, "/…")
        raise DeliveryError(f"POST {safe} failed: {exc.__class__.__name__}: {detail}") from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"POST {safe} answered HTTP {response.status_code}: {response.text[:300]!r}")


def deliver(notice: Notice, channel: str, send: Callable[[], object]) -> bool:
    """Run one channel's ``send``; on any error log it with the full message and return False (never raise)."""
    try:
        send()
    except Exception as exc:  # a notification must never block the run: log everything, carry on
        log.error(
            "%s notification over %s FAILED (%s: %s); the run continues. The undelivered message:\nSubject: %s\n%s",
            SOURCE,
            channel,
            exc.__class__.__name__,
            exc,
            notice.subject,
            notice.text,
        )
        return False
    log.info("%s notification sent over %s: %s", SOURCE, channel, notice.subject)
    return True


def deliver_all(notice: Notice, senders: Sequence[tuple[str, Callable[[], object]]]) -> dict[str, bool]:
    """Deliver over every configured channel; with none configured, the message goes to the log at ERROR."""
    if not senders:
        log.error(
            "%s: no notification channel is configured (set the cosmos_archive_notify Variable); the message:\n"
            "Subject: %s\n%s",
            SOURCE,
            notice.subject,
            notice.text,
        )
        return {}
    return {name: deliver(notice, name, send) for name, send in senders}
