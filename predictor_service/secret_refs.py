"""Resolve Secret Manager references for the AWS keys, once at start-up, outside Cloud Run.

On Cloud Run the keys arrive as plain environment variables (`--set-secrets`). Elsewhere (a VM,
a laptop with application-default credentials) each may instead be given as a reference:
AWS_ACCESS_KEY_ID_SECRET=projects/P/secrets/S/versions/V (the version defaults to latest).
Values are never logged; only variable and secret names are.
"""

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

log = logging.getLogger(__name__)

RESOLVABLE = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
REF_SUFFIX = "_SECRET"
_REF = re.compile(r"^projects/[^/]+/secrets/[^/]+(/versions/[^/]+)?$")


class SecretRefError(ValueError):
    """A reference is malformed, ambiguous or cannot be read; the message names no value."""


class SecretClient(Protocol):
    def access_secret_version(self, *, request: dict[str, str]) -> Any: ...


def secret_manager_client() -> SecretClient:
    """Create the Secret Manager client (application-default credentials)."""
    from google.cloud import secretmanager  # only imported when a reference is configured

    return secretmanager.SecretManagerServiceClient()


def resolve_secret_refs(
    environ: Mapping[str, str],
    client_factory: Callable[[], SecretClient] = secret_manager_client,
    names: Iterable[str] = RESOLVABLE,
) -> dict[str, str]:
    """Return {NAME: value} for every NAME given as a NAME_SECRET reference in `environ`."""
    refs: dict[str, str] = {}
    errors: list[str] = []
    for name in names:
        ref = environ.get(name + REF_SUFFIX, "").strip()
        if not ref:
            continue
        if environ.get(name):
            errors.append(f"set {name} or {name}{REF_SUFFIX}, not both")
        elif not _REF.match(ref):
            errors.append(f"{name}{REF_SUFFIX} must be projects/P/secrets/S[/versions/V]")
        else:
            refs[name] = ref if "/versions/" in ref else ref + "/versions/latest"
    if errors:
        raise SecretRefError("; ".join(errors))
    if not refs:
        # No client, hence no credential lookup, when nothing needs resolving (Cloud Run).
        return {}
    client = client_factory()
    resolved = {}
    for name, ref in refs.items():
        try:
            response = client.access_secret_version(request={"name": ref})
        except Exception as err:  # API errors; their text names the secret, never its value
            raise SecretRefError(f"cannot read {ref} for {name}: {type(err).__name__}") from err
        # A trailing newline (`echo KEY | gcloud secrets versions add`) would break the key.
        resolved[name] = response.payload.data.decode("utf-8").strip()
        log.info("resolved a secret reference", extra={"variable": name, "secret": ref})
    return resolved
