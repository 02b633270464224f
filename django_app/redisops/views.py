"""The JSON API. Bad input answers 400 with a reason, a wrong method 405,
Redis down 503. A bug still answers 500, as JSON without a traceback (the
details are logged; redisops.middleware)."""

from __future__ import annotations

import functools
import json
import logging
import re
import uuid
from collections.abc import Callable
from functools import cache
from typing import Any

import redis
from celery import current_app
from celery import states as celery_states
from celery.result import AsyncResult
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from . import pubsub, streams, task_owners, tasks
from .api_auth import require_token
from .clients import app_redis, redis_client
from .middleware import json_error, rate_limit
from .storage_budget import check_storage_budget
from .streams.acks import DLQ_FIELD_PREFIX
from .streams.demo_failures import DEMO_FIELDS
from .version import DISTRIBUTION, get_version

log = logging.getLogger(__name__)

# Used with fullmatch: "$" would also accept a trailing newline ("news\n").
TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_STREAM_FIELDS = 32
MAX_FIELD_NAME = 64
MAX_FIELD_VALUE = 4096
# Inclusive bounds for the integer arguments the API accepts.
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "x": (-(10**12), 10**12),
    "y": (-(10**12), 10**12),
    "size_kib": (1, 256),
    "rounds": (1, 200),
    "failures": (0, 5),
    "amount": (-(10**9), 10**9),
}
MAX_STR_ARG = 200


class BadRequestError(Exception):
    """Input we refuse; the message is the reason shown to the client."""


def utf8_len(text: str) -> int:
    """Bytes Redis stores for ``text`` (json_body refused what cannot be
    encoded)."""
    return len(text.encode())


def parse_count(text: str, low: int, high: int, name: str = "count") -> int:
    """A decimal integer in [low, high] from a query string, or BadRequestError.
    ASCII digits only: "²".isdigit() is True, but int("²") raises."""
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise BadRequestError(f"{name} must be an integer {low}-{high}")
    return int(text)


def methods(
    *allowed: str,
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Allow only these methods (HEAD with GET); others get a JSON 405."""
    allowed_set = set(allowed) | ({"HEAD"} if "GET" in allowed else set())

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in allowed_set:
                response = json_error(405, f"method {request.method} not allowed")
                response["Allow"] = ", ".join(sorted(allowed_set))
                return response
            try:
                return view(request, *args, **kwargs)
            except BadRequestError as exc:
                return json_error(400, str(exc))

        return csrf_exempt(wrapped)  # JSON API without cookie auth

    return decorator


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request body as a JSON object, or BadRequestError."""
    content_type = request.content_type or ""
    if content_type != "application/json":
        raise BadRequestError("Content-Type must be application/json")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadRequestError("invalid Content-Length") from None
    if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        raise BadRequestError(
            f"request body larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"
        )
    try:
        data = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError):
        raise BadRequestError("malformed JSON") from None
    except RecursionError:
        raise BadRequestError("malformed JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise BadRequestError("JSON body must be an object")
    try:
        # JSON may escape a lone surrogate ("\ud800"), which no UTF-8 client
        # (ours to Redis included) can encode: refuse it here, not as a 500.
        json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise BadRequestError("malformed JSON: a lone surrogate escape") from None
    return data


def only_fields(data: dict[str, Any], *allowed: str) -> None:
    """Refuse what the route does not know: a typo or a guess is an error,
    never silently ignored."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        shown = [name[:MAX_FIELD_NAME] for name in unknown[:5]]
        raise BadRequestError(f"unknown field(s) {shown}; allowed: {list(allowed)}")


def field(data: dict[str, Any], name: str, kind: type, *, required: bool = True) -> Any:
    if name not in data:
        if required:
            raise BadRequestError(f"missing field {name!r}")
        return None
    value = data[name]
    # bool is an int in Python, never in our API.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequestError(f"field {name!r} must be {kind.__name__}")
    if kind is int and name in INT_BOUNDS:
        low, high = INT_BOUNDS[name]
        if not low <= value <= high:
            raise BadRequestError(f"field {name!r} must be between {low} and {high}")
    if kind is str and not 0 < len(value) <= MAX_STR_ARG:
        raise BadRequestError(f"field {name!r} must be 1-{MAX_STR_ARG} characters")
    return value


# -- health --------------------------------------------------------------------
@methods("GET")
def healthz(request: HttpRequest) -> HttpResponse:
    """The process answers; no dependency is checked."""
    return JsonResponse({"status": "ok", "version": get_version()})


@methods("GET")
def version(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"name": DISTRIBUTION, "version": get_version()})


@cache
def _probe_client(url: str) -> redis.Redis:
    return redis_client(url, socket_timeout=2.0, health_check_interval=0)


def _check(
    checks: dict[str, dict[str, bool]], name: str, probe: Callable[[], Any]
) -> None:
    """Run one readiness probe. The answer says only ok or not; why is logged
    (exception texts can name hosts, users, paths)."""
    try:
        probe()
        checks[name] = {"ok": True}
    except Exception as exc:
        log.warning("readyz: %s failed: %s: %s", name, type(exc).__name__, exc)
        checks[name] = {"ok": False}


@methods("GET")
def readyz(request: HttpRequest) -> HttpResponse:
    """Every Redis purpose and the database answer; beat's heartbeat is fresh."""
    checks: dict[str, dict[str, bool]] = {}
    for purpose in (
        "REDIS_BROKER_URL",
        "REDIS_RESULT_URL",
        "REDIS_CACHE_URL",
        "REDIS_APP_URL",
    ):
        url = settings.REDIS_URLS[purpose]
        _check(
            checks,
            purpose.removesuffix("_URL").lower(),
            lambda u=url: _probe_client(u).ping() and None,
        )

    def database() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    def heartbeat() -> None:
        tasks.check_heartbeat(app_redis(), settings.APP_HEARTBEAT_MAX_AGE)

    _check(checks, "database", database)
    _check(checks, "beat_heartbeat", heartbeat)
    ready = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {
            "status": "ready" if ready else "not ready",
            "version": get_version(),
            "checks": checks,
        },
        status=200 if ready else 503,
    )


