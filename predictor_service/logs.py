"""JSON log lines that Cloud Logging reads: one object per record with severity and message.

Each service carries its own copy: the two images share no code, only the message format.
"""

import json
import logging
import sys
from typing import Any

# Cloud Logging's structured-log fields: https://cloud.google.com/logging/docs/structured-logging
_RESERVED = set(vars(logging.makeLogRecord({})))
# Their DEBUG lines print signed S3 requests, AWS access key id included: never below INFO.
_QUIET_AT_DEBUG = ("botocore", "boto3", "s3transfer", "urllib3")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object with severity, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    """Send every record to stdout as JSON, once per process."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root.handlers = [handler]
    root.setLevel(level)
    for name in _QUIET_AT_DEBUG:
        logging.getLogger(name).setLevel(logging.INFO)
