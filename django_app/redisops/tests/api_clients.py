"""The API clients of the tests: tokens drawn per test session, and the token
file (config.settings.test APP_API_TOKENS_FILE) that lists their hashes."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.test import Client

from redisops.api_tokens import token_line

# alice is mid-rotation: her old and her new token are both listed.
ALICE = secrets.token_urlsafe(32)
ALICE_NEW = secrets.token_urlsafe(32)
BOB = secrets.token_urlsafe(32)
CLIENTS = {"alice": (ALICE, ALICE_NEW), "bob": (BOB,)}


def token_file_text(clients: dict[str, tuple[str, ...]]) -> str:
    lines = ["# test clients"]
    lines += [token_line(name, t) for name, tokens in clients.items() for t in tokens]
    return "\n".join(lines) + "\n"


def write_token_file(path: Path | str, clients: dict[str, tuple[str, ...]]) -> None:
    """Replace the file at once (write, then rename), as the role does."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(token_file_text(clients))
    os.replace(tmp, path)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_client(token: str, **defaults: str) -> Client:
    """A test client that sends this token on every request."""
    return Client(headers=bearer(token), **defaults)
