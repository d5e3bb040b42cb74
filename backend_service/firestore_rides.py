"""Ride state in Firestore (Native mode): one document per ride, seen by every backend instance."""

import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import grpc
from google.api_core import exceptions as gexc
from google.api_core import retry as retries
from google.auth.exceptions import GoogleAuthError
from google.cloud import firestore

from .firestore_lean import MAX_WRITES, LeanWrites
from .firestore_lean import RETRYABLE as RETRYABLE_CODES
from .ride_store import LocalRides, RideConflict, RideRecord, StoreUnavailable

T = TypeVar("T")

RETENTION = timedelta(days=7)
# One attempt per RPC: _call retries UNAVAILABLE itself, within the call's own deadline. (Not
# retry=None: Query.stream then fails on a stream error with AttributeError instead of the error.)
NO_RETRY = retries.Retry(predicate=lambda _exc: False)
BACKOFF_S = (0.05, 0.1, 0.2, 0.4)
# Worth another attempt within the call's deadline: every call here is safe to repeat.
RETRYABLE = (
    gexc.ServiceUnavailable,  # UNAVAILABLE
    gexc.Aborted,  # contention
    gexc.DeadlineExceeded,  # the server's; ours ends the loop, the deadline having passed
    gexc.InternalServerError,
    gexc.TooManyRequests,  # RESOURCE_EXHAUSTED
)
# A ride still pending this long after it was taken is published again when confirmed again:
# longer than taking and publishing one takes (STORE_TIMEOUT_S and PUBLISH_TIMEOUT_S, 2 + 3 s,
# and a second), so the instance that took it either published it or died before it could.
REPUBLISH_AFTER_S = 10.0
POLL_S = 0.1  # how often a confirmation reads a ride another instance publishes
# After a failure, how often /readyz reads Firestore again, and at most how often the client is
# replaced by one on a new connection.
CHECK_EVERY_S = 5.0
PROBE_ID = "_readyz"  # the document /readyz reads: absent, and that is fine


def client_from_env(project_id: str, database: str = "(default)") -> firestore.Client:
    """Build a Firestore client; FIRESTORE_EMULATOR_HOST, if set, points it at the emulator."""
    return firestore.Client(project=project_id, database=database)


