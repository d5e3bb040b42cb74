"""Check the OIDC token Pub/Sub puts on each push request (audience, expiry, sender, signature).

Two modes, chosen by PUSH_AUTH_MODE:
- `cloud-run-iam`: the service is private. Cloud Run's IAM front door has verified the token's
  signature, audience and the caller's roles/run.invoker, and forwards it with the signature
  replaced by `SIGNATURE_REMOVED_BY_GOOGLE`
  (https://cloud.google.com/run/docs/troubleshooting), so the app can check only the claims.
- `signature`: nothing checked the token before us; verify it in full, as the push-auth docs say:
  https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions
"""

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from google.auth import exceptions as auth_exceptions
from google.auth import jwt

log = logging.getLogger(__name__)

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})
REMOVED_SIGNATURE = "SIGNATURE_REMOVED_BY_GOOGLE"
CLOUD_RUN_IAM, SIGNATURE = "cloud-run-iam", "signature"
MODES = (CLOUD_RUN_IAM, SIGNATURE)

Certs = Mapping[str, str]  # key id -> PEM certificate or public key


class PushAuthError(Exception):
    """The push request is not from the expected sender; `status` is the HTTP answer."""

    status = 401


class MissingToken(PushAuthError):
    """No `Authorization: Bearer` header."""


class InvalidToken(PushAuthError):
    """Bad or missing signature, wrong audience or issuer, expired or malformed."""


class WrongSender(PushAuthError):
    """A valid Google token, but for another account or an unverified email."""

    status = 403


class CertsUnavailable(PushAuthError):
    """No usable Google signing certificates: the request may succeed later."""

    # 503, not 401: Pub/Sub retries either way, and this failure is ours, not the sender's.
    status = 503


def fetch_google_certs(url: str = GOOGLE_CERTS_URL, timeout_s: float = 5.0) -> dict[str, str]:
    """Download Google's current ID-token signing certificates."""
    response = requests.get(url, timeout=timeout_s)
    response.raise_for_status()
    return dict(response.json())