# -- tasks -----------------------------------------------------------------------
@methods("POST")
@require_token
@rate_limit(scope="api-tasks", setting="APP_RATE_TASKS")
def enqueue_task(request: HttpRequest) -> HttpResponse:
    data = json_body(request)
    only_fields(data, "task", "args", "countdown")
    name = field(data, "task", str)
    if name not in tasks.API_TASKS:
        raise BadRequestError(
            f"unknown task {name!r}; known: {sorted(tasks.API_TASKS)}"
        )
    spec = tasks.API_TASKS[name]
    args = data.get("args", {})
    if not isinstance(args, dict):
        raise BadRequestError("field 'args' must be an object")
    unknown = set(args) - set(spec.args)
    if unknown:
        shown = sorted(a[:MAX_FIELD_NAME] for a in unknown)[:5]
        raise BadRequestError(f"unknown argument(s) for {name}: {shown}")
    kwargs = {arg: field(args, arg, kind) for arg, kind in spec.args.items()}
    countdown = field(data, "countdown", int, required=False) or 0
    if not 0 <= countdown <= settings.APP_MAX_COUNTDOWN:
        raise BadRequestError(
            f"countdown must be 0-{settings.APP_MAX_COUNTDOWN} seconds"
        )
    client = request.api_client  # type: ignore[attr-defined]
    if spec.per_client:
        kwargs["client"] = client
    if spec.writes_app_data:
        check_storage_budget(f"task {name} for {client}")
    task_id = task_owners.enqueue_owned(client, spec.task, kwargs, countdown or None)
    log.info("enqueued %s as %s for %s", name, task_id, client)
    return JsonResponse({"task_id": task_id, "task": name}, status=202)


@methods("GET")
@require_token
@rate_limit(scope="api-read", setting="APP_RATE_READ")
def task_result(request: HttpRequest, task_id: str) -> HttpResponse:
    try:
        uuid.UUID(task_id)
    except ValueError:
        raise BadRequestError("task id must be a UUID") from None
    # Only the client that enqueued it; another's id and an unknown one get
    # the same answer, so ids cannot be probed.
    if task_owners.owner_of(task_id) != request.api_client:  # type: ignore[attr-defined]
        return json_error(404, "task not found")
    # The app the tasks are bound to (config.celery_app in every process);
    # an app module does not import its project.
    result = AsyncResult(task_id, app=current_app)
    # One read of the state: each of ready(), successful() and failed() reads it
    # again until it is final, and a task finishing in between gave a mixed
    # answer (state STARTED with the error of its FAILURE). A final state is
    # cached, so result.result below comes from the same read.
    state = result.state
    body: dict[str, Any] = {
        "task_id": task_id,
        "state": state,
        "ready": state in celery_states.READY_STATES,
    }
    if state == celery_states.SUCCESS:
        body["result"] = result.result
    elif state == celery_states.FAILURE:
        # The message can carry data, hosts or paths: the log gets it, the
        # caller gets the exception's class and the id to look it up with.
        exc = result.result
        log.warning("task %s failed: %s: %s", task_id, type(exc).__name__, exc)
        body["error"] = type(exc).__name__
    return JsonResponse(body)


