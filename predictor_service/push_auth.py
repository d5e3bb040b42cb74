"""Verify the OIDC token Pub/Sub puts on each push request (signature, audience, expiry, sender).

Cloud Run's IAM check already rejects calls without roles/run.invoker before they reach the
container; this is the in-app check the push-auth docs recommend on top of it:
https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions
"""

import logging
import threading
import time
from collections.abc import Callable, Mapping

import requests
from google.auth import exceptions as auth_exceptions
from google.auth import jwt

log = logging.getLogger(__name__)

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})

Certs = Mapping[str, str]  # key id -> PEM certificate or public key


class PushAuthError(Exception):
    """The push request is not from the expected sender; `status` is the HTTP answer."""

    status = 401


class MissingToken(PushAuthError):
    """No `Authorization: Bearer` header."""


class InvalidToken(PushAuthError):
    """Bad signature, wrong audience or issuer, expired or malformed."""


class WrongSender(PushAuthError):
    """A valid Google token, but for another account or an unverified email."""

    status = 403


class CertsUnavailable(PushAuthError):
    """Google's signing certificates could not be fetched: the request may succeed later."""

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
        fetch_certs: Callable[[], Certs] = fetch_google_certs,
        certs_ttl_s: float = 3600.0,
        clock_skew_s: int = 10,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._audience = audience
        self._service_account = service_account
        self._fetch_certs = fetch_certs
        self._certs_ttl_s = certs_ttl_s
        self._clock_skew_s = clock_skew_s
        self._clock = clock
        self._lock = threading.Lock()
        self._certs: Certs = {}
        self._fetched_at: float | None = None

    def verify(self, authorization: str | None) -> None:
        """Return if the header carries a valid token from the expected sender, else raise."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MissingToken("no Authorization: Bearer token")
        token = token.strip()
        try:
            key_id = jwt.decode_header(token).get("kid")
            claims = jwt.decode(
                token,
                certs=self._certs_for(key_id),
                audience=self._audience,
                clock_skew_in_seconds=self._clock_skew_s,
            )
        except (ValueError, auth_exceptions.GoogleAuthError) as err:
            # google-auth raises ValueError subclasses for every malformed or failed check.
            raise InvalidToken(f"push token rejected: {err}") from err
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise InvalidToken(f"push token from issuer {claims.get('iss')!r}")
        if self._service_account is None:
            return
        if claims.get("email") != self._service_account or claims.get("email_verified") is not True:
            raise WrongSender(f"push token for {claims.get('email')!r}, not the push invoker")

    def _certs_for(self, key_id: str | None) -> Certs:
        """Return cached certificates, refetched when stale or when they lack `key_id`."""
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at > self._certs_ttl_s
            # Google publishes a new key before signing with it; an unknown key id therefore
            # means our copy is old. Refetch at most once a minute so junk ids cannot flood it.
            unknown = key_id is not None and key_id not in self._certs
            if stale or (unknown and now - (self._fetched_at or 0.0) > 60.0):
                try:
                    self._certs = dict(self._fetch_certs())
                except Exception as err:  # requests, HTTP and JSON errors alike
                    raise CertsUnavailable(f"cannot fetch Google's certificates: {err}") from err
                self._fetched_at = now
            return self._certs


def make_verifier(
    audience: str | None, service_account: str | None = None
) -> PushTokenVerifier | None:
    """Return a verifier for `audience`, or None, said once in the log, when it is not set."""
    if not audience:
        # The emulator sends no token; on Cloud Run, its IAM check still guards the service.
        log.warning("PUSH_AUDIENCE is not set: push requests are accepted without a token check")
        return None
    return PushTokenVerifier(audience, service_account)
