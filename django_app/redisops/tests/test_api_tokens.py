"""The token file (redisops.api_tokens): its format, its refusals, re-reading
it when it changes, and the command the role validates it with."""

from __future__ import annotations

import hmac
import os
import subprocess
import sys
from pathlib import Path

import pytest

from redisops import api_tokens
from redisops.api_tokens import (
    TokenFile,
    TokenFileError,
    match_client,
    parse_tokens,
    token_line,
)
from redisops.tests.conftest import APP_DIR

OLD = "old-token-of-alice-" + "a" * 24
NEW = "new-token-of-alice-" + "b" * 24
BOB = "token-of-bob-" + "c" * 30


def write(path: Path, text: str) -> None:
    """Replace the file at once, as Ansible's template module does (rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_a_file_with_comments_and_a_rotation_parses() -> None:
    text = "\n".join(
        [
            "# clients of the API",
            "",
            token_line("alice", OLD),
            "   " + token_line("alice", NEW) + "  ",
            "  # bob joined later",
            token_line("bob", BOB).upper().replace("BOB ", "bob "),  # hex any case
        ]
    )
    entries = parse_tokens(text, "f")
    assert [(e.client, e.line) for e in entries] == [
        ("alice", 3),
        ("alice", 4),
        ("bob", 6),
    ]
    assert match_client(entries, OLD) == "alice"
    assert match_client(entries, NEW) == "alice"
    assert match_client(entries, BOB) == "bob"
    assert match_client(entries, "x" * 40) is None


HASH = "ab" * 32


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        (f"alice {HASH} extra", 1, "2 fields, found 3"),
        (f"# ok\n\n{OLD}", 3, "2 fields, found 1"),  # a token pasted alone
        (f"alice {OLD}", 1, "sha256 as 64 hex digits"),  # a token, not its hash
        (f"alice {HASH[:-1]}", 1, "sha256 as 64 hex digits"),
        (f"alice {HASH}0", 1, "sha256 as 64 hex digits"),
        (f"al:ce {HASH}", 1, "client name"),
        (f"-alice {HASH}", 1, "client name"),
        (f"{'a' * 65} {HASH}", 1, "client name"),
        (f"alice {HASH}\nbob {HASH}", 2, "same hash as line 1"),
    ],
)
def test_a_malformed_line_is_refused_by_number_never_by_its_text(
    text: str, line: int, reason: str
) -> None:
    with pytest.raises(TokenFileError) as refused:
        parse_tokens(text, "APP_API_TOKENS_FILE /etc/x")
    message = str(refused.value)
    assert message.startswith(f"APP_API_TOKENS_FILE /etc/x line {line}: ")
    assert reason in message
    for field in text.splitlines()[line - 1].split():
        assert field not in message.split(": ", 1)[1]  # never the line's text


def test_a_short_token_never_authenticates_even_if_listed() -> None:
    short = "s" * (api_tokens.MIN_TOKEN_CHARS - 1)
    entries = parse_tokens(f"alice {api_tokens.token_digest(short).hex()}", "f")
    assert match_client(entries, short) is None
    with pytest.raises(ValueError, match="at least 32 characters"):
        token_line("alice", short)


def test_every_stored_hash_is_compared_in_constant_time(monkeypatch) -> None:
    """hmac.compare_digest for each entry, also after the first one matched
    (no early exit whose timing would tell which line matched)."""
    calls: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(api_tokens.hmac, "compare_digest", counting)
    lines = [token_line("alice", OLD), token_line("alice", NEW), token_line("bob", BOB)]
    entries = parse_tokens("\n".join(lines), "f")
    assert match_client(entries, OLD) == "alice"  # the first line matches
    assert calls == [e.digest for e in entries]


def test_the_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "api-tokens"
    write(path, token_line("alice", OLD) + "\n" + token_line("alice", NEW) + "\n")
    tokens = TokenFile(str(path))
    assert tokens.client_for(OLD) == tokens.client_for(NEW) == "alice"
    write(path, token_line("alice", NEW) + "\n")  # the old token revoked
    assert tokens.client_for(OLD) is None
    assert tokens.client_for(NEW) == "alice"
    write(path, token_line("alice", NEW) + "\n" + token_line("bob", BOB) + "\n")
    assert tokens.clients() == ["alice", "bob"]


def test_a_file_broken_after_start_refuses_until_fixed(tmp_path: Path) -> None:
    """No request authenticates against tokens the file no longer says:
    malformed or gone, every call raises, until a good file replaces it."""
    path = tmp_path / "api-tokens"
    write(path, token_line("alice", OLD) + "\n")
    tokens = TokenFile(str(path))
    assert tokens.client_for(OLD) == "alice"
    write(path, f"alice {OLD}\n")
    for _ in range(2):
        with pytest.raises(TokenFileError, match="line 1: the second field"):
            tokens.client_for(OLD)
    path.unlink()
    with pytest.raises(TokenFileError, match="cannot read it: No such file"):
        tokens.client_for(OLD)
    write(path, token_line("alice", OLD) + "\n")
    assert tokens.client_for(OLD) == "alice"


def run_module(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """python -m redisops.api_tokens, without any Django settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
    return subprocess.run(  # noqa: S603 - this interpreter, fixed module
        [sys.executable, "-m", "redisops.api_tokens", *args],
        cwd=APP_DIR,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_module_checks_a_file_without_django_settings(tmp_path: Path) -> None:
    """What the role's template task can run as `validate:` before the file
    replaces the one in use."""
    good = tmp_path / "good"
    good.write_text(token_line("alice", OLD) + "\n" + token_line("bob", BOB) + "\n")
    result = run_module("check", str(good))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{good}: 2 token(s) for 2 client(s)\n"
    bad = tmp_path / "bad"
    bad.write_text(f"# header\nalice {OLD}\n")
    result = run_module("check", str(bad))
    assert result.returncode == 1
    assert f"APP_API_TOKENS_FILE {bad} line 2: " in result.stderr
    assert OLD not in result.stderr


def test_the_module_makes_a_line_from_a_token_on_stdin() -> None:
    result = run_module("line", "alice", stdin=OLD + "\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == token_line("alice", OLD) + "\n"
    short = run_module("line", "alice", stdin="too-short\n")
    assert short.returncode == 1
    assert "at least 32 characters" in short.stderr
    assert "too-short" not in short.stderr
