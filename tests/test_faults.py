"""The fault suite, one test per case (devstack/fault_suite.py): each fault class injected into the pipeline (copy,
validate, purge) or a restore on the local stack, then a rerun must converge — a verified archive with no record
lost, no duplicate row, no stale part and every archived record purged, or every record restored — and every
injected corruption detected with nothing purged. Cases marked ``slow`` (SIGKILL: the dead worker's 15 s lease;
restores: a whole pipeline first; Blob unreachable: the SDK's own back-off) are left out of the default run:
``pytest -m slow tests/test_faults.py`` runs them, ``pytest -m "slow or not slow"`` everything;
``bench/faults.py`` prints the whole suite's summary."""

from __future__ import annotations

import pytest

from devstack.fault_suite import FaultCase, all_cases, run_case
from devstack.stack import StackConfig


def _param(case: FaultCase) -> object:
    return pytest.param(case, id=case.id, marks=[pytest.mark.slow] if case.slow else [])


@pytest.mark.parametrize("case", [_param(c) for c in all_cases()])
def test_fault_is_survived(stack: StackConfig, case: FaultCase) -> None:
    result = run_case(stack, case)
    assert result.injected >= 1, result.detail  # the fault really happened
    assert result.records_lost == 0, result.detail
    assert result.corruptions_detected == result.corruptions_injected, result.detail
    assert result.duplicates == 0 and result.stale_parts == 0, result.detail
    assert result.converged, result.detail
