"""A stand-in for Cloud Run's IAM front door, on loopback, for tests and drills.

A private Cloud Run service only sees requests whose Google-signed ID token names an audience
the service accepts and an account holding roles/run.invoker; Cloud Run forwards them with the
token's signature replaced by `SIGNATURE_REMOVED_BY_GOOGLE`
(https://cloud.google.com/run/docs/troubleshooting). This proxy does the same in front of a
local service, with a throwaway key standing in for Google's: it mints the tokens, serves its
certificate at CERTS_PATH in the shape of https://www.googleapis.com/oauth2/v1/certs, checks
and strips them, and forwards the request.

The audiences accepted are the ones Cloud Run documents: the service's run.app URL, which
"always remains an accepted audience value", and the custom audiences set on the service, which
apply "to all serving revisions" (https://cloud.google.com/run/docs/configuring/custom-audiences).
They are the service's, whichever of its URLs the request was sent to. A request to
`https://TAG---<service host>` reaches the revision tagged TAG, traffic or not
(https://cloud.google.com/run/docs/triggering/https-request#deterministic); the double routes it
by its Host header. A tag URL is not among the documented audiences, so the double refuses a
token for one unless it is set as a custom audience: what passes here passes on Cloud Run.
"""

import http.client
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt
from google.auth import exceptions as auth_exceptions

log = logging.getLogger(__name__)

ISSUER = "https://accounts.google.com"
# Cloud Run's literal, written out here rather than imported from the predictor, so that the
# double says what Cloud Run does whatever the app under test believes.
REMOVED_SIGNATURE = "SIGNATURE_REMOVED_BY_GOOGLE"
CERTS_PATH = "/_frontdoor/certs"  # a path no service of this project serves
# Hop-by-hop headers describe one connection, not the request (RFC 9110 7.6.1); Host and
# Content-Length are set anew for the next hop. None is passed on as it came.
NOT_FORWARDED = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding"}
    | {"upgrade", "host", "content-length"}
)


