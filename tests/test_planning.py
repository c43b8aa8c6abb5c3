"""`cosmos-archive plan`: the seed numbers are computed from the inputs, and bad input errors clearly."""

from __future__ import annotations

import math

import pytest

from include.cosmos_archiver.cli.main import main
from include.cosmos_archiver.planning.capacity import CapacityInput, CapacityInputError, Prices, estimate_capacity

SEED = ["--records", "2000000", "--avg-size-kb", "300", "--ru-per-record", "300", "--provisioned-ru-s", "5000"]


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
    bad = ["--records", "10", "--avg-size-kb", "1", "--ru-per-record", "-300", "--provisioned-ru-s", "5000"]
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

from include.cosmos_archiver.planning.capacity import (  # noqa: E402
    StepModel,
    estimate_steps,
    recorded_step_charges,
)

SEED_INPUT = CapacityInput(records=2_000_000, avg_size_kb=300, ru_per_record=300, provisioned_ru_s=5000)


def test_seed_case_per_step_figures_follow_the_charge_model() -> None:
    steps = {s.step: s for s in estimate_steps(SEED_INPUT).steps}
    assert steps["copy read"].ru == 600_000_000
    assert steps["copy read"].seconds / 86_400 == pytest.approx(4.63, abs=0.005)
    # fast validation lists ~0.1 KB per record at the seed's 1 RU/KB, plus 2 RU per page of 1,000
    assert steps["validation"].ru == pytest.approx(2_000_000 * (0.1 + 2 / 1000))
    assert steps["purge"].ru == 2_000_000 * 5 * 300  # 5 RU/KB written or deleted
    assert steps["copy read"].serverless_usd == pytest.approx(150.0)  # 600 M RU x $0.25 per million
    assert steps["purge"].provisioned_usd == pytest.approx(1500 / 100 * 0.008 * steps["purge"].seconds / 3600)
    sweep = 0.01 * 2_000_000 * (300 + 0.102 + 1500) + 640 * 3
    assert steps["remainder sweep"].ru == pytest.approx(sweep)


def test_deep_validation_doubles_the_read_and_the_purge_mode_sets_the_storage_cut() -> None:
    deep = {s.step: s.ru for s in estimate_steps(SEED_INPUT, StepModel(validation="deep")).steps}
    assert deep["validation"] == deep["copy read"] == 600_000_000
    assert estimate_steps(SEED_INPUT).storage_cut == 1.0
    stub = estimate_steps(SEED_INPUT, StepModel(purge="stub", stub_kb=0.5))
    assert stub.storage_cut == pytest.approx(1 - 0.5 / 300) and stub.storage_cut >= 0.95
    off = estimate_steps(SEED_INPUT, StepModel(purge="off"))
    assert off.storage_cut == 0.0 and {s.step: s.ru for s in off.steps}["purge"] == 0
    published = estimate_steps(SEED_INPUT, StepModel(delete_ru_per_record=150))
    assert {s.step: s.ru for s in published.steps}["purge"] == 300_000_000


def test_cli_prints_the_steps_for_both_billing_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", *SEED, "--price-serverless-ru", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "4.63 days" in out and "copy read" in out and "remainder sweep" in out
    assert "3,000 M RU (3,000,000,000)" in out and "23.15 days" in out  # the purge under 5 RU/KB
    assert "300.00" in out  # copy at $0.5 per million RU
    assert "cut 100.0%, goal >= 95 %" in out and "serverless" in out and "provisioned" in out
    assert main(["plan", *SEED, "--remainder-fraction", "2"]) == 2
    assert "remainder fraction 2.0 must be in [0, 1]" in capsys.readouterr().err


def test_the_headline_is_labelled_the_copy_and_small_plans_show_their_unit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", *SEED]) == 0
    seed = capsys.readouterr().out
    assert "copy read:            600 M RU (600,000,000)  (the read alone; every step and the total below)" in seed
    assert "copy ETA:             4.63 days (111.1 h) at full headroom" in seed
    assert "at Microsoft's published ~150 RU per delete of a 256-512 KB item" in seed  # 300 KB records: it applies
    small = ["--records", "2000", "--avg-size-kb", "30", "--ru-per-record", "30", "--provisioned-ru-s", "5000"]
    assert main(["plan", *small]) == 0
    out = capsys.readouterr().out
    assert "copy ETA:             40 s at full headroom" in out and "0.00 days" not in out
    assert "3.33 min" in out  # the purge of 2,000 x 30 KB at 5 RU/KB
    assert "256-512 KB" not in out  # that published figure is not for 30 KB records


def test_recorded_step_charges_sum_the_manifests() -> None:
    class M:
        def __init__(self, steps: dict, ru: float, records: int) -> None:
            self.ru_steps, self.ru_charged, self.record_count = steps, ru, records

    totals = recorded_step_charges([M({"copy": 300.0, "purge": 50.0}, 300.0, 10), M({}, 90.0, 5)])
    assert totals == {"copy": (390.0, 15), "purge": (50.0, 10)}
