"""HTTP for every context: a Flask app per context, problem+json errors, bodies, pagination.

What a context uses is exported here (`from shared.http import create_app, body, Page`):
- the app: `create_app(context)`, `dispatch(app, request)`, `describe(...)` (OpenAPI facts of a
  view), `health_response`, `scheduled(fn)` and `Tick` for Cloud Scheduler targets;
- bodies: `ApiModel` (requests: unknown fields refused), `OutModel` (responses), `body()`,
  `query()`, `json_body()`, `json_response()`;
- lists: `PageQuery` (`?limit=&cursor=`, `keyset(*types)`), `Page[T]`, `page()`;
- errors: the classes of `shared.errors` (re-exported) and `problem()`;
- the request: `request_id()`, `client_ip()`;
- idempotent creates: `IDEMPOTENCY_KEY` (the header every POST documented 201/202 takes,
  decision 0045), `IDEMPOTENT_REPLAYED` (the header of a replayed answer),
  `arm_idempotency_fault()` and `SimulatedCrash` for tests of the crash window.
Every error path answers RFC 9457 problem+json (`type`, `title`, `status`, `detail`, `errors`
for field problems, `request_id`); an unexpected exception is logged with its stack and
answered as a bare 500. Implementation lives in the `_`-prefixed modules beside this file.
"""

from shared.errors import (
    BadGateway,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Problem,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
)
from shared.http._app import create_app, describe, dispatch, health_response
from shared.http._bodies import (
    ApiModel,
    OutModel,
    body,
    json_body,
    json_default,
    json_response,
    query,
)
from shared.http._context import client_ip, new_traceparent
from shared.http._idempotency import HEADER as IDEMPOTENCY_KEY
from shared.http._idempotency import REPLAYED as IDEMPOTENT_REPLAYED
from shared.http._idempotency import SimulatedCrash
from shared.http._idempotency import arm_fault as arm_idempotency_fault
from shared.http._pages import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Page,
    PageQuery,
    decode_cursor,
    encode_cursor,
    page,
)
from shared.http._problem import PROBLEM_JSON, problem, request_id, validation_errors
from shared.http._scheduled import Tick, scheduled

__all__ = [
    "DEFAULT_LIMIT",
    "IDEMPOTENCY_KEY",
    "IDEMPOTENT_REPLAYED",
    "MAX_LIMIT",
    "PROBLEM_JSON",
    "ApiModel",
    "BadGateway",
    "BadRequest",
    "Conflict",
    "Forbidden",
    "NotFound",
    "OutModel",
    "Page",
    "PageQuery",
    "PayloadTooLarge",
    "Problem",
    "ServiceUnavailable",
    "SimulatedCrash",
    "Tick",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "Unprocessable",
    "arm_idempotency_fault",
    "body",
    "client_ip",
    "create_app",
    "decode_cursor",
    "describe",
    "dispatch",
    "encode_cursor",
    "health_response",
    "json_body",
    "json_default",
    "json_response",
    "new_traceparent",
    "page",
    "problem",
    "query",
    "request_id",
    "scheduled",
    "validation_errors",
]