class Refused(Exception):
    """The front door turns the request away; `status` is Cloud Run's answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class FrontDoor:
    """Admit callers with a valid token from an invoker, strip its signature, forward upstream."""

    def __init__(
        self,
        invokers: Iterable[str],
        upstream: str | None = None,
        timeout_s: float = 30.0,
        *,
        service_url: str | None = None,
        custom_audiences: Iterable[str] = (),
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Bind a loopback port now (so `url` is known); serve once `start` is called.

        `service_url` is the URL Cloud Run gave the service (default: the loopback `url`);
        `tags` maps a revision tag to the upstream that revision is, reached at `tag_url(tag)`.
        """
        self.invokers = frozenset(invokers)
        self.upstream = upstream  # may be set later: the service needs `url` before it starts
        self.tags = dict(tags or {})
        self.custom_audiences = tuple(custom_audiences)
        self.timeout_s = timeout_s
        self.forwarded: list[str] = []  # "METHOD URL" of every request let through, as sent
        self.refused: list[int] = []  # the status of every request turned away
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = uuid.uuid4().hex
        self.certificate = _self_signed(key)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._signer = crypt.RSASigner.from_string(private_pem, key_id=self.key_id)
        self._server = _Server(self)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self.service_url = service_url or self.url
        self.audience = self.service_url  # Cloud Run's default audience is the service URL
        self.certs_url = self.url + CERTS_PATH
        self._thread: threading.Thread | None = None

    def start(self) -> "FrontDoor":
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> "FrontDoor":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def audiences(self) -> tuple[str, ...]:
        """What Cloud Run accepts as a token's audience: the service URL, its custom audiences."""
        return (self.service_url, *self.custom_audiences)

    def tag_url(self, tag: str) -> str:
        """The URL of the revision tagged `tag`: `TAG---` before the service's host."""
        parts = urlsplit(self.service_url)
        return f"{parts.scheme}://{tag}---{parts.netloc}"

    def target(self, url: str) -> tuple[str, dict[str, str]]:
        """Where to send a request for `url`, one of the service's URLs, and its Host header.

        The service's hosts are names only: the request goes to the loopback port and names the
        host it was meant for, as the request to Cloud Run's front end would.
        """
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return f"{self.url}{path or '/'}", {"Host": parts.netloc}

    def url_of(self, host: str) -> str:
        """The URL a request naming `host` was sent to: the loopback one, or a service URL."""
        loopback = urlsplit(self.url)
        scheme = loopback.scheme if host == loopback.netloc else urlsplit(self.service_url).scheme
        return f"{scheme}://{host}"

    def route(self, host: str) -> str:
        """The upstream a request to `host` reaches: a tagged revision, or the service's own."""
        service_host = urlsplit(self.service_url).netloc
        tag, sep, rest = host.partition("---")
        if sep and rest == service_host:
            if tag not in self.tags:
                raise Refused(404, f"no revision is tagged {tag!r}")
            return self.tags[tag]
        if host not in (service_host, urlsplit(self.url).netloc):
            raise Refused(404, f"{host} is none of this service's URLs")
        if self.upstream is None:
            raise Refused(503, "no upstream service yet")
        return self.upstream

    def certs(self) -> dict[str, str]:
        """The signing certificates by key id, as Google's v1 certs endpoint lists them."""
        return {self.key_id: self.certificate}

    def mint(self, email: str, *, lifetime_s: int = 3600, **claims: object) -> str:
        """Return an ID token for `email`, signed as Google would sign it for Pub/Sub."""
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": self.audience,
            "azp": "1" + uuid.uuid4().hex[:20],
            "sub": "1" + uuid.uuid4().hex[:20],
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + lifetime_s,
        } | claims
        return jwt.encode(self._signer, payload).decode()

    def admit(self, authorization: str | None) -> str:
        """Return the Authorization header to forward, or raise Refused as Cloud Run would."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            # Anonymous callers lack run.invoker on a private service: Cloud Run answers 403.
            raise Refused(403, "Your client does not have permission to get this URL")
        try:
            claims = jwt.decode(
                token, certs=self.certs(), audience=list(self.audiences), clock_skew_in_seconds=10
            )
        except (ValueError, auth_exceptions.GoogleAuthError) as err:
            # A token Cloud Run cannot accept (signature, audience, expiry) is a 401.
            reason = f"The request was not authorized to invoke this service: {err}"
            raise Refused(401, reason) from err
        if claims.get("iss") != ISSUER:
            raise Refused(401, f"The request was not authorized: issuer {claims.get('iss')!r}")
        email = claims.get("email")
        if claims.get("email_verified") is not True or email not in self.invokers:
            raise Refused(403, f"{email} does not have permission to invoke this service")
        return f"Bearer {token.rpartition('.')[0]}.{REMOVED_SIGNATURE}"

    def forward(
        self, upstream: str, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send the admitted request to `upstream`; return its status, headers and body."""
        target = urlsplit(upstream)
        connection = http.client.HTTPConnection(
            target.hostname or "127.0.0.1", target.port, timeout=self.timeout_s
        )
        try:
            connection.request(method, path, body=body, headers=dict(headers))
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        except (OSError, http.client.HTTPException) as err:
            raise Refused(503, f"upstream unavailable: {err}") from err
        finally:
            connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a stuck upstream call must not hold up stop()

    def __init__(self, door: FrontDoor) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.door = door


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        if self.path == CERTS_PATH:
            self._reply(200, json.dumps(self.server.door.certs()).encode(), "application/json")
        else:
            self._proxy()

    def _proxy(self) -> None:
        door = self.server.door
        host = self.headers.get("Host") or urlsplit(door.url).netloc
        try:
            upstream = door.route(host)
            authorization = door.admit(self.headers.get("Authorization"))
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                # Pub/Sub sends a Content-Length; a chunked body is beyond this double.
                raise Refused(411, "send a Content-Length")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            skip = NOT_FORWARDED | {"authorization"}
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in skip]
            headers += [
                ("Authorization", authorization),
                ("X-Forwarded-For", self.client_address[0]),
            ]
            status, reply_headers, reply = door.forward(
                upstream, self.command, self.path, headers, body
            )
        except Refused as refused:
            door.refused.append(refused.status)
            self._reply(refused.status, f"{refused}\n".encode(), "text/plain")
            return
        door.forwarded.append(f"{self.command} {door.url_of(host)}{self.path}")
        self.send_response(status)
        for name, value in reply_headers:
            if name.lower() not in NOT_FORWARDED:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_POST = do_PUT = do_PATCH = do_DELETE = _proxy

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("frontdoor: " + format, *args)


def _self_signed(key: rsa.RSAPrivateKey) -> str:
    """A PEM certificate for `key`, as Google publishes one per signing key."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "frontdoor.invalid")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()
