"""Who may connect and authenticate, over the network from the client host."""

from dataclasses import replace


def test_client_without_credentials_is_refused(remote):
    out = remote.out(None, None, "PING")
    assert "NOAUTH" in out


# An explicit AUTH shows the server's reply on every redis-cli version (6.0's
# --user option only prints "AUTH failed").
def test_default_user_cannot_authenticate(remote):
    out = remote.out(None, None, "AUTH", "default", "anything-at-all")
    assert "WRONGPASS" in out


def test_wrong_password_is_refused(remote):
    assert "WRONGPASS" in remote.out(None, None, "AUTH", "app", "not-the-password-000")


def test_each_user_authenticates_with_its_password(remote, users):
    for name, user in users.items():
        assert remote.out(name, user["password"], "PING") == "PONG", name


def test_unbound_port_is_not_reachable(remote):
    # 6380 is the TLS port, closed while TLS is off: the TCP connect is refused.
    assert "Connection refused" in replace(remote, port=6380).out(None, None, "PING")


def test_server_listens_only_on_bound_addresses(server, server_ip, remote):
    listeners = server.check_output(f"ss -Hltn 'sport = :{remote.port}'")
    addresses = sorted(line.split()[3].rsplit(":", 1)[0] for line in listeners.splitlines())
    assert addresses == sorted(["127.0.0.1", server_ip])
