"""`cosmos-archive plan`: the seed numbers are computed from the inputs, and bad input errors clearly."""

from __future__ import annotations

import json
import math

import pytest

from include.cosmos_archiver.cli.main import main
from include.cosmos_archiver.planning.capacity import CapacityInput, CapacityInputError, Prices, estimate_capacity

SEED = ["--records", "2000000", "--avg-size-kb", "300", "--ru-per-record", "300", "--provisioned-ru-s", "5000",
        "--account-mode", "provisioned"]


def test_seed_case_numbers() -> None:
    seed = CapacityInput(records=2_000_000, avg_size_kb=300, ru_per_record=300, provisioned_ru_s=5000)
    plan = estimate_capacity(seed)
    assert plan.total_ru == 600_000_000
    assert plan.headroom_ru_s == pytest.approx(1500)
    assert plan.eta_days == pytest.approx(4.63, abs=0.005)
    assert plan.data_gb == pytest.approx(600)
    # Costs follow the configured prices: 600 GB x $0.25 and 50 x 100 RU/s x $0.008 x 730 h.
    assert plan.cosmos_storage_month_before == pytest.approx(150)
    assert plan.throughput_month_before == pytest.approx(292)
    assert plan.monthly_after < plan.monthly_before


def test_numbers_follow_inputs_not_constants() -> None:
    plan = estimate_capacity(
        CapacityInput(
            records=1000, avg_size_kb=10, ru_per_record=7, provisioned_ru_s=400, client_load=0.25, ceiling=0.75
        )
    )
    assert plan.total_ru == 7000
    assert plan.headroom_ru_s == pytest.approx(200)
    assert plan.eta_s == pytest.approx(35)
    cheap = estimate_capacity(
        CapacityInput(
            records=2_000_000,
            avg_size_kb=300,
            ru_per_record=300,
            provisioned_ru_s=5000,
            blob_tier="hot",
            prices=Prices(cosmos_storage_gb_month=1.0, blob_gb_month={"hot": 0.5}),
        )
    )
    assert cheap.cosmos_storage_month_before == pytest.approx(600)
    assert cheap.blob_storage_month_after == pytest.approx(300)


def test_cli_prints_seed_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", *SEED, "--client-load", "0.5", "--ceiling", "0.8"]) == 0
    out = capsys.readouterr().out
    assert "600 M RU (600,000,000)" in out
    assert "1,500 RU/s" in out
    assert "4.63 days" in out
    assert "list-price defaults" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ceiling", "1.2"], "ceiling 1.2 must be in (0, 1]"),
        (["--ceiling", "0"], "ceiling 0.0 must be in (0, 1]"),
        (["--client-load", "0.8"], "client load 0.8 is not below the ceiling 0.8"),
        (["--client-load", "0.9"], "client load 0.9 is not below the ceiling 0.8"),
        (["--price-ru", "-1"], "cosmos RU price -1.0 is negative"),
    ],
)
def test_cli_bad_input_errors_clearly(extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", *SEED, *extra]) == 2
    assert message in capsys.readouterr().err


def test_negative_ru_and_records_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    bad = ["--records", "10", "--avg-size-kb", "1", "--ru-per-record", "-300", "--provisioned-ru-s", "5000",
           "--account-mode", "provisioned"]
    assert main(["plan", *bad]) == 2
    assert "RU per record -300.0 is negative" in capsys.readouterr().err
    with pytest.raises(CapacityInputError, match="records=-1 is negative"):
        estimate_capacity(CapacityInput(records=-1, avg_size_kb=1, ru_per_record=1, provisioned_ru_s=1))
    with pytest.raises(CapacityInputError, match="provisioned RU/s 0 must be > 0"):
        estimate_capacity(CapacityInput(records=1, avg_size_kb=1, ru_per_record=1, provisioned_ru_s=0))


def test_missing_inputs_name_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--records", "10"]) == 2
    err = capsys.readouterr().err
    assert "--avg-size-kb" in err and "--from-container" in err


def test_zero_records_plan_is_instant() -> None:
    plan = estimate_capacity(CapacityInput(records=0, avg_size_kb=300, ru_per_record=300, provisioned_ru_s=5000))
    assert plan.total_ru == 0 and plan.eta_s == 0 and not math.isinf(plan.eta_s)


# -- per-step plan -------------------------------------------------------------------------------------------------

from include.cosmos_archiver.planning import published  # noqa: E402
from include.cosmos_archiver.planning.capacity import recorded_step_charges  # noqa: E402
from include.cosmos_archiver.planning.step_plan import (  # noqa: E402
    ChargeFigures,
    PlanTarget,
    StepModel,
    plan_steps,
)

SEED_TARGET = PlanTarget(records=2_000_000, avg_size_kb=300, ru_s=5000, account_mode="serverless")


def test_published_point_charges_are_the_size_table_interpolated() -> None:
    assert published.point_read_ru(256 * 1.024) == pytest.approx(20.28)  # the table's KB are 1,024 bytes
    assert published.delete_ru(512 * 1.024) == pytest.approx(184.57)
    assert published.point_read_ru(300 * 1.024) == pytest.approx(23.83, abs=0.01)  # "about 24 RU to read 300 KB"
    assert published.delete_ru(300 * 1.024) == pytest.approx(113.12, abs=0.01)  # "~113 RU to delete it"
    assert published.query_load_ru(1000) == pytest.approx(10.15)  # 4,060 RU for 400 MB loaded


def test_seed_case_per_step_figures_follow_the_published_model() -> None:
    plan = plan_steps(SEED_TARGET)
    steps = {s.step: s for s in plan.steps}
    pages = 2_000_000 / 100 + 0.5 * 640 * 12  # each slice's query per partition ends with a partial page
    assert steps["copy"].ru == pytest.approx(2_000_000 * 10.15 * 300 / 1000 + pages * published.QUERY_PAGE_RU)
    # serverless: the archiver runs at the cap, (1 - 0.8) x 5,000 = 1,000 RU/s, not the 1,500 RU/s headroom
    assert SEED_TARGET.rate_ru_s == pytest.approx(1000)
    assert steps["purge"].seconds == pytest.approx(steps["purge"].ru / 1000)
    assert steps["purge"].ru == pytest.approx(2_000_000 * published.delete_ru(300))
    # fast validation: one index-served COUNT per slice and physical partition (600 GB: 12 partitions)
    assert steps["validation"].ru == pytest.approx(640 * 12 * published.INDEX_COUNT_RU)
    assert steps["copy"].usd == pytest.approx(steps["copy"].ru / 1e6 * 0.25)  # billed per million RU
    provisioned = plan_steps(PlanTarget(records=2_000_000, avg_size_kb=300, ru_s=5000, account_mode="provisioned"))
    assert provisioned.target.rate_ru_s == pytest.approx(1500) and all(s.usd == 0 for s in provisioned.steps)


def test_deep_validation_and_the_adf_route_read_again_and_a_calibration_replaces_the_figures(tmp_path) -> None:
    deep = plan_steps(SEED_TARGET, StepModel(validation="deep"))
    assert deep.ru_of("validation") == pytest.approx(deep.ru_of("copy"))
    adf = plan_steps(SEED_TARGET, StepModel(route="adf"))
    assert adf.ru_of("copy") == 0 and adf.ru_of("ADF") > 0 and adf.ru_of("validation") == adf.ru_of("ADF")
    assert next(s for s in adf.steps if s.step == "ADF").seconds == 0  # not paced: no RU setting on ADF
    off = plan_steps(SEED_TARGET, StepModel(purge="off"))
    assert off.ru_of("purge") == 0
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps({"calibration_version": 1, "surveyed_at": "2026-12-04",
                                       "figures": {"ru_per_mb_loaded": 20.3, "delete_ru": 50.0,
                                                   "physical_partitions": 2, "account_mode": "serverless"}}))
    figures = ChargeFigures.from_file(calibration)
    measured = plan_steps(SEED_TARGET, figures=figures)
    assert measured.ru_of("purge") == 2_000_000 * 50.0
    assert measured.ru_of("copy") == pytest.approx(2 * plan_steps(SEED_TARGET).ru_of("copy"), rel=0.01)
    assert "survey" in figures.source and str(calibration) in figures.source