# -- pub/sub ---------------------------------------------------------------------
@methods("POST")
@require_token
@rate_limit(scope="api-publish", setting="APP_RATE_PUBLISH")
def publish(request: HttpRequest) -> HttpResponse:
    data = json_body(request)
    only_fields(data, "topic", "message")
    topic = data.get("topic")
    if not isinstance(topic, str) or not TOPIC_RE.fullmatch(topic):
        raise BadRequestError("field 'topic' must match [A-Za-z0-9._-]{1,64}")
    message = data.get("message")
    if not isinstance(message, str) or not 0 < utf8_len(message) <= (
        pubsub.MAX_MESSAGE_BYTES
    ):
        raise BadRequestError(
            f"field 'message' must be a string of 1-{pubsub.MAX_MESSAGE_BYTES} "
            "bytes (UTF-8)"
        )
    # The listeners record every message: application data.
    client = request.api_client  # type: ignore[attr-defined]
    check_storage_budget(f"POST /api/publish for {client}")
    receivers = pubsub.publish(app_redis(), topic, message)
    body = {"channel": pubsub.channel_for(topic), "receivers": receivers}
    if receivers == 0:
        body["warning"] = "no subscriber: Pub/Sub dropped the message"
    return JsonResponse(body)


@methods("GET")
@require_token
@rate_limit(scope="api-read", setting="APP_RATE_READ")
def pubsub_status(request: HttpRequest) -> HttpResponse:
    count = parse_count(request.GET.get("count", "20"), 1, 1000)
    client = app_redis()
    return JsonResponse(
        {
            "listeners": pubsub.listeners(client),
            "received": pubsub.received(
                client, settings.APP_PUBSUB_RECORD_STREAM, count
            ),
        }
    )


# -- streams -----------------------------------------------------------------------
@methods("GET", "POST")
@require_token
def stream(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _stream_produce(request)
    return _stream_progress(request)


@rate_limit(scope="api-read", setting="APP_RATE_READ")
def _stream_progress(request: HttpRequest) -> HttpResponse:
    return JsonResponse(
        streams.progress(app_redis(), settings.APP_STREAM, settings.APP_STREAM_GROUP)
    )


def reserved_stream_field(name: str) -> bool:
    """Names the API never writes into the stream, whatever
    APP_STREAM_DEMO_FAILURES says: the demo failure rules' (work_ms, poison,
    depends_on) and the dead-letter fields (dlq_*). In any case, so a later
    handler that folds case cannot be reached either. Demos and tests that
    need such entries XADD them directly, as an admin."""
    folded = name.lower()
    return folded in DEMO_FIELDS or folded.startswith(DLQ_FIELD_PREFIX)


@rate_limit(scope="api-stream", setting="APP_RATE_STREAM")
def _stream_produce(request: HttpRequest) -> HttpResponse:
    data = json_body(request)
    only_fields(data, "fields")
    fields = data.get("fields")
    if not isinstance(fields, dict) or not 0 < len(fields) <= MAX_STREAM_FIELDS:
        raise BadRequestError(
            f"field 'fields' must be an object with 1-{MAX_STREAM_FIELDS} entries"
        )
    for key, value in fields.items():
        if not 0 < len(key) <= MAX_FIELD_NAME:
            raise BadRequestError(
                f"invalid field name {key[:MAX_FIELD_NAME]!r}: 1-{MAX_FIELD_NAME} "
                "characters"
            )
        if reserved_stream_field(key):
            raise BadRequestError(
                f"field name {key!r} is reserved (demo failure rules and "
                "dead-letter fields are not accepted through the API)"
            )
        if not isinstance(value, str) or len(value) > MAX_FIELD_VALUE:
            raise BadRequestError(
                f"field {key!r} must be a string of at most {MAX_FIELD_VALUE} chars"
            )
    size = sum(utf8_len(k) + utf8_len(v) for k, v in fields.items())
    if size > settings.APP_STREAM_ENTRY_MAX_BYTES:
        raise BadRequestError(
            f"entry is {size} bytes; at most {settings.APP_STREAM_ENTRY_MAX_BYTES} "
            "(field names and values, UTF-8)"
        )
    client = request.api_client  # type: ignore[attr-defined]
    check_storage_budget(f"POST /api/stream for {client}")
    entry_id = streams.produce(
        app_redis(), settings.APP_STREAM, fields, settings.APP_STREAM_MAXLEN
    )
    return JsonResponse({"id": entry_id, "stream": settings.APP_STREAM}, status=201)


# -- rate limited ------------------------------------------------------------------
@methods("GET", "POST")
@rate_limit(scope="api-limited", setting="APP_LIMITED_ENDPOINT")
def limited(request: HttpRequest) -> HttpResponse:
    decision = getattr(request, "rate_limit", None)
    return JsonResponse(
        {"ok": True, "remaining": decision.remaining if decision else None}
    )


# -- error handlers (urls.handler*) --------------------------------------------------
def bad_request(
    request: HttpRequest, exception: Exception | None = None
) -> HttpResponse:
    return json_error(400, "bad request")


def permission_denied(
    request: HttpRequest, exception: Exception | None = None
) -> HttpResponse:
    return json_error(403, "forbidden")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return json_error(404, "not found")


def server_error(request: HttpRequest) -> HttpResponse:
    return json_error(500, "internal error")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return json_error(403, "CSRF check failed")
