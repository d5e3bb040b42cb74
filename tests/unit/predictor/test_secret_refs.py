"""predictor_service.secret_refs: Secret Manager references resolved through a hand-written fake."""

import logging
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from predictor_service.secret_refs import SecretRefError, resolve_secret_refs

KEY_ID_REF = "projects/demo-project/secrets/mlflow-aws-access-key-id/versions/3"
SECRET_REF = "projects/demo-project/secrets/mlflow-aws-secret-access-key"
VALUES = {
    KEY_ID_REF: b"AKIA-fake-4e1c",
    SECRET_REF + "/versions/latest": b"fake/secret+key=\n",
}


@dataclass
class FakeSecretManager:
    """Answers access_secret_version from a dict and records what was asked."""

    values: dict[str, bytes] = field(default_factory=lambda: dict(VALUES))
    requested: list[str] = field(default_factory=list)

    def access_secret_version(self, *, request: dict[str, str]) -> SimpleNamespace:
        self.requested.append(request["name"])
        if request["name"] not in self.values:
            raise PermissionError(f"403 Permission denied on {request['name']}")
        return SimpleNamespace(payload=SimpleNamespace(data=self.values[request["name"]]))


@pytest.fixture
def client() -> FakeSecretManager:
    return FakeSecretManager()


def refs(**extra: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID_SECRET": KEY_ID_REF,
        "AWS_SECRET_ACCESS_KEY_SECRET": SECRET_REF,
    } | extra


def test_references_are_resolved(client: FakeSecretManager) -> None:
    assert resolve_secret_refs(refs(), lambda: client) == {
        "AWS_ACCESS_KEY_ID": "AKIA-fake-4e1c",
        "AWS_SECRET_ACCESS_KEY": "fake/secret+key=",
    }


def test_a_reference_without_version_reads_the_latest(client: FakeSecretManager) -> None:
    resolve_secret_refs(refs(), lambda: client)

    assert client.requested == [KEY_ID_REF, SECRET_REF + "/versions/latest"]


def test_no_reference_creates_no_client() -> None:
    def no_client() -> FakeSecretManager:
        raise AssertionError("a client was created")

    assert resolve_secret_refs({"AWS_ACCESS_KEY_ID": "AKIA-plain"}, no_client) == {}


def test_value_and_reference_together_are_refused(client: FakeSecretManager) -> None:
    with pytest.raises(SecretRefError, match="AWS_ACCESS_KEY_ID or AWS_ACCESS_KEY_ID_SECRET"):
        resolve_secret_refs(refs(AWS_ACCESS_KEY_ID="AKIA-plain"), lambda: client)


def test_malformed_reference_is_refused(client: FakeSecretManager) -> None:
    with pytest.raises(SecretRefError, match="projects/P/secrets/S"):
        resolve_secret_refs(
            {"AWS_ACCESS_KEY_ID_SECRET": "mlflow-aws-access-key-id"}, lambda: client
        )


def test_unreadable_secret_fails_naming_the_reference(client: FakeSecretManager) -> None:
    client.values.pop(KEY_ID_REF)

    with pytest.raises(SecretRefError, match=f"cannot read {KEY_ID_REF} for AWS_ACCESS_KEY_ID"):
        resolve_secret_refs(refs(), lambda: client)


def test_values_never_reach_the_logs(
    client: FakeSecretManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    resolve_secret_refs(refs(), lambda: client)

    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "AWS_ACCESS_KEY_ID" in logged  # the variable names are logged...
    assert "AKIA-fake-4e1c" not in logged and "fake/secret+key" not in logged  # ...never values
