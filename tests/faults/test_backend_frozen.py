"""A backend worker frozen past a heartbeat, its stream lost meanwhile: every ride answered."""

import pytest

from devstack.lab import Lab
from faults import freeze_faults
from faults.freeze_faults import RESULT_TIMEOUT_S
from faults.report import ScenarioResult

pytestmark = [pytest.mark.emulator, pytest.mark.slow, pytest.mark.timeout(240)]

# Long enough to miss a 30 s heartbeat, as a Cloud Run instance idle between requests does.
FREEZE_S = 38.0


@pytest.fixture(scope="module")
def frozen(emulator, trained_model, tmp_path_factory) -> ScenarioResult:
    """Run the drill once (it takes about a minute); each test reads one of its findings."""
    lab = Lab(emulator, trained_model.folder, tmp_path_factory.mktemp("frozen"))
    try:
        return freeze_faults.frozen(lab, freeze_s=FREEZE_S)
    finally:
        lab.close()


def test_rides_before_the_freeze_are_answered(frozen):
    assert frozen.checks["answered 200 before the freeze"], frozen.summary()


def test_the_ride_that_wakes_the_worker_gets_its_own_final_duration(frozen):
    check = "first ride after the resume answered 200 with its duration_final"
    assert frozen.checks[check], frozen.summary()


def test_the_first_confirmation_does_not_wait_out_the_result_timeout(frozen):
    assert frozen.figures["first_after_resume_s"] < RESULT_TIMEOUT_S / 2, frozen.summary()


def test_every_ride_after_the_resume_gets_its_own_final_duration(frozen):
    check = "every ride after the resume answered 200 with its own duration_final"
    assert frozen.checks[check], frozen.summary()
    assert frozen.lost == 0 and frozen.crossed == 0


def test_no_ride_is_answered_twice(frozen):
    assert frozen.double_answers == 0


def test_the_backend_is_ready_after_the_resume(frozen):
    assert frozen.checks["ready after the resume"], frozen.summary()
