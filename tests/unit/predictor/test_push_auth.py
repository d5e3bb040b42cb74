"""predictor_service.push_auth, offline: tokens signed with a key made for the test."""

import base64
import json
import logging
import time
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt

from predictor_service.push_auth import (
    CLOUD_RUN_IAM,
    REMOVED_SIGNATURE,
    SIGNATURE,
    CertsUnavailable,
    InvalidToken,
    MissingToken,
    PushTokenVerifier,
    WrongSender,
    make_verifier,
)

AUDIENCE = "https://ride-predictor-abc123-uc.a.run.app"
INVOKER = "ride-push-invoker@demo-project.iam.gserviceaccount.com"


def make_key() -> tuple[str, str]:
    """Return (private PEM, public PEM) of a fresh RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private.decode(), public.decode()


GOOGLE_KEY, OTHER_KEY = make_key(), make_key()


def token(key: tuple[str, str] = GOOGLE_KEY, kid: str = "google-1", **claims: object) -> str:
    now = int(time.time())
    payload = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "email": INVOKER,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
        "sub": "1234567890",
    } | claims
    signer = crypt.RSASigner.from_string(key[0], key_id=kid)
    return jwt.encode(signer, payload).decode()


def unsigned(claims: dict[str, object]) -> str:
    """The same claims with "alg": "none" and no signature."""

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def removed(signed: str) -> str:
    """The token as Cloud Run's IAM front door forwards it: signature replaced."""
    return f"{signed.rpartition('.')[0]}.{REMOVED_SIGNATURE}"


class Certs:
    """Google's certificate endpoint, answered from memory, counted, and down on demand."""

    def __init__(self, certs: dict[str, str] | None = None) -> None:
        self.certs = certs if certs is not None else {"google-1": GOOGLE_KEY[1]}
        self.fetches = 0
        self.down: str | None = None  # while set, each fetch fails with this reason

    def __call__(self) -> dict[str, str]:
        self.fetches += 1
        if self.down is not None:
            raise OSError(self.down)
        return self.certs


