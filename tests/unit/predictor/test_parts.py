"""The predictor's plain parts: envelope codec, ride decoding, features, config, publisher."""

from concurrent.futures import Future
from datetime import datetime

import numpy as np
import pytest

from predictor_service.config import Config, ConfigError
from predictor_service.envelope import encode_result, parse_envelope
from predictor_service.errors import PermanentError, TransientError
from predictor_service.features import FEATURE_NAMES, prepare_features
from predictor_service.model import ModelLoadError, load_model
from predictor_service.publisher import MAX_DEAD_LETTER_BYTES, ResultPublisher
from predictor_service.rides import decode_ride
from tests.helpers import push_envelope
from tests.unit.predictor.conftest import ride_message


def test_envelope_yields_data_attributes_and_ids():
    message = parse_envelope(push_envelope(b"payload", {"a": "1"}))

    assert (message.data, message.attributes, message.message_id) == (b"payload", {"a": "1"}, "1")
    assert message.subscription == "projects/test-project/subscriptions/test"


def test_ride_with_offset_is_decoded_to_new_york_time():
    ride = decode_ride(ride_message(datetime="2021-07-01T16:00:00+00:00"))

    assert ride.pickup_datetime == datetime(2021, 7, 1, 12, 0)  # EDT, UTC-4


def test_ride_problems_are_all_named():
    with pytest.raises(PermanentError) as err:
        decode_ride(ride_message(PULocationID=True, trip_distance=float("inf")))

    assert err.value.reason == "invalid-ride"
    assert "PULocationID" in err.value.detail and "trip_distance" in err.value.detail


def test_features_are_in_the_documented_order():
    features = prepare_features([74], [75], [2.5], [datetime(2021, 2, 3, 8, 30)])

    assert features.shape == (1, len(FEATURE_NAMES))
    assert features.tolist() == [[74.0, 75.0, 2.5, 8.5, 2.0]]  # 2021-02-03 was a Wednesday


def test_features_of_many_rides_match_one_by_one():
    times = np.array(["2021-01-04T00:00", "2021-01-10T23:59"], dtype="datetime64[ns]")

    together = prepare_features([1, 2], [3, 4], [1.0, 2.0], times)

    assert together[:, 3:].tolist() == [[0.0, 0.0], [23 + 59 / 60, 6.0]]  # Monday, Sunday


def test_result_message_has_the_contract_fields():
    assert (
        encode_result("r1", 7.5, "v")
        == b'{"ride_id": "r1", "duration_final": 7.5, "model_version": "v"}'
    )


def test_config_takes_run_id_with_a_tracking_uri():
    config = Config.from_env(
        {"PROJECT_ID": "p", "RUN_ID": "abc", "MLFLOW_TRACKING_URI": "http://x"}
    )

    assert config.model_uri == "runs:/abc/model"


def test_config_lists_every_problem():
    with pytest.raises(ConfigError) as err:
        Config.from_env({"RUN_ID": "abc", "PUBLISH_TIMEOUT_S": "0", "LOG_LEVEL": "loud"})

    message = str(err.value)
    for problem in ("PROJECT_ID", "MLFLOW_TRACKING_URI", "PUBLISH_TIMEOUT_S", "LOG_LEVEL"):
        assert problem in message


def test_missing_model_folder_is_a_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="MLmodel"):
        load_model(str(tmp_path))


def test_folder_without_lightgbm_flavor_is_a_load_error(tmp_path):
    (tmp_path / "MLmodel").write_text("flavors:\n  sklearn: {}\n")

    with pytest.raises(ModelLoadError, match="lightgbm"):
        load_model(str(tmp_path))


class FakeClient:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    def publish(self, topic: str, data: bytes, **attrs: str) -> Future:
        future: Future = Future()
        if self.fail:
            future.set_exception(RuntimeError("unavailable"))
        else:
            self.sent.append((topic, data, attrs))
            future.set_result("id-1")
        return future


def test_publisher_targets_the_results_and_dead_letter_topics():
    client = FakeClient()
    publisher = ResultPublisher(client, "p", "results", "dead", timeout_s=1)

    publisher.publish_result(b"r", {"ride_id": "1"})
    publisher.dead_letter(b"d", {"reason": "x"})

    assert [c[0] for c in client.sent] == ["projects/p/topics/results", "projects/p/topics/dead"]


def test_publisher_failure_is_transient():
    publisher = ResultPublisher(FakeClient(fail=True), "p", "results", "dead", timeout_s=1)

    with pytest.raises(TransientError):
        publisher.publish_result(b"r", {})


def test_dead_letter_of_a_huge_payload_is_truncated_and_says_so():
    client = FakeClient()
    publisher = ResultPublisher(client, "p", "results", "dead", timeout_s=1)

    publisher.dead_letter(b"x" * (MAX_DEAD_LETTER_BYTES + 10), {"error": "e" * 5000})

    _, data, attrs = client.sent[0]
    assert len(data) == MAX_DEAD_LETTER_BYTES
    assert attrs["truncated_from_bytes"] == str(MAX_DEAD_LETTER_BYTES + 10)
    assert len(attrs["error"]) <= 1024
