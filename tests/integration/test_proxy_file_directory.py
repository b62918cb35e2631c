"""basalt-proxy with the embedded file directory (one-machine installs): no LDAP involved."""

from __future__ import annotations

import pytest

import basalt_cluster as bc
from conftest import SHARD_HOSTS
from wire import Conn


@pytest.fixture(scope="module")
def proxy(workdir, slapd, shard_a, shard_b, certs, proxy_binary):
    users = workdir / "file-directory-users.toml"
    users.write_text(
        '[[user]]\nname = "alice"\npassword = "%s"\nshard = "a"\n\n'
        '[[user]]\nname = "carol"\npassword = "{PLAIN}carol-secret"\nshard = "b.mail.test"\n\n'
        '[[user]]\nname = "erin"\npassword = "{PLAIN}erin-secret"\nshard = "a"\nstatus = "moving"\n'
        % bc.ssha("alice-secret"))
    cfg = bc.proxy_config_dict(slapd, {"a": shard_a, "b": shard_b}, {"imap": bc.free_port()}, certs,
                               shard_hosts=SHARD_HOSTS, proxy={"auth_failure_delay_ms": 0})
    cfg["directory"] = {"backend": "file", "file": str(users)}
    p = bc.Proxy(workdir / "proxy-file-directory", proxy_binary, bc.to_toml(cfg))
    p.start()
    yield p
    p.stop()


def login(proxy, user, password):
    c = Conn(proxy.port("imap"))
    c.line()
    return c, c.command("a", f"LOGIN {user} {password}")[-1]


def test_users_from_the_file_reach_their_shards(proxy):
    c, reply = login(proxy, "alice", "alice-secret")
    assert reply.startswith("a OK [CAPABILITY ")
    assert "Shard-A-Only" in "\n".join(c.command("b", 'LIST "" "*"'))
    c, reply = login(proxy, "carol", "carol-secret")
    assert reply.startswith("a OK [CAPABILITY ")
    assert "Shard-B-Only" in "\n".join(c.command("b", 'LIST "" "*"'))


def test_wrong_password_unknown_user_and_moving_user(proxy):
    assert login(proxy, "alice", "nope")[1] == "a NO [AUTHENTICATIONFAILED] Authentication failed."
    assert login(proxy, "bob", "bob-secret")[1] == "a NO [AUTHENTICATIONFAILED] Authentication failed."
    assert login(proxy, "erin", "erin-secret")[1] == \
        "a NO [UNAVAILABLE] Account is temporarily unavailable, try again later."
