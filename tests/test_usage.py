"""RU usage from the real azure-monitor-querymetrics MetricsClient against the local RU gateway, and the
adaptive controller reacting to it (real cosmosdb-server + gateway on free loopback ports)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devstack.business_load import LoadMix, LoadTrace, run_business_load
from devstack.ru_gateway import GatewaySettings
from devstack.ru_lab import RuLab, ru_lab
from include.cosmos_archiver.cli.main import main
from include.cosmos_archiver.loopback import StaticTokenCredential
from include.cosmos_archiver.planning.capacity import survey_container
from include.cosmos_archiver.ru.adaptive_budget import AdaptiveBudget
from include.cosmos_archiver.ru.quiet_gate import assess_quiet, check_quiet
from include.cosmos_archiver.ru.settings import RateControlSettings
from include.cosmos_archiver.ru.usage import AzureMonitorUsageSource, UsageConfigError, UsageSample

PROVISIONED = 1000.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuLab]:
    settings = GatewaySettings(provisioned_ru=PROVISIONED, reporting_delay_s=2.0)
    with ru_lab(tmp_path_factory.mktemp("usage-lab"), settings=settings, docs=16, doc_kb=20) as lab:
        yield lab


def _business_reads(lab: RuLab, seconds: float, per_s: float) -> None:
    """Business traffic (user agent without "cosmos-archive") at about `per_s` point reads per second."""
    container = lab.container_proxy(user_agent="billing-app")
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        doc, pk = lab.doc_keys[n % len(lab.doc_keys)]
        container.read_item(doc, partition_key=pk)
        n += 1
        time.sleep(max(0.0, 1.0 / per_s - 0.01))


def _spike(lab: RuLab, fraction: float, seconds: float) -> None:
    run_business_load(
        lab.endpoint,
        lab.key,
        lab.database,
        lab.container,
        LoadTrace.constant(fraction),
        seconds,
        provisioned_ru=PROVISIONED,
        workers=4,
        mix=LoadMix(read=1, query=0, write=0),
    )


def test_usage_source_reads_metrics_client_and_treats_lagging_grains_as_unknown(lab: RuLab) -> None:
    _business_reads(lab, 3.0, 8)
    source = lab.usage_source(lagging_grains=0)
    asked = datetime.now(UTC)
    samples = source.recent(timedelta(seconds=10))
    answered = datetime.now(UTC)
    stats = lab.gateway.stats(15)["per_second"]
    truth = {row["second"]: row["business"]["ru"] + row["archiver"]["ru"] for row in stats}
    # The gateway publishes with a 2 s delay: the newest seconds come back as bare timestamps -> unknown.
    delay = timedelta(seconds=2)
    unpublished = [s for s in samples if s.end > answered - delay]
    assert len(unpublished) >= 2 and all(not s.known for s in unpublished)
    published = [s for s in samples if s.end <= asked - delay]
    assert published and all(s.known for s in published), "older seconds must be published"
    known = [s for s in samples if s.known]
    busy = [s for s in known if s.total_ru_per_s]
    assert busy, "the business reads must show up"
    for s in busy:
        assert s.total_ru_per_s == pytest.approx(truth[int(s.timestamp.timestamp())], abs=2.5)  # metadata excluded
        assert s.usage_fraction(PROVISIONED) == pytest.approx(s.normalized_pct / 100, abs=0.01)
    # With lagging_grains=2 the newest two grains are unknown even when the server already has a value for them.
    lab.gateway.update_settings(reporting_delay_s=0.0)
    try:
        _business_reads(lab, 1.0, 8)
        strict = lab.usage_source(lagging_grains=2).recent(timedelta(seconds=5))
        assert [s.known for s in strict[-2:]] == [False, False]
        assert any(s.known for s in strict[:-2])
    finally:
        lab.gateway.update_settings(reporting_delay_s=2.0)


def test_minute_grain_newest_minutes_unknown_not_idle(lab: RuLab) -> None:
    source = lab.usage_source(grain=timedelta(minutes=1), lagging_grains=2)
    samples = source.recent(timedelta(minutes=5))
    assert len(samples) >= 3
    assert not samples[-1].known and not samples[-2].known  # current and previous minute: unknown
    # The gate judges only published minutes: the unknown ones are neither busy nor idle.
    verdict = assess_quiet(samples, provisioned_ru_s=PROVISIONED, threshold=0.5, window=timedelta(minutes=20))
    assert not verdict.quiet and verdict.known_s == 60 * sum(s.known for s in samples)
    assert "window has known usage" in verdict.reason
    only_unknown = assess_quiet(samples[-2:], provisioned_ru_s=PROVISIONED, threshold=0.5, window=timedelta(minutes=1))
    assert not only_unknown.quiet and "no usage metrics known" in only_unknown.reason


def test_bad_usage_settings_are_named() -> None:
    with pytest.raises(UsageConfigError, match="resource id 'cosmos' is not an ARM id"):
        AzureMonitorUsageSource(
            "https://eastus.metrics.monitor.azure.com", "cosmos", credential=StaticTokenCredential()
        )
    with pytest.raises(UsageConfigError, match="lagging_grains=-1"):
        AzureMonitorUsageSource(
            "https://x", "/subscriptions/s/x", credential=StaticTokenCredential(), lagging_grains=-1
        )
    sample = [UsageSample(datetime.now(UTC), 1, 10, 1)]
    with pytest.raises(UsageConfigError, match=r"threshold 1.5 must be in \(0, 1\]"):
        assess_quiet(sample, provisioned_ru_s=1000, threshold=1.5, window=timedelta(seconds=1))


def test_controller_backs_off_within_one_interval_of_a_spike_and_a_429(lab: RuLab, tmp_path: Path) -> None:
    """A live spike seen through the MetricsClient stops the archiver within one control interval after the
    metrics publish it; a 429 from the gateway halves its rate at once."""
    lab.gateway.update_settings(reporting_delay_s=1.0)
    settings = RateControlSettings(
        provisioned_ru_s=PROVISIONED, control_interval_s=0.5, usage_poll_s=0.5, stale_after_s=4
    )
    budget = AdaptiveBudget(settings, lab.usage_source(lagging_grains=0))
    archiver = lab.container_proxy(**settings.client_kwargs())
    stop = threading.Event()
    rates: list[tuple[float, float]] = []

    def archive() -> None:
        n = 0
        while not stop.is_set():
            doc, pk = lab.doc_keys[n % len(lab.doc_keys)]
            budget.before_request(20)
            archiver.read_item(doc, partition_key=pk)
            budget.after_request(float(archiver.client_connection.last_response_headers["x-ms-request-charge"]), False)
            rates.append((time.monotonic(), budget.state.rate_ru_s))
            n += 1

    reader = threading.Thread(target=archive, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and (budget.available_ru_per_s() < 600 or not budget.measured_ru_per_request):
            time.sleep(0.2)
        assert budget.available_ru_per_s() > 600  # idle business: the archiver may use most of the 80 %
        assert budget.measured_ru_per_request == pytest.approx(20, rel=0.1)  # measured, not assumed
        spike = threading.Thread(target=_spike, args=(lab, 0.85, 6.0), daemon=True)
        spike.start()
        # Ground truth: the first whole second in which the gateway counted >= 70 % business load.
        busy_second = None
        while busy_second is None and spike.is_alive():
            time.sleep(0.1)
            rows = lab.gateway.stats(4)["per_second"][:-1]
            busy_second = next((r["second"] for r in rows if r["business"]["ru"] >= 0.7 * PROVISIONED), None)
        assert busy_second is not None, "the business spike never reached 70 %"
        # Published 1 s after that second ends; then at most one poll + one control interval (+ scheduling slack).
        limit = busy_second + 1 + 1.0 + settings.usage_poll_s + settings.control_interval_s + 0.5
        while time.time() < limit and budget.state.rate_ru_s > 150:
            time.sleep(0.05)
        assert budget.state.rate_ru_s <= 150, budget.state
        spike.join()
        before = budget.available_ru_per_s()
        budget.after_request(0.0, True)  # what a spender reports for a 429 answer
        assert budget.available_ru_per_s() == pytest.approx(before * settings.backoff_factor)
    finally:
        stop.set()
        reader.join(timeout=5)
        lab.gateway.update_settings(reporting_delay_s=2.0)


def test_plan_from_container_counts_and_measures(
    lab: RuLab, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cosmos-archive plan --from-container` counts the records and measures size and RU through the gateway."""
    monkeypatch.setenv("COSMOS_ARCHIVE_COSMOS_KEY", lab.key)
    argv = ["plan", "--from-container", "--endpoint", lab.endpoint, "--database", lab.database]
    argv += ["--container", lab.container, "--provisioned-ru-s", str(PROVISIONED), "--sample", "5"]
    argv += ["--account-mode", "provisioned"]  # required since issue 18: the plan refuses to guess the billing mode
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"{len(lab.doc_keys)} records" in out
    assert main([*argv, "--json"]) == 0  # --json: stdout is the plan alone (what it measured goes to stderr)
    captured = capsys.readouterr()
    assert json.loads(captured.out)["target"]["records"] == len(lab.doc_keys)
    assert f"{len(lab.doc_keys)} records" in captured.err
    survey = survey_container(lab.container_proxy(), sample=5)
    assert survey.records == len(lab.doc_keys)
    assert survey.avg_size_kb == pytest.approx(20 * 1.024, rel=0.05)  # 20 KiB documents, in decimal KB
    assert survey.ru_per_record == pytest.approx(20, rel=0.05)  # the gateway's ~1 RU/KB read charge, measured
    monkeypatch.delenv("COSMOS_ARCHIVE_COSMOS_KEY")
    assert main(argv) == 2
    assert "COSMOS_ARCHIVE_COSMOS_KEY" in capsys.readouterr().err


def test_an_idle_container_reads_as_idle_not_unknown(lab: RuLab) -> None:
    """No request in the window -> Azure Monitor answers with no series; published grains are then 0, not unknown,
    or the RU gate would never open on a quiet account. The lagging grains stay unknown."""
    source = lab.usage_source(lagging_grains=3, database="no-such-database")
    try:
        samples = source.recent(timedelta(seconds=8))
    finally:
        source.close()
    known = [s for s in samples if s.known]
    assert known and all(s.total_ru_per_s == 0 for s in known)
    assert samples[-1].end <= datetime.now(UTC) - timedelta(seconds=2)  # nothing is claimed for the lagging grains
    idle = lab.usage_source(lagging_grains=3, database="no-such-database")
    try:
        assert check_quiet(idle, provisioned_ru_s=PROVISIONED, threshold=0.5, window=timedelta(seconds=3)).quiet
    finally:
        idle.close()
