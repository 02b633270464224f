"""Who may connect and authenticate, over the network from the client host."""


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


def test_unbound_port_is_not_reachable(client, server_ip):
    # 6380 is the TLS port, closed while TLS is off: the TCP connect is refused.
    r = client.run(f"redis-cli -h {server_ip} -p 6380 PING </dev/null")
    assert "Connection refused" in r.stdout + r.stderr


def test_server_listens_only_on_bound_addresses(server, server_ip, redis_vars):
    port = redis_vars.get("redis_server_port", 6379)
    listeners = server.check_output(f"ss -Hltn 'sport = :{port}'")
    addresses = sorted(line.split()[3].rsplit(":", 1)[0] for line in listeners.splitlines())
    assert addresses == sorted(["127.0.0.1", server_ip])
