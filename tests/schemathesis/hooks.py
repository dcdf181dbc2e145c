"""Teaches Schemathesis the one media type of this API it does not know: a connector upload
(`POST /v1/connectors`, `Content-Type: application/wasm`) is raw bytes."""

import schemathesis


@schemathesis.serializer("application/wasm")
def wasm(ctx, value):
    if isinstance(value, bytes):
        return {"data": value}
    return {"data": str(value).encode()}
