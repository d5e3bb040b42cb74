"""What this process knows of each ride, and the requests waiting for a final duration."""

import threading
from collections import OrderedDict
from dataclasses import dataclass, field


class RideConflict(ValueError):
    """A ride_id was reused for a different ride."""


@dataclass
class RideRecord:
    ride_id: str
    fingerprint: bytes
    duration_coarse: float
    duration_final: float | None = None
    model_version: str | None = None
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


class ResultStore:
    """A bounded, thread-safe map of ride_id to record; the first final result wins."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._records: OrderedDict[str, RideRecord] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity

    def begin(self, ride_id: str, fingerprint: bytes, duration_coarse: float) -> RideRecord:
        """Return the ride's record, creating it; raise RideConflict if the ride differs."""
        with self._lock:
            record = self._records.get(ride_id)
            if record is None:
                record = RideRecord(ride_id, fingerprint, duration_coarse)
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
        record.done.set()
        return True

    def get(self, ride_id: str) -> RideRecord | None:
        with self._lock:
            return self._records.get(ride_id)

    def __len__(self) -> int:
        return len(self._records)

    def _insert(self, record: RideRecord) -> None:
        self._records[record.ride_id] = record
        while len(self._records) > self._capacity:
            self._records.popitem(last=False)
