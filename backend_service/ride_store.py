"""A ride's record, the RideStore that confirmations use, and LocalRides, this process's rides.

Where the backend keeps ride state, by module:

| module             | holds                                                               |
|--------------------|---------------------------------------------------------------------|
| ride_store.py      | RideRecord; RideStore, what the routes call; LocalRides, the rides  |
|                    | this process took and the requests waiting on them                  |
| firestore_rides.py | FirestoreRides, one document per ride; SharedRides, the RideStore   |
|                    | of a deployment: Firestore for every instance, LocalRides for waits |
| firestore_lean.py  | LeanWrites: the hot writes (a ride's create, results appended in    |
|                    | batches) as plain-protobuf gRPC calls on the client's channel       |
| recorder.py        | Recorder: writes every result to Firestore in batches, from one     |
|                    | shared subscription, acking each once written                       |
| listener.py        | ResultListener: this process's results stream, which wakes waits    |
| pull_stream.py     | PullStream: the StreamingPull both read with, held by hand (acks    |
|                    | and nacks on the stream, reopened after a failure or a freeze)      |

With RIDE_STORE=memory, LocalRides is the whole store.

The verbs: `claim` takes a ride for a confirmation and says whether the caller must publish it;
`follow` waits for a ride published by another request or instance; `release` forgets a ride
whose publish failed; `complete` records a final result, the first one winning.
"""

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class RideConflict(ValueError):
    """A ride_id was reused for a different ride."""


class StoreUnavailable(RuntimeError):
    """The ride store did not answer as it should (unavailable, deadline, permission, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class RideRecord:
    ride_id: str
    fingerprint: bytes
    duration_coarse: float
    duration_final: float | None = None
    model_version: str | None = None
    # The ride as published, kept until its result comes, to publish it again if need be.
    message: bytes = field(default=b"", repr=False)
    created_at: datetime | None = None  # when the ride store first took it
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def as_json(self) -> dict[str, object]:
        if self.duration_final is None:
            return {
                "ride_id": self.ride_id,
                "duration_coarse": self.duration_coarse,
                "status": "pending",
            }
        return {
            "ride_id": self.ride_id,
            "duration_coarse": self.duration_coarse,
            "duration_final": self.duration_final,
            "model_version": self.model_version,
            "status": "done",
        }


class RideStore(Protocol):
    """Where confirmations take, look up and wait for rides: this process, or every instance."""

    def claim(
        self, ride_id: str, fingerprint: bytes, coarse: float, message: bytes
    ) -> tuple[RideRecord, bool]:
        """Return the ride's record, taking it if new, and whether the caller must publish it.

        Raise RideConflict if the ride_id was used for another ride.
        """

    def get(self, ride_id: str) -> RideRecord | None:
        """Return what is known of a ride, None if no one took it."""

    def follow(self, record: RideRecord, timeout_s: float) -> RideRecord:
        """Wait up to `timeout_s` for the final result of a ride this caller did not publish."""

    def release(self, ride_id: str) -> None:
        """Forget a ride whose publish failed, so that confirming it again publishes it."""

    def problem(self) -> str | None:
        """Why the store cannot serve now, for /readyz; None when it can."""


class LocalRides:
    """A bounded, thread-safe map of ride_id to record; the first final result wins.

    As a RideStore it holds the rides of this process only: another process, or instance,
    answers 404 for them.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self._records: OrderedDict[str, RideRecord] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity

    def add(
        self, ride_id: str, fingerprint: bytes, duration_coarse: float, message: bytes = b""
    ) -> RideRecord:
        """Return the ride's record, creating it; raise RideConflict if the ride differs."""
        with self._lock:
            record = self._records.get(ride_id)
            if record is None:
                record = RideRecord(ride_id, fingerprint, duration_coarse, message=message)
                self._insert(record)
            elif record.fingerprint != fingerprint:
                raise RideConflict(f"ride_id {ride_id!r} was already used for another ride")
            return record

    def complete(self, ride_id: str, duration_final: float, model_version: str) -> bool:
        """Record a final result; return False if the ride already had one or is unknown."""
        with self._lock:
            record = self._records.get(ride_id)
            if record is None or record.duration_final is not None:
                return False
            record.duration_final = duration_final
            record.model_version = model_version
            record.message = b""
        record.done.set()
        return True

    def pending(self, limit: int) -> list[RideRecord]:
        """Return up to `limit` rides still waiting for their result, the newest first."""
        with self._lock:
            waiting = (r for r in reversed(self._records.values()) if r.duration_final is None)
            return list(itertools.islice(waiting, limit))

    def get(self, ride_id: str) -> RideRecord | None:
        with self._lock:
            return self._records.get(ride_id)

    def claim(
        self, ride_id: str, fingerprint: bytes, coarse: float, message: bytes
    ) -> tuple[RideRecord, bool]:
        """Take the ride; a pending ride confirmed again is published again."""
        record = self.add(ride_id, fingerprint, coarse, message)
        return record, record.duration_final is None

    def follow(self, record: RideRecord, timeout_s: float) -> RideRecord:
        record.done.wait(timeout_s)
        return record

    def release(self, ride_id: str) -> None:
        """Nothing to forget: a pending ride confirmed again is published again."""

    def problem(self) -> str | None:
        return None

    def __len__(self) -> int:
        return len(self._records)

    def _insert(self, record: RideRecord) -> None:
        self._records[record.ride_id] = record
        while len(self._records) > self._capacity:
            self._records.popitem(last=False)