class FirestoreRides:
    """Rides in one collection, one document per ride_id; the first final result wins."""

    def __init__(
        self,
        client: firestore.Client,
        collection: str = "rides",
        timeout_s: float = 2.0,
        retention: timedelta = RETENTION,
        connect: Callable[[], firestore.Client] | None = None,
    ) -> None:
        """`connect`, when given, makes a new client for `reconnect`."""
        self._name = collection
        self._rides = client.collection(collection)
        self._lean = LeanWrites(client, collection)
        self._timeout_s = timeout_s
        self._retention = retention
        self._connect = connect

    def reconnect(self) -> None:
        """Use a new client, on a new channel: after an outage, gRPC's channel waits out a
        reconnect back-off of up to two minutes, failing every call at once meanwhile."""
        if self._connect is not None:
            client = self._connect()
            self._rides = client.collection(self._name)
            self._lean = LeanWrites(client, self._name)

    def create(
        self,
        ride_id: str,
        fingerprint: bytes,
        duration_coarse: float,
    ) -> tuple[RideRecord, bool]:
        """Create the ride if absent; return (its record, whether this call created it)."""
        deadline = time.monotonic() + self._timeout_s
        ref = self._rides.document(ride_id)
        created_at = datetime.now(UTC)
        document = {
            "fingerprint": fingerprint,
            "duration_coarse": duration_coarse,
            # Read by backends of the previous release during a rolling update; `results` is
            # what this one reads and writes.
            "duration_final": None,
            "model_version": None,
            "results": [],
            "created_at": created_at,
            "expire_at": created_at + self._retention,  # the field of the TTL policy
        }
        while True:  # bounded by the deadline: every _call raises once it has passed
            try:
                self._call(
                    "create",
                    deadline,
                    lambda t: _lean(self._lean.create, ride_id, document, t),
                    expected=gexc.AlreadyExists,
                )
                record = RideRecord(ride_id, fingerprint, duration_coarse, created_at=created_at)
                return record, True
            except gexc.AlreadyExists:
                pass
            snapshot = self._call("create", deadline, lambda t: ref.get(retry=NO_RETRY, timeout=t))
            if not snapshot.exists:
                continue  # deleted (TTL) since create() failed: create it again
            record = _record(ride_id, snapshot.to_dict() or {})
            if record.fingerprint != fingerprint:
                raise RideConflict(f"ride_id {ride_id!r} was already used for another ride")
            # Its created_at is this call's if an attempt whose answer was lost created it.
            return record, record.created_at == created_at

    def complete(self, ride_id: str, duration_final: float, model_version: str) -> bool:
        """Record the final result if the ride exists (the first one recorded stays its
        result); return whether the ride exists. Raise StoreUnavailable if not recorded."""
        [outcome] = self.complete_all([(ride_id, duration_final, model_version)])
        if isinstance(outcome, StoreUnavailable):
            raise outcome
        return outcome

    def complete_all(
        self, results: Sequence[tuple[str, float, str]]
    ) -> list[bool | StoreUnavailable]:
        """Record many (ride_id, duration_final, model_version) in one BatchWrite; for each,
        whether its ride exists, or the StoreUnavailable that kept it from being recorded.

        Raise StoreUnavailable if the store answered none of them."""
        deadline = time.monotonic() + self._timeout_s
        first: dict[str, tuple[str, float, str]] = {}
        for result in results:  # a batch writes a document once: a later result cannot win
            first.setdefault(result[0], result)
        waiting = list(first.values())[:MAX_WRITES]
        outcome: dict[str, bool | StoreUnavailable] = {
            ride_id: StoreUnavailable(f"record: more than {MAX_WRITES} in one batch")
            for ride_id in list(first)[MAX_WRITES:]
        }
        backoffs, answered = iter(BACKOFF_S), False
        while waiting:
            try:
                codes = self._call(
                    "record",
                    deadline,
                    # B023 (late binding) is harmless: _call runs it before the loop moves on.
                    lambda t: _lean(self._lean.append_results, waiting, t),  # noqa: B023
                )
            except StoreUnavailable as err:
                if not answered:
                    raise  # nothing recorded: the whole batch goes back
                outcome.update((ride_id, err) for ride_id, _, _ in waiting)
                break
            answered, again = True, []
            for result, code in zip(waiting, codes, strict=True):
                if code in (grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND):
                    outcome[result[0]] = code == grpc.StatusCode.OK
                elif code in RETRYABLE_CODES:
                    again.append(result)
                outcome.setdefault(result[0], StoreUnavailable(f"record: {code.name}"))
            waiting = again
            backoff_s = next(backoffs, None)
            if backoff_s is None or time.monotonic() + backoff_s >= deadline:
                break
            if waiting:
                time.sleep(backoff_s)
        return [outcome[ride_id] for ride_id, _, _ in results]

    def get(self, ride_id: str) -> RideRecord | None:
        """Return the ride's record, or None if there is no such ride."""
        ref = self._rides.document(ride_id)
        deadline = time.monotonic() + self._timeout_s
        snapshot = self._call("get", deadline, lambda t: ref.get(retry=NO_RETRY, timeout=t))
        return _record(ride_id, snapshot.to_dict() or {}) if snapshot.exists else None

    def delete(self, ride_id: str) -> None:
        """Delete the ride's document, if there is one."""
        ref = self._rides.document(ride_id)
        deadline = time.monotonic() + self._timeout_s
        self._call("delete", deadline, lambda t: ref.delete(retry=NO_RETRY, timeout=t))

    def _call(
        self,
        what: str,
        deadline: float,
        rpc: Callable[[float], T],
        expected: type[Exception] | tuple[type[Exception], ...] = (),
    ) -> T:
        """Run `rpc(timeout)` until the deadline, retrying UNAVAILABLE; raise StoreUnavailable."""
        backoffs = iter(BACKOFF_S)
        while True:
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise StoreUnavailable(f"{what}: no answer within {self._timeout_s:g} s")
            try:
                return rpc(remaining_s)
            except expected:
                raise
            except RETRYABLE as err:
                backoff_s = next(backoffs, None)
                if backoff_s is None or time.monotonic() + backoff_s >= deadline:
                    raise StoreUnavailable(_reason(what, err)) from err
                time.sleep(backoff_s)
            except (gexc.GoogleAPIError, GoogleAuthError) as err:
                raise StoreUnavailable(_reason(what, err)) from err