class Clock:
    """A monotonic clock that moves only when a test moves it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def verifier() -> PushTokenVerifier:
    return PushTokenVerifier(AUDIENCE, INVOKER, fetch_certs=Certs())


def test_valid_token_passes(verifier: PushTokenVerifier) -> None:
    assert verifier.verify(f"Bearer {token()}") is None


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer   ", "Basic dXNlcjpwYXNz"])
def test_missing_token_is_401(verifier: PushTokenVerifier, header: str | None) -> None:
    with pytest.raises(MissingToken) as caught:
        verifier.verify(header)
    assert caught.value.status == 401


@pytest.mark.parametrize(
    "make",
    [
        lambda: token(key=OTHER_KEY),  # signed by someone else under Google's key id
        lambda: token(aud="https://another-service.run.app"),
        lambda: token(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
        lambda: token(iss="https://evil.example.com"),
        lambda: token(kid="unknown-key"),
        lambda: unsigned(jwt.decode(token(), verify=False)),
        lambda: "not.a.jwt",
    ],
    ids=[
        "bad-signature",
        "wrong-audience",
        "expired",
        "wrong-issuer",
        "unknown-key",
        "alg-none",
        "garbage",
    ],
)
def test_invalid_token_is_401(verifier: PushTokenVerifier, make: Callable[[], str]) -> None:
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(f"Bearer {make()}")
    assert caught.value.status == 401


@pytest.mark.parametrize(
    "claims",
    [{"email": "someone-else@demo-project.iam.gserviceaccount.com"}, {"email_verified": False}],
    ids=["other-account", "unverified-email"],
)
@pytest.mark.parametrize(
    "mode, seal",
    [(SIGNATURE, lambda jwt: jwt), (CLOUD_RUN_IAM, removed)],
    ids=["signature", "behind-cloud-run-iam"],
)
def test_wrong_sender_is_403(
    mode: str, seal: Callable[[str], str], claims: dict[str, object]
) -> None:
    verifier = PushTokenVerifier(AUDIENCE, INVOKER, mode=mode, fetch_certs=Certs())

    with pytest.raises(WrongSender) as caught:
        verifier.verify(f"Bearer {seal(token(**claims))}")
    assert caught.value.status == 403


def test_any_sender_passes_when_no_account_is_expected() -> None:
    verifier = PushTokenVerifier(AUDIENCE, fetch_certs=Certs())

    verifier.verify(f"Bearer {token(email='someone-else@example.com')}")


def test_scheme_is_case_insensitive(verifier: PushTokenVerifier) -> None:
    verifier.verify(f"bearer {token()}")


def test_certs_are_fetched_once_while_fresh() -> None:
    certs = Certs()
    verifier = PushTokenVerifier(AUDIENCE, INVOKER, fetch_certs=certs)

    for _ in range(3):
        verifier.verify(f"Bearer {token()}")

    assert certs.fetches == 1


def test_stale_certs_are_fetched_again() -> None:
    certs, now = Certs(), [0.0]
    verifier = PushTokenVerifier(AUDIENCE, fetch_certs=certs, certs_ttl_s=60, clock=lambda: now[0])
    verifier.verify(f"Bearer {token()}")

    now[0] = 61.0
    verifier.verify(f"Bearer {token()}")

    assert certs.fetches == 2


def test_new_signing_key_is_picked_up() -> None:
    certs, now = Certs(), [1000.0]
    verifier = PushTokenVerifier(AUDIENCE, fetch_certs=certs, clock=lambda: now[0])
    verifier.verify(f"Bearer {token()}")
    certs.certs = certs.certs | {"google-2": OTHER_KEY[1]}

    now[0] += 61
    verifier.verify(f"Bearer {token(key=OTHER_KEY, kid='google-2')}")

    assert certs.fetches == 2


def test_unknown_key_ids_cannot_force_a_fetch_per_request() -> None:
    certs, now = Certs(), [1000.0]
    verifier = PushTokenVerifier(AUDIENCE, fetch_certs=certs, clock=lambda: now[0])
    verifier.verify(f"Bearer {token()}")

    for _ in range(5):
        with pytest.raises(InvalidToken):
            verifier.verify(f"Bearer {token(kid='junk')}")

    assert certs.fetches == 1


def test_unreachable_certs_are_503() -> None:
    def fail() -> dict[str, str]:
        raise OSError("network is unreachable")

    verifier = PushTokenVerifier(AUDIENCE, fetch_certs=fail)

    with pytest.raises(CertsUnavailable) as caught:
        verifier.verify(f"Bearer {token()}")
    assert caught.value.status == 503


def test_no_audience_means_no_check_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="predictor_service.push_auth"):
        assert make_verifier(None, INVOKER) is None

    assert "PUSH_AUDIENCE is not set" in caplog.text


def test_an_audience_means_a_check() -> None:
    verifier = make_verifier(AUDIENCE, INVOKER)

    assert isinstance(verifier, PushTokenVerifier)
    with pytest.raises(MissingToken):
        verifier.verify(None)


def test_failed_refresh_keeps_the_certs_held_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    certs, clock = Certs(), Clock()
    verifier = PushTokenVerifier(AUDIENCE, fetch_certs=certs, certs_ttl_s=60, clock=clock)
    verifier.verify(f"Bearer {token()}")
    certs.down, clock.now = "connection reset by peer", clock.now + 61

    with caplog.at_level(logging.WARNING, logger="predictor_service.push_auth"):
        verifier.verify(f"Bearer {token()}")

    assert certs.fetches == 2
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "connection reset by peer" in caplog.text


def test_failed_refresh_is_retried_at_most_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    certs, clock = Certs(), Clock()
    verifier = PushTokenVerifier(AUDIENCE, fetch_certs=certs, certs_ttl_s=60, clock=clock)
    verifier.verify(f"Bearer {token()}")
    certs.down, clock.now = "timed out", clock.now + 61

    with caplog.at_level(logging.WARNING, logger="predictor_service.push_auth"):
        for _ in range(50):  # a burst of pushes in the same second
            verifier.verify(f"Bearer {token()}")
        clock.now += 59
        verifier.verify(f"Bearer {token()}")
        clock.now += 1
        verifier.verify(f"Bearer {token()}")

    assert certs.fetches == 3  # the first, then one failed attempt a minute
    assert len(caplog.records) == 2


def test_refresh_that_succeeds_again_replaces_the_certs_held() -> None:
    certs, clock = Certs(), Clock()
    verifier = PushTokenVerifier(AUDIENCE, fetch_certs=certs, certs_ttl_s=60, clock=clock)
    verifier.verify(f"Bearer {token()}")
    certs.down, clock.now = "timed out", clock.now + 61
    verifier.verify(f"Bearer {token()}")

    certs.down, clock.now = None, clock.now + 60
    certs.certs = {"google-2": OTHER_KEY[1]}
    verifier.verify(f"Bearer {token(key=OTHER_KEY, kid='google-2')}")

    with pytest.raises(InvalidToken):
        verifier.verify(f"Bearer {token()}")  # google-1 is no longer listed


def test_certs_past_the_hard_limit_are_503() -> None:
    certs, clock = Certs(), Clock()
    verifier = PushTokenVerifier(
        AUDIENCE, fetch_certs=certs, certs_ttl_s=60, certs_max_age_s=3600, clock=clock
    )
    verifier.verify(f"Bearer {token()}")
    certs.down = "name resolution failed"
    clock.now += 3600
    verifier.verify(f"Bearer {token()}")  # at the limit: still usable

    clock.now += 1
    with pytest.raises(CertsUnavailable) as caught:
        verifier.verify(f"Bearer {token()}")
    assert caught.value.status == 503
    assert "name resolution failed" in str(caught.value)


def test_without_certs_a_failed_fetch_is_not_retried_per_request() -> None:
    certs, clock = Certs(), Clock()
    certs.down = "network is unreachable"
    verifier = PushTokenVerifier(AUDIENCE, fetch_certs=certs, clock=clock)

    for _ in range(5):
        with pytest.raises(CertsUnavailable):
            verifier.verify(f"Bearer {token()}")

    assert certs.fetches == 1


@pytest.fixture
def behind_iam() -> PushTokenVerifier:
    return PushTokenVerifier(AUDIENCE, INVOKER, mode=CLOUD_RUN_IAM, fetch_certs=Certs())


def test_removed_signature_passes_behind_cloud_run_iam() -> None:
    certs = Certs()
    verifier = PushTokenVerifier(AUDIENCE, INVOKER, mode=CLOUD_RUN_IAM, fetch_certs=certs)

    verifier.verify(f"Bearer {removed(token())}")

    assert certs.fetches == 0  # the claims alone are checked: no certificates needed


def test_removed_signature_is_401_in_signature_mode(verifier: PushTokenVerifier) -> None:
    with pytest.raises(InvalidToken, match="no signature") as caught:
        verifier.verify(f"Bearer {removed(token())}")
    assert caught.value.status == 401


def test_removed_signature_is_401_by_default() -> None:
    verifier = make_verifier(AUDIENCE, INVOKER)
    assert verifier is not None

    with pytest.raises(InvalidToken):
        verifier.verify(f"Bearer {removed(token())}")


@pytest.mark.parametrize(
    "make",
    [
        lambda: removed(token(aud="https://another-service.run.app")),
        lambda: removed(token(exp=int(time.time()) - 60, iat=int(time.time()) - 3660)),
        lambda: removed(token(iat=int(time.time()) + 600, exp=int(time.time()) + 4200)),
        lambda: removed(token(iss="https://evil.example.com")),
        lambda: removed(token(exp=None)),
        lambda: f"e30.bm90IGpzb24.{REMOVED_SIGNATURE}",
        lambda: f"e30.WzFd.{REMOVED_SIGNATURE}",
        lambda: token(key=OTHER_KEY),
        lambda: unsigned(jwt.decode(token(), verify=False)),
    ],
    ids=[
        "wrong-audience",
        "expired",
        "issued-in-the-future",
        "wrong-issuer",
        "no-expiry",
        "payload-not-json",
        "payload-not-an-object",
        "real-but-bad-signature",
        "alg-none",
    ],
)
def test_invalid_token_is_401_behind_cloud_run_iam(
    behind_iam: PushTokenVerifier, make: Callable[[], str]
) -> None:
    with pytest.raises(InvalidToken) as caught:
        behind_iam.verify(f"Bearer {make()}")
    assert caught.value.status == 401


def test_expiry_allows_a_small_clock_skew_behind_cloud_run_iam(
    behind_iam: PushTokenVerifier,
) -> None:
    now = int(time.time())

    behind_iam.verify(f"Bearer {removed(token(iat=now - 3605, exp=now - 5))}")


def test_a_token_still_signed_is_verified_behind_cloud_run_iam(
    behind_iam: PushTokenVerifier,
) -> None:
    behind_iam.verify(f"Bearer {token()}")


def test_cloud_run_iam_mode_needs_the_push_account() -> None:
    with pytest.raises(ValueError, match="service account"):
        PushTokenVerifier(AUDIENCE, mode=CLOUD_RUN_IAM)
