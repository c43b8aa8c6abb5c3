"""The run report: per-slice numbers and hash results in escaped, self-contained HTML, a real PNG, and blobs
written next to the manifests (real cosmosdb-server + Azurite on free loopback ports)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.cosmos import PartitionKey
from azure.storage.blob import BlobServiceClient

from devstack.seed import SeedSpec, make_record, seed_container
from devstack.stack import EMULATOR_COSMOS_KEY, StackConfig, free_port, running_stack
from include.cosmos_archiver.archive.manifest import FileEntry, Manifest
from include.cosmos_archiver.archive.store import ArchiveStore
from include.cosmos_archiver.clients import cosmos_client
from include.cosmos_archiver.pipeline.copy import copy_slice
from include.cosmos_archiver.pipeline.validate import validate_slice
from include.cosmos_archiver.reporting.run_report import RunReportError, build_run_report
from include.cosmos_archiver.settings import ArchiveSettings
from include.cosmos_archiver.slices import TimeSlice

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
END = dt.datetime(2026, 1, 31, tzinfo=dt.UTC)


def _manifest(
    slice_id: str,
    *,
    records: int,
    record_bytes: int,
    ru: float,
    seconds: float,
    status: str = "copied",
    file_bytes: int = 1000,
) -> Manifest:
    return Manifest(
        slice_id=slice_id,
        slice_start=f"{slice_id.replace('/', '-')}T00:00:00+00:00",
        slice_end=f"{slice_id.replace('/', '-')}T23:59:59+00:00",
        timestamp_field="_ts",
        source={"database": "billing", "container": "records"},
        status=status,  # type: ignore[arg-type]
        record_count=records,
        record_bytes=record_bytes,
        slice_digest="ab" * 32,
        ru_charged=ru,
        throttled_requests=2,
        files=[FileEntry(f"records/{slice_id}/part-00000.parquet", "cd" * 32, file_bytes, records)],
        records=[],
        timings_s={"total": seconds},
        copied_at="2026-01-01T00:00:00+00:00",
        tool_version="test",
    )


def _png_ok(png: bytes | None) -> None:
    assert png is not None and png.startswith(PNG_MAGIC)
    assert len(png) > 5000  # a rendered chart, not an empty canvas


def test_report_lists_every_slice_with_its_numbers_and_escapes_values() -> None:
    manifests = [
        _manifest("2025/01/01", records=1234, record_bytes=370_200_000, ru=370_200.5, seconds=61.5),
        _manifest("2025/01/02", records=77, record_bytes=23_100_000, ru=23_111.0, seconds=9.25),
        _manifest("2025/01/03", records=5, record_bytes=1_500_000, ru=1_499.0, seconds=1.0),
    ]
    validations = [
        {
            "slice_id": "2025/01/01",
            "ok": True,
            "source_count": 1234,
            "sink_count": 1234,
            "ru_charged": 370_000.0,
            "seconds": 30.0,
        },
        {
            "slice_id": "2025/01/02",
            "ok": False,
            "source_count": 77,
            "sink_count": 76,
            "ru_charged": 23_000.0,
            "seconds": 5.0,
            "missing": ["cust-1/<script>alert(1)</script>"],
            "differing": [f"cust-2/inv-{i}" for i in range(30)],
            "extra": [],
            "bad_files": [],
        },
    ]
    usage = [(dt.datetime(2026, 1, 1, 0, m, tzinfo=dt.UTC), 2500.0 + 30 * m) for m in range(30)]
    report = build_run_report(
        "manual__2026-01-01T00:00:00+00:00",
        manifests,
        validations,
        usage,
        4000.0,
        5000.0,
        remaining_slices=10,
        rate_ru_per_s=1500.0,
    )

    page = report.html
    for m in manifests:
        assert html.escape(m.slice_id) in page
        assert f"{m.record_count:,}" in page
        assert f"{m.ru_charged:,.1f}" in page
        assert f"{m.timings_s['total']:.3f}" in page
    assert "370.20 MB" in page and "23.10 MB" in page
    # Hash results: verified, failed (with the named records), and not validated yet.
    assert page.count('<td class="l">verified</td>') == 1
    assert page.count('<td class="l">FAILED</td>') == 1
    assert page.count('<td class="l">not validated</td>') == 1
    assert "cust-2/inv-0" in page and "(+10 more)" in page  # 30 differing ids, 20 shown
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # Self-contained: the plot is embedded, nothing is fetched from elsewhere.
    embedded = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert embedded is not None and base64.b64decode(embedded.group(1)) == report.png
    assert "http://" not in page and "https://" not in page
    _png_ok(report.png)

    t = report.totals
    assert (t.slices, t.records, t.verified, t.failed, t.not_validated) == (3, 1316, 1, 1, 1)
    assert t.record_bytes == 394_800_000
    assert t.ru == pytest.approx(370_200.5 + 23_111.0 + 1_499.0 + 370_000.0 + 23_000.0)
    assert t.seconds == pytest.approx(61.5 + 9.25 + 1.0 + 30.0 + 5.0)
    # ETA: 10 slices x the average RU per slice so far, at 1500 RU/s.
    assert t.eta_s == pytest.approx(10 * (t.ru / 3) / 1500.0, abs=0.1)
    assert "Peak RU/s seen" in page and "3,370.0" in page


def test_without_usage_samples_a_per_slice_bar_chart_is_drawn() -> None:
    manifests = [
        _manifest(f"2025/02/{d:02d}", records=d, record_bytes=d * 300_000, ru=d * 300.0, seconds=d) for d in range(1, 6)
    ]
    report = build_run_report("r1", manifests, [], None, None, None, remaining_slices=5)
    _png_ok(report.png)
    assert "RU ceiling" in report.html and "not given" in report.html
    # No RU rate: the ETA follows the seconds per slice seen so far.
    assert report.totals.eta_s == pytest.approx(5 * 15 / 5)
    assert report.totals.remaining_slices == 5


def test_bad_input_is_named() -> None:
    with pytest.raises(RunReportError, match="ceiling_ru_per_s=0"):
        build_run_report("r", [], [], None, 0, 5000.0)
    with pytest.raises(RunReportError, match="run_id=''"):
        build_run_report("", [], [], None, None, None)
    with pytest.raises(RunReportError, match="remaining_slices=-1"):
        build_run_report("r", [], [], None, None, None, remaining_slices=-1)


def test_write_local(tmp_path: Path) -> None:
    report = build_run_report(
        "r2", [_manifest("2025/03/01", records=1, record_bytes=10, ru=1.0, seconds=0.1)], [], None, None, None
    )
    paths = report.write_local(tmp_path / "out")
    assert [p.name for p in paths] == ["report.html", "ru.png"]
    assert paths[0].read_text(encoding="utf-8") == report.html
    assert paths[1].read_bytes() == report.png


@dataclass
class Stack:
    store: ArchiveStore
    container: object
    settings: ArchiveSettings


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    config = StackConfig(
        state_dir=tmp_path_factory.mktemp("report-stack"), cosmos_port=free_port(), blob_port=free_port()
    )
    with running_stack(config):
        settings = ArchiveSettings(
            timestamp_field="archiveTs", timestamp_kind="epoch_seconds", partition_key_path="/customerId"
        )
        db = cosmos_client(config.cosmos_endpoint, EMULATOR_COSMOS_KEY).create_database_if_not_exists("billing")
        container = db.create_container_if_not_exists("records", PartitionKey("/customerId"))
        seed_container(container, SeedSpec(records=24, target_kb=4, months_back=1, end=END), workers=4)
        blobs = BlobServiceClient.from_connection_string(config.blob_connection_string)
        archive = blobs.get_container_client("billing-archive")
        archive.create_container()
        yield Stack(ArchiveStore(archive, "records"), container, settings)


def test_report_from_real_copies_is_written_next_to_the_manifests(stack: Stack) -> None:
    start = END - dt.timedelta(days=32)
    slices = [TimeSlice(start, start + dt.timedelta(days=16)), TimeSlice(start + dt.timedelta(days=16), END)]
    manifests = [copy_slice(stack.container, stack.store, s, stack.settings) for s in slices]  # type: ignore[arg-type]
    assert all(m.record_count > 0 for m in manifests) and sum(m.record_count for m in manifests) == 24
    # Delete one archived record from the source after its copy (the archive then holds a record Cosmos DB no longer
    # has): the second slice must fail validation. (A record merely changed since its copy is not a failure.)
    victim = next(
        i
        for i in range(24)
        if slices[1].start.timestamp()
        <= make_record(SeedSpec(records=24, target_kb=4, months_back=1, end=END), i, END)["archiveTs"]
        < END.timestamp()
    )
    doc = make_record(SeedSpec(records=24, target_kb=4, months_back=1, end=END), victim, END)
    stack.container.delete_item(doc["id"], partition_key=doc["customerId"])  # type: ignore[attr-defined]
    results = [validate_slice(stack.container, stack.store, s, stack.settings) for s in slices]  # type: ignore[arg-type]
    assert [r.ok for r in results] == [True, False]
    manifests = [stack.store.read_manifest(s.slice_id) for s in slices]  # type: ignore[misc]

    report = build_run_report(
        "scheduled__2026-01-31T00:00:00+00:00",
        manifests,  # type: ignore[arg-type]
        [r.to_dict() for r in results],
        None,
        4000.0,
        5000.0,
    )
    for m in manifests:
        assert m is not None
        assert html.escape(m.slice_id) in report.html and f"{m.ru_charged:,.1f}" in report.html
        assert f"<td>{m.record_count:,}</td>" in report.html
    assert f"{doc['customerId']}/{doc['id']}" in report.html  # the differing record is named
    assert report.totals.verified == 1 and report.totals.failed == 1
    assert report.totals.ru > 0

    urls = report.write(stack.store)
    assert [u.rsplit("/", 1)[1] for u in urls] == ["report.html", "ru.png"]
    assert "/records/_reports/scheduled__2026-01-31T00%3A00%3A00%2B00%3A00/" in urls[0]
    directory = "records/_reports/scheduled__2026-01-31T00:00:00+00:00"
    assert stack.store.download(f"{directory}/report.html").decode() == report.html
    assert stack.store.download(f"{directory}/ru.png") == report.png
    props = stack.store.container.get_blob_client(f"{directory}/report.html").get_blob_properties()
    assert props.content_settings.content_type == "text/html; charset=utf-8"
