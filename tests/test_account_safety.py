"""Serverless safe by default: the account mode is never guessed, reads never pay the doubling consistency levels,
and NormalizedRUConsumption is taken for what it is (the hottest partition's share of its own budget)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.cosmos import ContainerProxy
from azure.mgmt.cosmosdb.models import DatabaseAccountGetResults

from devstack.stack import EMULATOR_COSMOS_KEY, StackConfig
from include.cosmos_archiver.clients import cosmos_client
from include.cosmos_archiver.ru.account_mode import mode_from_capabilities, parse_account_id
from include.cosmos_archiver.ru.adaptive_budget import AdaptiveBudget
from include.cosmos_archiver.ru.governance import RuGovernance
from include.cosmos_archiver.ru.quiet_gate import assess_quiet
from include.cosmos_archiver.ru.usage import UsageSample
from include.cosmos_archiver.settings import ArchiveSettings, SettingsError
from include.cosmos_archiver.source.preflight import PreflightError, require_account_mode

ACCOUNT_ID = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.DocumentDB/databaseAccounts/billing"


def test_preflight_refuses_to_guess_the_account_mode() -> None:
    governance = RuGovernance.from_mapping({"provisioned_ru_s": 5000})
    assert governance.account_mode is None
    assert governance.rate_settings().serverless and governance.client_kwargs() == {}  # paced as serverless
    with pytest.raises(PreflightError) as refused:
        require_account_mode(governance, "cosmos_archive_ru")
    message = str(refused.value)
    assert "account_mode is not set in the cosmos_archive_ru Variable" in message
    assert "'provisioned', 'serverless'" in message and "resource_id" in message
    # the local gateway serves no Azure Resource Manager: there, too, the mode must be set
    local = RuGovernance(metrics_endpoint="https://127.0.0.1:1", resource_id=ACCOUNT_ID, credential="local")
    with pytest.raises(PreflightError, match="account_mode is not set"):
        require_account_mode(local, "cosmos_archive_ru")
    assert require_account_mode(RuGovernance(account_mode="provisioned"), "v").client_kwargs() == {"priority": "Low"}


def test_the_account_mode_is_read_from_the_accounts_capabilities() -> None:
    asked: list[str] = []

    def read(resource_id: str) -> str:
        asked.append(resource_id)
        return "serverless"

    governance = RuGovernance(metrics_endpoint="https://westeurope.metrics.monitor.azure.com", resource_id=ACCOUNT_ID)
    resolved = require_account_mode(governance, "cosmos_archive_ru", read=read)
    assert asked == [ACCOUNT_ID] and resolved.account_mode == "serverless" and resolved.client_kwargs() == {}
    # the ARM answer, as azure-mgmt-cosmosdb parses it (capabilities as in Microsoft Learn's serverless example)
    serverless = DatabaseAccountGetResults({"properties": {"capabilities": [{"name": "EnableServerless"}]}})
    provisioned = DatabaseAccountGetResults({"properties": {"capabilities": [{"name": "EnableTable"}]}})
    assert mode_from_capabilities(serverless.properties.capabilities) == "serverless"
    assert mode_from_capabilities(provisioned.properties.capabilities) == "provisioned"
    assert parse_account_id(ACCOUNT_ID) == ("sub-1", "rg-1", "billing")
    with pytest.raises(ValueError, match="not a Cosmos DB account's ARM id"):
        parse_account_id("/subscriptions/sub-1/resourceGroups/rg-1")


def test_read_consistency_is_explicit_and_never_a_doubling_level(
    stack: StackConfig, cosmos_container: ContainerProxy
) -> None:
    assert ArchiveSettings().read_consistency == "Eventual"
    for doubling in ("Strong", "BoundedStaleness"):
        with pytest.raises(SettingsError, match=f"read_consistency='{doubling}'.*twice the RU"):
            ArchiveSettings(read_consistency=doubling)  # type: ignore[arg-type]
    cosmos_container.upsert_item({"id": "r1", "customerId": "c1"})
    client = cosmos_client(stack.cosmos_endpoint, EMULATOR_COSMOS_KEY,
                           consistency_level=ArchiveSettings().read_consistency)
    sent: list[str | None] = []
    container = client.get_database_client("tests").get_container_client(cosmos_container.id)  # conftest's database
    item = container.read_item("r1", partition_key="c1", raw_request_hook=lambda r: sent.append(
        r.http_request.headers.get("x-ms-consistency-level")))
    assert item["id"] == "r1" and sent == ["Eventual"]


def _samples(total_share: float, hottest_pct: float, seconds: int = 10) -> list[UsageSample]:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    return [UsageSample(start + timedelta(seconds=i), 1.0, total_share * 5000, hottest_pct) for i in range(seconds)]


def test_normalized_ru_is_the_hottest_partitions_share_not_the_accounts() -> None:
    """One hot partition at 95 % of its own budget while the account uses 30 %: the gate opens (the account is
    quiet) and says so; the controller paces against the partition that binds (the hottest, at 95 % of its own
    RU/s: the archiver's reads spread over the partitions would be throttled there and crowd its customers out),
    not the account's 30 % (issue 18: every partition spared)."""
    samples = _samples(0.30, 95.0)
    verdict = assess_quiet(samples, provisioned_ru_s=5000, threshold=0.7, window=timedelta(seconds=5))
    assert verdict.quiet and verdict.peak_fraction == pytest.approx(0.30)
    assert verdict.hottest_partition == pytest.approx(0.95) and "hottest partition 95%" in verdict.reason
    assert samples[0].usage_fraction(5000) == pytest.approx(0.30)
    # unknown total: the partition's share stands in (an upper bound of the account's, the safe side)
    assert UsageSample(samples[0].timestamp, 1.0, None, 95.0).usage_fraction(5000) == pytest.approx(0.95)

    class Fixed:
        def recent(self, window: timedelta) -> list[UsageSample]:
            now = datetime.now(UTC).replace(microsecond=0)
            return [UsageSample(now - timedelta(seconds=8 - i), 1.0, 0.30 * 5000, 95.0) for i in range(6)]

    budget = AdaptiveBudget(RuGovernance(account_mode="provisioned", usage_poll_s=1, stale_after_s=30,
                                         grain_s=1).rate_settings(), Fixed())
    budget.available_ru_per_s()  # one control step: polls the usage
    assert budget.client_estimate() == pytest.approx(0.95, abs=0.02)
    assert budget.available_ru_per_s() == 0  # over the ceiling on that partition: nothing for the archiver
