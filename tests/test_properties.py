"""Property-based tests (hypothesis) of the pure logic every archived record depends on: canonical JSON and its
hash, the Parquet round trip, the slice grid, and the RU controller's grant. No servers; bounded examples and
deadlines so the file runs in seconds."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import math
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from include.cosmos_archiver.archive.canonical import canonical_json, sha256_hex, slice_digest
from include.cosmos_archiver.archive.parquet_layout import ArchivedRow, decode_any, decode_rows, encode_rows
from include.cosmos_archiver.ru.adaptive_budget import AdaptiveBudget
from include.cosmos_archiver.ru.settings import RateControlSettings
from include.cosmos_archiver.ru.token_bucket import TokenBucket
from include.cosmos_archiver.ru.usage import UsageSample
from include.cosmos_archiver.slices import TimeSlice, bound_value, slice_grid

BOUNDED = settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow], database=None)

# Cosmos documents are JSON objects: any text (surrogates excluded: not valid UTF-8), integers of any size, finite
# floats, nested lists and objects.
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _TEXT
_JSON = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4), max_leaves=25
)
DOCUMENTS = st.dictionaries(_TEXT, _JSON, max_size=6)


@BOUNDED
@given(DOCUMENTS)
def test_canonical_json_is_a_fixed_point_and_its_hash_is_stable(document: dict) -> None:
    canon = canonical_json(document)
    again = canonical_json(json.loads(canon))
    assert again == canon  # canonicalising the parse of the canonical form gives the same bytes
    assert sha256_hex(again) == sha256_hex(canon)
    # key order and whitespace of the input do not change the canonical form
    shuffled = json.loads(json.dumps(document, indent=2, sort_keys=False), object_pairs_hook=lambda p: dict(p[::-1]))
    assert canonical_json(shuffled) == canon


@BOUNDED
@given(st.lists(DOCUMENTS, min_size=1, max_size=8), st.integers(min_value=1, max_value=4))
def test_parquet_round_trip_keeps_every_byte(documents: list[dict], row_group_rows: int) -> None:
    rows = []
    for i, document in enumerate(documents):
        doc = canonical_json({**document, "id": f"r{i}"})
        rows.append(ArchivedRow(f"r{i}", f"pk-{i % 3}", i if i % 2 else None, None, sha256_hex(doc), doc))
    data = encode_rows(rows, row_group_rows=row_group_rows)
    back = list(decode_rows(data))
    assert back == rows
    assert all(sha256_hex(r.doc) == r.sha256 for r in back)
    assert list(decode_any(data)) == rows  # the layout reader any validation uses agrees
    digest = slice_digest([(r.partition_key, r.id, r.sha256) for r in rows])
    assert digest == slice_digest([(r.partition_key, r.id, r.sha256) for r in reversed(back)])


# up to 9000: slices.as_utc once went through a float timestamp and moved instants after ~2242 by a microsecond
_INSTANTS = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.just(UTC))
_SLICE_HOURS = st.sampled_from([1, 2, 3, 4, 6, 8, 12, 24, 48, 168])


@BOUNDED
@given(_INSTANTS, _SLICE_HOURS, st.integers(min_value=0, max_value=200), st.integers(min_value=1, max_value=200))
def test_each_instant_is_in_exactly_one_slice_of_the_grid(
    instant: datetime, slice_hours: int, hours_before: int, hours_after: int
) -> None:
    start = instant - timedelta(hours=hours_before)
    end = instant + timedelta(hours=hours_after)
    grid = slice_grid(start, end, slice_hours=slice_hours)
    holding = [s for s in grid if s.start <= instant < s.end]
    assert len(holding) == 1
    assert all(a.end == b.start for a, b in itertools.pairwise(grid))  # no gap, no overlap
    # the grid never moves: planning another window around the same instant puts it in the same slice
    other = slice_grid(instant, instant + timedelta(microseconds=1), slice_hours=slice_hours)
    assert other == holding
    (held,) = holding
    # the query bounds select it exactly once too, in either stored representation of the timestamp
    epoch_s = int(instant.timestamp())
    assert bound_value(held.start, "epoch_seconds") <= epoch_s < bound_value(held.end, "epoch_seconds")
    moment = instant.replace(microsecond=instant.microsecond // 1000 * 1000)
    iso = bound_value(moment, "iso8601")
    assert bound_value(held.start, "iso8601") <= iso < bound_value(held.end, "iso8601")
    assert TimeSlice.from_dict(held.to_dict()) == held


class _ScriptedUsage:
    """A usage source whose PT1S samples are whatever the test scripted for each second."""

    def __init__(self, clock: list[float], totals: dict[int, float | None]) -> None:
        self.clock, self.totals = clock, totals

    def recent(self, window: timedelta) -> list[UsageSample]:
        now = int(self.clock[0])
        return [
            UsageSample(datetime.fromtimestamp(s, UTC), 1.0, self.totals.get(s), None)
            for s in range(now - int(window.total_seconds()), now)
        ]


_CONTROL_STEPS = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=1.6),  # business share of provisioned that second
        st.booleans(),  # whether the metrics publish that second
        st.booleans(),  # a 429 in that second
        st.floats(min_value=0.0, max_value=50.0),  # archiver charge booked that second
    ),
    min_size=5,
    max_size=40,
)


@BOUNDED
@given(
    _CONTROL_STEPS,
    st.floats(min_value=0.3, max_value=1.0),
    st.floats(min_value=0.0, max_value=0.2),
    st.sampled_from([None, 0.9, 0.99]),
)
def test_the_controller_never_grants_more_than_the_headroom_it_computes(
    steps: list[tuple[float, bool, bool, float]], ceiling: float, margin: float, quantile: float | None
) -> None:
    provisioned = 1000.0
    clock = [1_800_000_000.0]
    totals: dict[int, float | None] = {}
    controller = AdaptiveBudget(
        RateControlSettings(
            provisioned_ru_s=provisioned, ceiling=ceiling, margin=margin, error_quantile=quantile, usage_poll_s=1.0
        ),
        _ScriptedUsage(clock, totals),
        clock=lambda: clock[0],
        wall=lambda: clock[0],
        sleep=lambda _s: None,
    )
    for business, published, throttled, charge in steps:
        second = int(clock[0])
        totals[second] = business * provisioned + charge if published else None
        controller.after_request(charge, throttled, float(second))
        clock[0] += 1.0
        controller.step()
        state = controller.state
        if state.client_estimate is not None:
            headroom = max(0.0, (ceiling - state.margin - state.client_estimate) * provisioned)
            assert state.target_ru_s == headroom or math.isclose(state.target_ru_s, headroom, abs_tol=1e-6)
        assert state.margin >= margin
        assert 0.0 <= state.rate_ru_s <= state.target_ru_s + 1e-9  # AIMD only ever lowers it
        assert state.rate_ru_s <= max(0.0, (ceiling - margin) * provisioned) + 1e-9
        assert controller.available_ru_per_s() <= state.target_ru_s + 1e-9


@BOUNDED
@given(
    st.floats(min_value=1.0, max_value=2000.0),
    st.floats(min_value=0.05, max_value=1.0),
    st.lists(st.floats(min_value=0.1, max_value=300.0), min_size=1, max_size=60),
)
def test_the_token_bucket_grants_at_most_its_rate_plus_one_burst(
    rate: float, burst_s: float, asks: list[float]
) -> None:
    """Over any run, what ``take`` granted <= rate x elapsed + the burst capacity + the one request that may go
    into debt (a request larger than the balance still goes through; the next ones wait it off)."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    bucket = TokenBucket(rate, burst_s, clock=lambda: now[0], sleep=sleep)
    granted = 0.0
    for ask in asks:
        bucket.take(ask)
        granted += ask
        assert granted <= rate * now[0] + rate * burst_s + ask + 1e-6


