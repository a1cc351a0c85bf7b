"""The login guard's windows and keys, with time as an argument (no clock, no sleeps)."""

from __future__ import annotations

import pytest

from cloud.api.login_guard import FailureWindow, LoginGuard, Refusal, client_key


def guard() -> LoginGuard:
    return LoginGuard(client_limit=3, client_window=60, user_limit=5, user_window=900)


def test_a_client_is_refused_after_its_limit_until_its_oldest_failure_leaves_the_window() -> None:
    g = guard()
    for t in (0.0, 10.0, 20.0):
        assert g.check(client="10.0.0.1", username=f"u{t}", now=t) is None
        g.record_failure(client="10.0.0.1", username=f"u{t}", now=t)

    assert g.check(client="10.0.0.1", username="alice", now=20.5) == Refusal("client", 40)
    assert g.check(client="10.0.0.2", username="alice", now=20.5) is None  # another address is not refused
    assert g.check(client="10.0.0.1", username="alice", now=59.2) == Refusal("client", 1)  # rounded up
    assert g.check(client="10.0.0.1", username="alice", now=60.0) is None  # the failure at 0 has expired
    g.record_failure(client="10.0.0.1", username="alice", now=61.0)
    assert g.check(client="10.0.0.1", username="alice", now=61.0) == Refusal("client", 9)  # 10 + 60 - 61


def test_a_username_is_refused_from_every_address_after_its_limit() -> None:
    g = guard()
    for n in range(5):
        g.record_failure(client=f"10.0.1.{n}", username="alice", now=float(n))

    refusal = g.check(client="10.9.9.9", username="alice", now=5.0)
    assert refusal == Refusal("user", 895)
    assert refusal.detail == "too many failed logins for this user; retry in 895 s"
    assert g.check(client="10.9.9.9", username="bob", now=5.0) is None


def test_record_failure_says_what_it_blocked_once() -> None:
    g = guard()
    blocked = [g.record_failure(client="c", username="alice", now=float(t)) for t in range(6)]
    assert blocked == [[], [], ["client"], [], ["user"], []]


def test_old_keys_are_forgotten_and_the_number_of_keys_is_bounded() -> None:
    window = FailureWindow(limit=2, window=60, max_keys=100)
    for n in range(1000):
        window.record(f"k{n}", now=0.0)
    assert len(window) == 100  # the least recent were dropped, whatever an attacker sends
    window.record("late", now=61.0)
    assert len(window) == 1  # everything older than the window was pruned


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),  # one host's /64 counts as one client
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("testclient", "testclient"),
        (None, "unknown"),
    ],
)
def test_client_keys(host: str | None, key: str) -> None:
    assert client_key(host) == key
