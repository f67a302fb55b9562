"""Schemathesis checks for Kiln's contract, loaded through SCHEMATHESIS_HOOKS.

Every 4xx must carry the contract's error body: `error`, `message` and
`code` on Kiln's own routes, OpenAI's `{"error": {"message", ...}}` on
`/v1`. (5xx are caught by schemathesis's own `not_a_server_error`.)
"""

import schemathesis


@schemathesis.check
def contract_error_body(ctx, response, case):
    status = response.status_code
    if not 400 <= status < 500:
        return None
    try:
        body = response.json()
    except Exception as error:  # noqa: BLE001 - any non-JSON body fails
        raise AssertionError(f"{status} without a JSON error body: {error}")
    path = case.operation.path
    if path.startswith("/v1/"):
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            raise AssertionError(f"{status} on /v1 without OpenAI's error shape: {body!r}")
        return None
    for key in ("error", "message", "code"):
        if not isinstance(body, dict) or not isinstance(body.get(key), str):
            raise AssertionError(f"{status} without `{key}` in the error body: {body!r}")
    return None