class PushTokenVerifier:
    """Check push tokens against one audience and, optionally, one service-account email."""

    def __init__(
        self,
        audience: str,
        service_account: str | None = None,
        *,
        mode: str = SIGNATURE,
        fetch_certs: Callable[[], Certs] = fetch_google_certs,
        certs_ttl_s: float = 3600.0,
        # Google changes its signing keys only now and then, publishing the next key before it
        # signs with it and keeping the last one listed while its tokens live, so a copy half a
        # day old still verifies today's tokens through an outage of the certificate endpoint.
        # Past that, a key Google withdrew (perhaps because it leaked) would be trusted too
        # long: answering 503 until a refresh succeeds is the safer failure.
        certs_max_age_s: float = 12 * 3600.0,
        refresh_interval_s: float = 60.0,
        clock_skew_s: int = 10,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"push auth mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == CLOUD_RUN_IAM and not service_account:
            # Behind the front door the account claim is the only proof of who sent the push.
            raise ValueError(f"{CLOUD_RUN_IAM} mode needs the push service account")
        self._audience = audience
        self._service_account = service_account
        self._mode = mode
        self._fetch_certs = fetch_certs
        self._certs_ttl_s = certs_ttl_s
        self._certs_max_age_s = certs_max_age_s
        self._refresh_interval_s = refresh_interval_s
        self._clock_skew_s = clock_skew_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._certs: Certs = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._last_failure = ""

    def verify(self, authorization: str | None) -> None:
        """Return if the header carries a valid token from the expected sender, else raise."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MissingToken("no Authorization: Bearer token")
        token = token.strip()
        if token.rpartition(".")[2] == REMOVED_SIGNATURE:
            if self._mode != CLOUD_RUN_IAM:
                raise InvalidToken(
                    "push token has no signature (removed by Cloud Run's IAM check), but"
                    f" PUSH_AUTH_MODE is {self._mode}"
                )
            claims = _unverified_claims(token)
        else:
            # Cloud Run always removes the signature of a token it has checked, so a signed
            # token did not come through its IAM front door (the service was made public, or
            # the request reached the container another way). Verifying it keeps such a request
            # to the signature mode's standard instead of trusting claims anyone can write.
            claims = self._verified_claims(token)
        self._check_claims(claims)

    def _verified_claims(self, token: str) -> Mapping[str, Any]:
        try:
            key_id = jwt.decode_header(token).get("kid")
            return jwt.decode(  # type: ignore[no-any-return]
                token,
                certs=self._certs_for(key_id),
                audience=self._audience,
                clock_skew_in_seconds=self._clock_skew_s,
            )
        except (ValueError, auth_exceptions.GoogleAuthError) as err:
            # google-auth raises ValueError subclasses for every malformed or failed check.
            raise InvalidToken(f"push token rejected: {err}") from err

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise InvalidToken(f"push token from issuer {claims.get('iss')!r}")
        if claims.get("aud") != self._audience:
            raise InvalidToken(f"push token for audience {claims.get('aud')!r}")
        issued, expires = _time_claim(claims, "iat"), _time_claim(claims, "exp")
        now = self._wall_clock()
        if issued > now + self._clock_skew_s:
            raise InvalidToken("push token issued in the future")
        if expires < now - self._clock_skew_s:
            raise InvalidToken("push token expired")
        if self._service_account is None:
            return
        if claims.get("email") != self._service_account or claims.get("email_verified") is not True:
            raise WrongSender(f"push token for {claims.get('email')!r}, not the push invoker")

    def _certs_for(self, key_id: str | None) -> Certs:
        """Return the certificates held, refreshed when old or when they lack `key_id`."""
        with self._lock:
            now = self._clock()
            age = None if self._fetched_at is None else now - self._fetched_at
            # Google publishes a new key before signing with it; an unknown key id therefore
            # means our copy is old.
            unknown = key_id is not None and key_id not in self._certs
            # At most one attempt per interval, so junk key ids cannot flood the endpoint and
            # an outage of it costs one timeout a minute, not one per push.
            may_try = (
                self._attempted_at is None or now - self._attempted_at >= self._refresh_interval_s
            )
            if (age is None or age > self._certs_ttl_s or unknown) and may_try:
                age = self._refresh(now, age)
            if age is None or age > self._certs_max_age_s:
                raise CertsUnavailable(f"no usable Google certificates: {self._last_failure}")
            return self._certs

    def _refresh(self, now: float, age: float | None) -> float | None:
        """Fetch the certificates; return the age of those held afterwards."""
        self._attempted_at = now
        try:
            self._certs = dict(self._fetch_certs())
        except Exception as err:  # requests, HTTP and JSON errors alike
            self._last_failure = f"cannot fetch Google's certificates: {err}"
            held = (
                "none held"
                if age is None
                else f"those held are {age:.0f} s old, usable up to {self._certs_max_age_s:.0f} s"
            )
            log.warning("%s; %s", self._last_failure, held)
            return age
        self._fetched_at = now
        return 0.0


def _unverified_claims(token: str) -> Mapping[str, Any]:
    """The payload of a JWT, read without any signature check."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("push token is not a JWT")
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError) as err:  # bad base64, UTF-8 or JSON
        raise InvalidToken(f"push token payload unreadable: {err}") from err
    if not isinstance(claims, dict):
        raise InvalidToken("push token payload is not a JSON object")
    return claims


def _time_claim(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"push token has no numeric {name!r} claim")
    return float(value)


def make_verifier(
    audience: str | None, service_account: str | None = None, mode: str = SIGNATURE
) -> PushTokenVerifier | None:
    """Return a verifier for `audience`, or None, said once in the log, when it is not set."""
    if not audience:
        # The emulator sends no token; on Cloud Run, its IAM check still guards the service.
        log.warning("PUSH_AUDIENCE is not set: push requests are accepted without a token check")
        return None
    return PushTokenVerifier(audience, service_account, mode=mode)
