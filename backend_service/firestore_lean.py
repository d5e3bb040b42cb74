"""The two Firestore writes on the hot path, called on the client's channel with plain protobuf.

Every confirmation of a new ride creates its document, and every result is written to one:
through the official client's DocumentReference these cost about 1 ms and 2.4 ms of Python a
call (docs/benchmarks.md), most of it in proto-plus wrappers, retry wrappers and the read before
the conditional write. Here the same RPCs take plain protobuf messages, as ride_stream's
group-commit publisher does for Pub/Sub, on the channel (and credentials) of the official client:

- `create`: Commit of one write that applies only if the document does not exist yet.
- `append_results`: BatchWrite of many writes, each applied or refused on its own. Each appends
  the ride's result to its `results` array (arrayUnion) if the ride exists: the first result
  recorded stays first, a redelivered one is not added twice, and no read is needed.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import grpc
from google.cloud import firestore
from google.cloud.firestore_v1.types import common, document, write
from google.cloud.firestore_v1.types import firestore as api

_Commit, _CommitResponse = api.CommitRequest.pb(), api.CommitResponse.pb()
_BatchWrite, _BatchWriteResponse = api.BatchWriteRequest.pb(), api.BatchWriteResponse.pb()
_Write, _Document, _Precondition = (
    write.Write.pb(),
    document.Document.pb(),
    common.Precondition.pb(),
)
_Transform = write.DocumentTransform.pb().FieldTransform

RESULTS = "results"  # the array field a ride's results are appended to, the first one winning
# Codes worth another attempt within the call's deadline (both writes are idempotent: a create
# that landed is recognised by its created_at, an appended result is not appended twice).
RETRYABLE = frozenset(
    {
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNAVAILABLE,
    }
)
MAX_WRITES = 500  # Firestore's limit of writes in one BatchWrite
_CODES = {code.value[0]: code for code in grpc.StatusCode}


class LeanWrites:
    """Commit and BatchWrite on the channel of `client`, for documents of one collection."""

    def __init__(self, client: firestore.Client, collection: str) -> None:
        self._database = client._database_string
        self._prefix = f"{self._database}/documents/{collection}/"
        # The client's own metadata (the database's resource prefix, the emulator's token) and
        # the routing header its generated client adds.
        self._metadata = (
            *client._rpc_metadata,
            ("x-goog-request-params", f"database={quote(self._database, safe='')}"),
        )
        channel = client._firestore_api.transport.grpc_channel
        self._commit = channel.unary_unary(
            "/google.firestore.v1.Firestore/Commit",
            request_serializer=_Commit.SerializeToString,
            response_deserializer=_CommitResponse.FromString,
        )
        self._batch_write = channel.unary_unary(
            "/google.firestore.v1.Firestore/BatchWrite",
            request_serializer=_BatchWrite.SerializeToString,
            response_deserializer=_BatchWriteResponse.FromString,
        )

    def create(self, ride_id: str, fields: dict[str, Any], timeout_s: float) -> None:
        """Create the document; raise grpc.RpcError (ALREADY_EXISTS if it is there)."""
        doc = _Document(name=self._prefix + ride_id)
        for key, value in fields.items():
            _set(doc.fields[key], value)
        request = _Commit(
            database=self._database,
            writes=[_Write(update=doc, current_document=_Precondition(exists=False))],
        )
        self._commit(request, metadata=self._metadata, timeout=timeout_s)

    def append_results(
        self, results: Sequence[tuple[str, float, str]], timeout_s: float
    ) -> list[grpc.StatusCode]:
        """Append each (ride_id, duration_final, model_version) to its ride's results, if the
        ride exists; one ride_id at most once. Return each write's code (NOT_FOUND: no ride)."""
        writes = []
        for ride_id, duration_final, model_version in results:
            transform = _Transform(field_path=RESULTS)
            value = transform.append_missing_elements.values.add().map_value.fields
            value["duration_final"].double_value = duration_final
            value["model_version"].string_value = model_version
            target = _Write(
                update=_Document(name=self._prefix + ride_id),
                update_transforms=[transform],
                current_document=_Precondition(exists=True),
            )
            target.update_mask.SetInParent()  # an empty mask: no field but the transform
            writes.append(target)
        request = _BatchWrite(database=self._database, writes=writes)
        response = self._batch_write(request, metadata=self._metadata, timeout=timeout_s)
        return [_CODES.get(status.code, grpc.StatusCode.UNKNOWN) for status in response.status]


def _set(value: Any, python: Any) -> None:
    """Fill a Firestore Value from the few Python types a ride's document holds."""
    if python is None:
        value.null_value = 0
    elif isinstance(python, bytes):
        value.bytes_value = python
    elif isinstance(python, float | int) and not isinstance(python, bool):
        value.double_value = float(python)
    elif isinstance(python, str):
        value.string_value = python
    elif isinstance(python, datetime):
        value.timestamp_value.FromDatetime(python)
    elif isinstance(python, list) and not python:
        value.array_value.SetInParent()
    else:
        raise TypeError(f"no Firestore value for {type(python).__name__}")
