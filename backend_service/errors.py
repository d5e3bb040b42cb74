"""One JSON error shape for every failure: {"error": {"code", "message", "fields"?}}."""

import json
from typing import Any, NoReturn

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException


class ApiError(HTTPException):
    """An HTTP error whose JSON body may carry field problems and extra top-level keys."""

    def __init__(
        self,
        code: int,
        message: str,
        fields: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.fields = fields
        self.extra = extra or {}


def abort_json(code: int, message: str, **kwargs: Any) -> NoReturn:
    raise ApiError(code, message, **kwargs)


def error_body(code: int, message: str, fields: dict[str, str] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def error_json(err: HTTPException) -> bytes:
    """The JSON body of an HTTP error, byte for byte as Flask's `jsonify` writes it."""
    code = err.code or 500
    if isinstance(err, ApiError):
        body = err.extra | error_body(code, err.description or "", err.fields)
    else:
        body = error_body(code, err.description or err.name)
    return (json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n").encode()


def register(app: Flask) -> None:
    """Answer every HTTP error, ours or Werkzeug's, in the one shape; never a stack trace."""

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        return Response(error_json(err), status=err.code or 500, mimetype="application/json")

    @app.errorhandler(Exception)
    def unexpected(err: Exception) -> tuple[Response, int]:
        app.logger.exception("unhandled error")
        return jsonify(error_body(500, "internal error")), 500