def test_bounds_of_the_time_formats_used_above() -> None:
    """The iso8601 bound is fixed-width, so the lexicographic comparisons above compare instants."""
    early, late = dt.datetime(1971, 1, 1, tzinfo=UTC), dt.datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert len(str(bound_value(early, "iso8601"))) == len(str(bound_value(late, "iso8601")))


@settings(max_examples=8, deadline=None, database=None)
@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=10**6))
def test_seeded_invoices_are_deterministic_and_compress_like_real_ones(seed: int, index: int) -> None:
    """Same seed and index -> the same bytes; content varied enough that zstd does not flatter MB/s (the first
    seed's padding compressed 60-150x)."""
    from devstack.seed import SeedSpec, make_record

    end = dt.datetime(2026, 1, 1, tzinfo=UTC)
    spec = SeedSpec(records=index + 1, seed=seed, target_kb=64)
    doc = canonical_json(make_record(spec, index, end))
    assert doc == canonical_json(make_record(spec, index, end))
    assert len(doc) >= 60 * 1024
    rows = [ArchivedRow("r", "p", None, None, sha256_hex(doc), doc)]
    ratio = len(doc) / len(encode_rows(rows, row_group_rows=1, compression_level=3))
    assert 2.0 <= ratio <= 10.0, ratio
    filler = canonical_json(make_record(dataclasses.replace(spec, padding="filler"), index, end))
    assert json.loads(filler)["archiveTs"] == json.loads(doc)["archiveTs"]  # dates as the first seed made them


@BOUNDED
@given(
    st.lists(st.floats(min_value=0.0, max_value=1.5), min_size=2, max_size=50),
    st.sampled_from([1, 60]),
    st.sampled_from(["ru", "fraction", "percent"]),
)
def test_a_recorded_trace_reads_back_grain_by_grain(values: list[float], grain_s: int, unit: str) -> None:
    """Any per-second or per-minute trace, in any of its units, plays each grain's share of provisioned for the
    whole grain."""
    import tempfile
    from pathlib import Path

    from devstack.business_load import read_trace_csv

    provisioned = 5000.0
    start = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
    shown = {"ru": lambda f: f"{f * provisioned * grain_s:.6f}", "fraction": lambda f: f"{f:.9f}"}
    lines = [f"# provisioned_ru={provisioned:g}", f"timestamp,{'RU' if unit == 'ru' else unit}"]
    for i, fraction in enumerate(values):
        value = shown[unit](fraction) if unit in shown else f"{fraction * 100:.7f}"
        lines.append(f"{(start + timedelta(seconds=i * grain_s)).isoformat()},{value}")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "trace.csv"
        path.write_text("\n".join(lines) + "\n")
        recorded = read_trace_csv(path)
    assert (recorded.rows, recorded.grain_s, recorded.unit) == (len(values), grain_s, unit)
    for i, fraction in enumerate(values):
        for offset in (0.01, 0.5, 0.99):
            assert math.isclose(recorded.trace.at((i + offset) * grain_s), fraction, abs_tol=1e-6)
