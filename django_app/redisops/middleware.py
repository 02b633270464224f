"""HTTP plumbing: JSON errors (never a traceback) and the rate-limit decorator."""

from __future__ import annotations

import functools
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any

import kombu.exceptions
import redis
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

from .clients import app_redis
from .ratelimit import make_limiter
from .storage_budget import StorageBudgetExceeded, StorageBudgetUnavailable
from .write_refusals import MAX_DELAY_S, WHY, refusal_kind

log = logging.getLogger(__name__)

View = Callable[..., HttpResponse]


def json_error(status: int, error: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"error": error, **extra}, status=status)


class JsonErrorsMiddleware:
    """Turn exceptions escaping a view into JSON: 400 for an oversized body,
    503 when Redis is unreachable, refuses writes (NOREPLICAS, READONLY: with
    Retry-After) or app data is over its storage budget, 500 otherwise;
    logged, never shown."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse:
        if isinstance(exc, RequestDataTooBig):
            return json_error(
                400,
                f"body larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes",
            )
        if isinstance(exc, StorageBudgetExceeded):
            log.warning("storage budget exceeded: %s", exc)
            return json_error(503, "storage budget exceeded")
        if isinstance(exc, StorageBudgetUnavailable):
            log.error(
                "storage budget unknown, refused %s %s: %s",
                request.method,
                request.path,
                exc,
            )
            return json_error(503, "storage budget unavailable")
        kind = refusal_kind(exc)
        if kind is not None:
            # Transient (a replica catching up, a failover): the client may
            # send the request again shortly.
            log.warning(
                "redis refuses writes (%s: %s) on %s %s",
                kind,
                WHY[kind],
                request.method,
                request.path,
            )
            response = json_error(503, f"redis refuses writes: {WHY[kind]}")
            response["Retry-After"] = str(int(MAX_DELAY_S))
            return response
        if isinstance(exc, redis.RedisError):
            log.error("redis error on %s %s: %r", request.method, request.path, exc)
            return json_error(503, "redis unavailable")
        # Celery wraps the broker's connection errors (after its publish
        # retries, CELERY_TASK_PUBLISH_RETRY_POLICY) in kombu's own class.
        if isinstance(exc, kombu.exceptions.OperationalError):
            log.error("broker error on %s %s: %r", request.method, request.path, exc)
            return json_error(503, "broker unavailable")
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal error")


class CircuitBreaker:
    """Skip Redis for a while after a connection error.

    While Redis is down, every limited request would otherwise wait for the
    connect timeout (2 s) before the failure mode applies. Once tripped, the
    breaker answers "unavailable" at once for ``seconds``; the first request
    after that tries Redis again. Per process, no lock needed: a race only
    means one extra attempt.
    """

    def __init__(self) -> None:
        self._open_until = 0.0

    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    def trip(self, seconds: float) -> None:
        self._open_until = time.monotonic() + seconds

    def reset(self) -> None:
        self._open_until = 0.0


LIMITER_BREAKER = CircuitBreaker()


def _ip(value: str) -> str | None:
    """``value`` as a normalised IP address, or None. An IPv4-mapped IPv6
    address (a dual-stack socket's view of an IPv4 client) is that IPv4
    address: one client, one budget."""
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


def client_address(request: HttpRequest) -> str:
    """The client's IP address, decided by the connection, never by a setting.

    - REMOTE_ADDR is an IP: a direct TCP peer. That address is the client;
      an X-Forwarded-For it sent is its own claim and is ignored.
    - REMOTE_ADDR is not an IP (gunicorn gives a UNIX-socket peer an empty
      or path-like REMOTE_ADDR): the request came through the socket, which
      only the proxy's group may connect to. The proxy replaces
      X-Forwarded-For with the address it saw; its last entry is used.
    - Anything else (no header, not an IP): "unknown", one shared client for
      the rate limits, so a malformed header never earns a budget of its own.
    """
    peer = _ip(request.META.get("REMOTE_ADDR", ""))
    if peer is not None:
        return peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    return _ip(forwarded.rsplit(",", 1)[-1]) or "unknown"


def limited_client(request: HttpRequest) -> str:
    """Whom a rate limit counts: the authenticated client by name, wherever it
    calls from; else the address. Names cannot look like an address (the
    token file allows no ':'), so the two never share a key."""
    name = getattr(request, "api_client", None)
    return f"client:{name}" if name else client_address(request)


def rate_limit(
    *,
    scope: str,
    algorithm: str | None = None,
    limit: int | None = None,
    period: float | None = None,
    setting: str | None = None,
) -> Callable[[View], View]:
    """Limit a view per client and ``scope`` (the route).

    The client is the authenticated API client (``request.api_client``, set
    by redisops.api_auth.require_token, which must run first) as
    ``client:<name>``, and the client address (client_address) otherwise.

    Values come from the arguments or from a settings dict named ``setting``
    (keys algorithm/limit/period), read per request so tests can override.
    A denied request gets 429 with Retry-After and RateLimit-* headers; every
    answer carries the RateLimit-* headers. When Redis is unreachable,
    RATELIMIT_FAILURE_MODE decides: "open" (default) lets the request through,
    "closed" answers 503; either way it is logged. After a connection error
    Redis is skipped for RATELIMIT_BREAKER_SECONDS (LIMITER_BREAKER).
    """

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            conf = dict(getattr(settings, setting)) if setting else {}
            algo = algorithm or conf["algorithm"]
            lim = limit or conf["limit"]
            per = period or conf["period"]
            key = f"{scope}:{limited_client(request)}"

            def unavailable(reason: str) -> HttpResponse:
                mode = settings.RATELIMIT_FAILURE_MODE
                log.warning(
                    "rate limiter unreachable (%s); failing %s for %s",
                    reason,
                    mode,
                    key,
                )
                if mode == "closed":
                    return json_error(503, "rate limiter unavailable")
                return view(request, *args, **kwargs)

            if LIMITER_BREAKER.is_open():
                return unavailable("circuit open after a connection error")
            try:
                decision = make_limiter(algo, app_redis(), lim, per).hit(key)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                LIMITER_BREAKER.trip(settings.RATELIMIT_BREAKER_SECONDS)
                return unavailable(repr(exc))
            except redis.RedisError as exc:
                return unavailable(repr(exc))
            if not decision.allowed:
                response: HttpResponse = json_error(
                    429, "rate limit exceeded", retry_after=decision.retry_after
                )
            else:
                request.rate_limit = decision  # type: ignore[attr-defined]
                response = view(request, *args, **kwargs)
            for name, value in decision.headers().items():
                response[name] = value
            return response

        return wrapped

    return decorator
