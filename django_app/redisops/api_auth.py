"""Bearer-token authentication of the API (RFC 6750) against the token file.

``require_token`` wraps a view: without ``Authorization: Bearer <token>`` the
answer is 401 with ``WWW-Authenticate: Bearer realm="redisops"``; with a
token that matches no line of APP_API_TOKENS_FILE, 401 with
``error="invalid_token"``. A token file that cannot be read as it is now
answers 503 (no request is let in on tokens the file no longer says). On
success the view sees the client's name as ``request.api_client``.

Tokens are never logged; the client's name is, at DEBUG, and a refused
token's peer at WARNING.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse

from .api_tokens import TokenFile, TokenFileError, token_file
from .middleware import View, client_address, json_error

log = logging.getLogger(__name__)

REALM = "redisops"


def current_tokens() -> TokenFile:
    """The token file the settings name (one per process, re-read on change)."""
    path = settings.APP_API_TOKENS_FILE
    if not path:
        raise TokenFileError("APP_API_TOKENS_FILE is not set: no client is accepted")
    return token_file(path)


def check_tokens_at_start() -> None:
    """Read the token file now: the web process does not start with a file
    it cannot read (the message names the file and the line, not its text)."""
    try:
        clients = current_tokens().clients()
    except TokenFileError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    log.info("API token file read: %d client(s)", len(clients))


def challenge(message: str, error: str | None = None) -> HttpResponse:
    """401 with the Bearer challenge; ``error`` only when a token was given."""
    response = json_error(401, message)
    value = f'Bearer realm="{REALM}"'
    if error:
        value += f', error="{error}"'
    response["WWW-Authenticate"] = value
    return response


_last_file_error = ""


def _unavailable(exc: TokenFileError) -> HttpResponse:
    """503; the reason logged at ERROR once per process and reason (not on
    every request of an outage)."""
    global _last_file_error
    if str(exc) != _last_file_error:
        _last_file_error = str(exc)
        log.error("API authentication unavailable: %s", exc)
    return json_error(503, "authentication unavailable")


def authenticate(request: HttpRequest) -> str | HttpResponse:
    """The client's name, or the answer that refuses the request."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        # No credentials of ours: the challenge without an error code.
        return challenge("authentication required: Authorization: Bearer <token>")
    try:
        client = current_tokens().client_for(token.strip())
    except TokenFileError as exc:
        return _unavailable(exc)
    if client is None:
        log.warning(
            "API token refused: %s %s from %s",
            request.method,
            request.path,
            client_address(request),
        )
        return challenge("invalid token", error="invalid_token")
    return client


def require_token(view: View) -> View:
    """Let the view run only for a client with a valid token; the client's
    name is ``request.api_client`` (rate limits, ledger, task owners)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        outcome = authenticate(request)
        if isinstance(outcome, HttpResponse):
            return outcome
        request.api_client = outcome  # type: ignore[attr-defined]
        log.debug("API client %s: %s %s", outcome, request.method, request.path)
        return view(request, *args, **kwargs)

    return wrapped