def test_cli_prints_the_steps_for_the_accounts_billing_mode(capsys: pytest.CaptureFixture[str]) -> None:
    serverless = ["--records", "2000000", "--avg-size-kb", "300", "--provisioned-ru-s", "5000"]
    assert main(["plan", *serverless, "--account-mode", "serverless", "--price-serverless-ru", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "the archiver runs at 1,000 RU/s" in out and "provisioned RU/s" not in out
    assert "copy" in out and "census" in out and "remainder" in out
    assert main(["plan", *serverless]) == 2
    assert "give --account-mode" in capsys.readouterr().err
    assert main(["plan", *SEED, "--remainder-fraction", "2"]) == 2
    assert "remainder fraction 2.0 must be in [0, 1]" in capsys.readouterr().err


def test_recorded_step_charges_sum_the_manifests() -> None:
    class M:
        def __init__(self, steps: dict, ru: float, records: int) -> None:
            self.ru_steps, self.ru_charged, self.record_count = steps, ru, records

    totals = recorded_step_charges([M({"copy": 300.0, "purge": 50.0}, 300.0, 10), M({}, 90.0, 5)])
    assert totals == {"copy": (390.0, 15), "purge": (50.0, 10)}


def test_cli_plans_one_run_of_many_slices_without_the_weekly_census(capsys: pytest.CaptureFixture[str]) -> None:
    """A first run archives all its due slices at once and, in it, only the daily census counts (one COUNT per slice
    and partition, plus the lookback's): what `bench/plan_vs_demo.py` sets beside `bin/archive-local`'s run."""
    args = ["plan", "--records", "1700", "--avg-size-kb", "30", "--provisioned-ru-s", "5000", "--account-mode",
            "provisioned", "--slices", "17", "--json"]
    assert main([*args, "--slices-per-run", "17", "--census-weeks", "0"]) == 0
    one_run = {s["step"]: s["ru"] for s in json.loads(capsys.readouterr().out)["steps"]}
    assert one_run["census"] == pytest.approx((17 + 1) * published.INDEX_COUNT_RU)
    assert main(args) == 0  # default: a run a day, and the weekly full census while the data is in Cosmos
    daily = {s["step"]: s["ru"] for s in json.loads(capsys.readouterr().out)["steps"]}
    assert daily["census"] > (17 + 17) * published.INDEX_COUNT_RU + 3 * published.query_load_ru(30) * 1700 * 0.99
    assert main([*args, "--census-weeks", "-1"]) == 2
    assert "census weeks -1.0 must be a number >= 0" in capsys.readouterr().err
