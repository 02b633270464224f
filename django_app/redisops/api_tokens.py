"""The API's bearer tokens as the hosts hold them: hashes only, in one file.

Format (APP_API_TOKENS_FILE), one accepted token per line::

    # comment
    <client name> <sha256 hex of the token>

A client may have several lines (old and new token during a rotation).
Client names are ``[A-Za-z0-9][A-Za-z0-9._-]{0,63}``: they end up in Redis
keys (rate limits, ledger, task owners) and in logs. A malformed line is
refused naming its number and never its text: a line that is not a hash may
be a token pasted by mistake.

The file is read at start and again whenever it changes (``TokenFile``), so a
rotation takes effect on the next request of every process.

Runs without Django settings, for the role that writes the file::

    python -m redisops.api_tokens check FILE    # exit 1 naming the bad line
    python -m redisops.api_tokens line CLIENT   # token on stdin -> the line
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import sys
import threading
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

# Checked where tokens are made (the role, `line` below) and on every
# candidate: a shorter token never authenticates, even if its hash is listed.
MIN_TOKEN_CHARS = 32
# RFC 6750 b64token; an upper bound keeps hashing a hostile header cheap.
MAX_TOKEN_CHARS = 512
TOKEN_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
CLIENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
HASH_RE = re.compile(r"[0-9a-fA-F]{64}")


class TokenFileError(ImproperlyConfigured):
    """The token file is missing, unreadable or malformed. The message names
    the file and the line number, never a line's text."""


@dataclass(frozen=True)
class TokenEntry:
    client: str
    digest: bytes  # sha256 of the token
    line: int


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_tokens(text: str, source: str) -> tuple[TokenEntry, ...]:
    """The entries of a token file's text; TokenFileError for the first bad
    line (its number only), or for a hash listed twice."""
    entries: list[TokenEntry] = []
    seen: dict[bytes, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise TokenFileError(
                f"{source} line {number}: expected '<client name> <sha256 hex>' "
                f"(2 fields, found {len(parts)})"
            )
        client, hexdigest = parts
        if not CLIENT_RE.fullmatch(client):
            raise TokenFileError(
                f"{source} line {number}: the client name must be 1-64 of "
                "A-Z a-z 0-9 . _ - and start with a letter or digit"
            )
        if not HASH_RE.fullmatch(hexdigest):
            raise TokenFileError(
                f"{source} line {number}: the second field must be the token's "
                "sha256 as 64 hex digits (never the token itself)"
            )
        digest = bytes.fromhex(hexdigest)
        if digest in seen:
            raise TokenFileError(
                f"{source} line {number}: the same hash as line {seen[digest]} "
                "(one token, one client)"
            )
        seen[digest] = number
        entries.append(TokenEntry(client, digest, number))
    return tuple(entries)


def read_tokens(path: str) -> tuple[tuple[int, int, int], tuple[TokenEntry, ...]]:
    """(the file's identity: inode, mtime ns, size; its entries), read from
    one open file so the two always belong together."""
    source = f"APP_API_TOKENS_FILE {path}"
    try:
        with open(path, encoding="utf-8") as f:
            st = os.fstat(f.fileno())
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise TokenFileError(f"{source}: cannot read it: {reason}") from None
    return (st.st_ino, st.st_mtime_ns, st.st_size), parse_tokens(text, source)


def match_client(entries: tuple[TokenEntry, ...], token: str) -> str | None:
    """The client whose hash matches ``token``, or None. Every stored hash is
    compared, in constant time each, whatever matched before."""
    if not (MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS):
        return None
    candidate = token_digest(token)
    found = None
    for entry in entries:
        if hmac.compare_digest(candidate, entry.digest):
            found = entry.client
    return found


@dataclass(frozen=True)
class _Snapshot:
    """What one read of the file found; replaced as one object, so a reader
    in another thread never mixes the entries of one read with the identity
    or error of another."""

    identity: tuple[int, int, int] | None  # inode, mtime ns, size
    entries: tuple[TokenEntry, ...] = ()
    error: TokenFileError | None = None


class TokenFile:
    """The token file of one path, re-read when it changes.

    Every call stats the path (one syscall, about a microsecond); when its
    inode, mtime or size differ from what was read, it is read again. So a
    rotation is in effect from the next request each process serves. A file
    that became unreadable or malformed raises TokenFileError on every call
    until it is fixed: no request authenticates against a file that cannot
    be read as it is now (no stale tokens after a revocation).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._snapshot = _Snapshot(identity=None)

    def entries(self) -> tuple[TokenEntry, ...]:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise TokenFileError(
                f"APP_API_TOKENS_FILE {self.path}: cannot read it: {exc.strerror}"
            ) from None
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        if identity != self._snapshot.identity:
            with self._lock:
                if identity != self._snapshot.identity:
                    self._snapshot = self._read(identity)
        snapshot = self._snapshot
        if snapshot.error is not None:
            raise snapshot.error
        return snapshot.entries

    def _read(self, identity: tuple[int, int, int]) -> _Snapshot:
        try:
            read_identity, entries = read_tokens(self.path)
        except TokenFileError as exc:
            # Remembered as broken until the file changes again.
            return _Snapshot(identity, error=exc)
        return _Snapshot(read_identity, entries)

    def client_for(self, token: str) -> str | None:
        return match_client(self.entries(), token)

    def clients(self) -> list[str]:
        return sorted({e.client for e in self.entries()})


_files: dict[str, TokenFile] = {}
_files_lock = threading.Lock()


def token_file(path: str) -> TokenFile:
    """The one TokenFile per path in this process."""
    with _files_lock:
        if path not in _files:
            _files[path] = TokenFile(path)
        return _files[path]


def token_line(client: str, token: str) -> str:
    """The file's line for ``token``: what the role writes. Refuses a short or
    malformed token, or a bad client name."""
    if not CLIENT_RE.fullmatch(client):
        raise ValueError(
            "client name must be 1-64 of A-Z a-z 0-9 . _ - and start with a "
            "letter or digit"
        )
    if not TOKEN_RE.fullmatch(token) or len(token) > MAX_TOKEN_CHARS:
        raise ValueError("token must be RFC 6750 characters (A-Z a-z 0-9 -._~+/=)")
    if len(token) < MIN_TOKEN_CHARS:
        raise ValueError(f"token must be at least {MIN_TOKEN_CHARS} characters")
    return f"{client} {token_digest(token).hex()}"


def main(argv: list[str]) -> int:
    usage = (
        "usage: python -m redisops.api_tokens check FILE | line CLIENT (token on stdin)"
    )
    if len(argv) != 2 or argv[0] not in {"check", "line"}:
        print(usage, file=sys.stderr)
        return 2
    command, arg = argv
    try:
        if command == "check":
            _, entries = read_tokens(arg)
            clients = sorted({e.client for e in entries})
            print(f"{arg}: {len(entries)} token(s) for {len(clients)} client(s)")
        else:
            print(token_line(arg, sys.stdin.readline().strip()))
    except (TokenFileError, ValueError) as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