class SharedRides:
    """The RideStore of a deployment: rides in Firestore, this process's waits in memory.

    The process that takes a new ride publishes it and waits on its own results stream, as
    with the memory store, so waking a confirmation costs no Firestore round trip; every result
    is also written to Firestore by the recorder (recorder.py), from the shared subscription,
    so any instance answers for any ride, and a ride whose instance died still ends done.
    """

    def __init__(
        self,
        rides: FirestoreRides,
        local: LocalRides,
        republish_after_s: float = REPUBLISH_AFTER_S,
        poll_s: float = POLL_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._rides = rides
        self._local = local
        self._republish_after_s = republish_after_s
        self._poll_s = poll_s
        self._clock = clock
        # Unknown until the first call or check: /readyz reads Firestore once before saying ready.
        self._problem: str | None = "ride store not checked yet"
        self._checked_at = -math.inf
        self._reconnected_at = -math.inf

    def claim(
        self, ride_id: str, fingerprint: bytes, coarse: float, message: bytes
    ) -> tuple[RideRecord, bool]:
        """Take a new ride once across instances; a pending one is published again only late.

        A ride another instance (or an earlier request) took is left to that publish: two
        instances racing on one new ride_id publish it once. One still pending after
        `republish_after_s` is published again, in case its publish never happened.
        """
        record, created = self._noted(lambda: self._rides.create(ride_id, fingerprint, coarse))
        if record.duration_final is not None:
            return record, False
        late = record.created_at is not None and (
            (self._clock() - record.created_at).total_seconds() > self._republish_after_s
        )
        if not (created or late):
            return record, False
        return self._local.add(ride_id, fingerprint, coarse, message), True

    def get(self, ride_id: str) -> RideRecord | None:
        """This process's record once done (its stream may beat the recorder), else Firestore's."""
        local = self._local.get(ride_id)
        if local is not None and local.duration_final is not None:
            return local
        return self._noted(lambda: self._rides.get(ride_id))

    def follow(self, record: RideRecord, timeout_s: float) -> RideRecord:
        """Read the ride again every `poll_s` until the recorder has its result, or time is up."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() + self._poll_s < deadline:
            time.sleep(self._poll_s)
            latest = self.get(record.ride_id)
            if latest is not None and latest.duration_final is not None:
                return latest
        return record

    def release(self, ride_id: str) -> None:
        """Delete the ride, best effort: left pending, it is published again once late."""
        try:
            self._noted(lambda: self._rides.delete(ride_id))
        except StoreUnavailable:
            pass

    def problem(self) -> str | None:
        """The last call's failure, checked again by a read at most every CHECK_EVERY_S."""
        if self._problem is not None and time.monotonic() - self._checked_at > CHECK_EVERY_S:
            self._checked_at = time.monotonic()
            try:
                self._noted(lambda: self._rides.get(PROBE_ID))
            except StoreUnavailable:
                pass
        return self._problem

    def _noted(self, call: Callable[[], T]) -> T:
        """Run a Firestore call, remembering whether the store answered, for /readyz."""
        try:
            result = call()
        except StoreUnavailable as err:
            self._problem = f"ride store unavailable: {err.reason}"
            if time.monotonic() - self._reconnected_at > CHECK_EVERY_S:
                self._reconnected_at = time.monotonic()
                self._rides.reconnect()  # the next call tries a fresh connection
            raise
        self._problem = None
        return result


def _lean(rpc: Callable[..., T], *args: Any) -> T:
    """Call a LeanWrites method, its gRPC errors raised as google.api_core's."""
    try:
        return rpc(*args)
    except grpc.RpcError as err:
        raise gexc.from_grpc_error(err) from err


def _record(ride_id: str, document: dict[str, Any]) -> RideRecord:
    """Build the ride's record from its stored document (done is set if it has a final result).

    Its final result is the first of `results`, unless a recorder of the previous release set
    the `duration_final` and `model_version` fields, which it did only while they were empty."""
    results = document.get("results") or []
    if document.get("duration_final") is not None:
        final = document  # set by a recorder of the previous release, during a rolling update
    else:
        final = results[0] if results else {}
    record = RideRecord(
        ride_id=ride_id,
        fingerprint=document["fingerprint"],
        duration_coarse=document["duration_coarse"],
        duration_final=final.get("duration_final"),
        model_version=final.get("model_version"),
        created_at=document.get("created_at"),
    )
    if record.duration_final is not None:
        record.done.set()
    return record


def _reason(what: str, err: Exception) -> str:
    """Say in one short line which call failed and how."""
    lines = str(err).splitlines() or [""]
    return f"{what}: {type(err).__name__}: {lines[0][:160]}"
