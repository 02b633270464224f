"""The ACL matrix on the production example: every user of the ACL file Redis runs
with (the app's users from django_app/redisops/redis_acl.py, with the vault's
passwords) against the commands no application user may run, as an attacker with a
stolen app credential would try them: from an app host, over TLS with the app's
client certificate (the only way in), on a connection of its own per command. ACL
DRYRUN (Redis 7.0, as the admin) must give the same verdicts. The matrix itself, and
how a reply is judged: redisops_testlib.acl_matrix (the default scenario runs the
same on every Redis generation)."""

import pytest
import yaml

from redisops_testlib.acl_matrix import DRYRUN_DENIED, REAL, as_expected, matrix
from redisops_testlib.hosts import run_client
from redisops_testlib.redis_cli import APP_HOST_TLS, admin
from redisops_testlib.scenario import REPO

ACL = yaml.safe_load((REPO / "playbooks/group_vars/all/app_redis_acl.yml").read_text())["redisops_app_acl"]
USERS = {u["name"]: u for u in ACL["users"]}
# The example adds no user of its own and grants nothing outside the deny list.
ALLOWED: dict[tuple[str, str], str] = {}
# As the app connects (roles/django_app: the CA and its client certificate).
TLS = APP_HOST_TLS
REDIS, TLS_PORT = "prod-redis", 6380


def _try(web, user: str, password: str, commands: list[list[str]], multi: bool) -> list[str]:
    env = {"REDIS_PASSWORD": password, **TLS}
    kw = {"address": REDIS, "port": TLS_PORT, "user": user, "commands": commands, "multi": multi}
    return run_client(web, "redis_try", env, **kw)["replies"]


def test_matrix_covers_every_user_of_the_acl_file(redis):
    live = set(admin(redis, "ACL", "USERS").split()) - {"default", "admin"}
    assert live == set(USERS)


@pytest.mark.parametrize("name", sorted(USERS))
def test_stolen_app_credential_is_refused_every_dangerous_command(web, secrets, version, name):
    rows = matrix(USERS, name, version, ALLOWED)
    password = secrets["vault_redis_passwords"][name]
    replies = _try(web, name, password, [words for _, words, _ in rows], multi=True)
    wrong = [
        f"{what}: {reply}"
        for (what, _, reason), reply in zip(rows, replies, strict=True)
        if not as_expected(what, reply, reason, version)
    ]
    assert wrong == [], f"{name}: {wrong}"
    real = [(what, words) for what, words, reason in rows if what in REAL and not reason]
    replies = _try(web, name, password, [words for _, words in real], multi=False)
    assert len(real) >= 6
    pairs = zip(real, replies, strict=True)
    ran = [f"{what}: {reply}" for (what, _), reply in pairs if not reply.startswith("-NOPERM")]
    assert ran == [], f"{name} ran: {ran}"


@pytest.mark.parametrize("name", sorted(USERS))
def test_acl_dryrun_agrees_on_every_command(web, secrets, version, name):
    assert version >= (7, 0), "the production example's Redis host is Debian 12 (Redis 7.0): ACL DRYRUN exists"
    rows = matrix(USERS, name, version, ALLOWED)
    dryruns = [["ACL", "DRYRUN", name, *words] for _, words, _ in rows]
    verdicts = _try(web, "admin", secrets["vault_redis_admin_password"], dryruns, multi=False)
    wrong = [
        f"{what}: {verdict}"
        for (what, _, reason), verdict in zip(rows, verdicts, strict=True)
        if not (verdict == "+OK" if reason else DRYRUN_DENIED.match(verdict))
    ]
    assert wrong == [], f"ACL DRYRUN {name}: {wrong}"
