"""Schemathesis hooks for Roughy (loaded through SCHEMATHESIS_HOOKS by tests/contract/schemathesis.rs).

Each hook covers one rule that a schema cannot state; the README's Schemathesis section names
them. None of them turns a request the schema calls invalid into a valid one: a value is only
replaced when it already matches its schema, by another value that matches it too, and only in
cases generated as valid.
"""

import re
import uuid
from urllib.parse import urlsplit, urlunsplit

from hypothesis import strategies as st

import schemathesis

# The TUS PATCH body is raw bytes (`application/offset+octet-stream`), which Schemathesis has no
# generator for: this gives it one, so the PATCH operation is generated and checked like the rest.
schemathesis.openapi.media_type("application/offset+octet-stream", st.binary(max_size=4096))

CURSOR = re.compile(r"^[A-Za-z0-9_-]*$")
IDEMPOTENCY_KEY = re.compile(r"^[!-~]([ -~]*[!-~])?$")


def _without_unissued_cursor(query) -> None:
    """A list `cursor` is opaque: only a `next_cursor` the service issued is one (a value that
    merely matches the pattern is 422 validation_error, the contract's rule for a malformed
    cursor). Generated cursors that match the pattern were never issued, so they are left out
    (an absent cursor is the first page); ones that break the pattern stay, to be refused."""
    if isinstance(query, dict):
        cursor = query.get("cursor")
        if isinstance(cursor, str) and cursor and CURSOR.match(cursor):
            del query["cursor"]


def _without_unsigned_token(query) -> None:
    """An upload URL's `token` is signed by the service (direct uploads): a generated one never
    is, and a token the service did not sign is 401 whatever the bearer key says (the token
    alone decides, by design). Generated tokens are left out, so the bearer key decides."""
    if isinstance(query, dict):
        query.pop("token", None)


def _with_fresh_idempotency_key(headers) -> None:
    """An `Idempotency-Key` binds to the first request sent with it: the same key with another
    body is 422 idempotency_key_reused, by design. Schemathesis draws keys from a small space
    (its examples repeat), so a well-formed key is made unique per request."""
    if headers is not None and "Idempotency-Key" in headers:
        key = headers["Idempotency-Key"]
        if isinstance(key, str) and IDEMPOTENCY_KEY.match(key):
            headers["Idempotency-Key"] = f"st-{uuid.uuid4()}"


def _with_local_webhook_url(body) -> None:
    """A webhook URL must resolve to a public address (or any, with ROUGHY_WEBHOOK_ALLOW_PRIVATE,
    as test servers run): the example and generated hosts resolve nowhere here, and where they
    would, deliveries must never leave this machine. So a well-formed URL keeps its scheme, path
    and query, and its host becomes 127.0.0.1 on the discard port (deliveries fail there)."""
    if not isinstance(body, dict) or not isinstance(body.get("url"), str):
        return
    try:
        parts = urlsplit(body["url"])
        port = parts.port
    except ValueError:
        return
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or port == 0:
        return
    if parts.username is not None or parts.password is not None:
        return
    local = urlunsplit((parts.scheme, "127.0.0.1:9", parts.path, parts.query, parts.fragment))
    if len(local.encode()) <= 2048:
        body["url"] = local


@schemathesis.hook
def before_call(ctx: schemathesis.HookContext, case: schemathesis.Case, kwargs) -> None:
    """Every phase's requests (examples and stateful links included) pass through here. Only
    valid (positive) cases are touched: a negative case is refused whatever these values are,
    and editing it would make Schemathesis judge it anew and send headers it meant to leave out."""
    meta = case.meta
    if meta is not None and meta.generation.mode.is_negative:
        return
    _without_unissued_cursor(case.query)
    if case.operation.path == "/v1/uploads/{id}":
        _without_unsigned_token(case.query)
    _with_fresh_idempotency_key(case.headers)
    if case.operation.method.upper() == "POST" and case.operation.path == "/v1/webhooks":
        _with_local_webhook_url(case.body)
