"""The login guard's windows and keys, with time as an argument (no clock, no sleeps)."""

from __future__ import annotations

import pytest

from cloud.api.login_guard import MAX_TRACKED_KEYS, TRUST_SECONDS, FailureWindow, LoginGuard, Refusal, client_key


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


def test_a_client_that_signed_in_as_the_user_is_not_refused_by_the_users_window() -> None:
    g = guard()
    g.record_success(client="10.0.0.1", username="alice", now=0.0)
    for n in range(5):  # a stranger fills alice's window from five addresses
        g.record_failure(client=f"10.0.1.{n}", username="alice", now=100.0 + n)

    assert g.check(client="10.0.0.1", username="alice", now=105.0) is None  # alice's own address
    assert g.check(client="10.9.9.9", username="alice", now=105.0) == Refusal("user", 895)  # any other
    assert g.check(client="10.0.0.2", username="alice", now=105.0) == Refusal("user", 895)


def test_a_trusted_client_is_still_held_by_its_own_limit() -> None:
    g = guard()
    g.record_success(client="10.0.0.1", username="alice", now=0.0)
    for t in (1.0, 2.0, 3.0):
        g.record_failure(client="10.0.0.1", username="alice", now=t)
    assert g.check(client="10.0.0.1", username="alice", now=4.0) == Refusal("client", 57)


def test_trust_lasts_a_day_from_the_last_sign_in() -> None:
    g = guard()
    g.record_success(client="10.0.0.1", username="alice", now=0.0)
    g.record_success(client="10.0.0.1", username="alice", now=1000.0)  # a dashboard signing in again
    late = 1000.0 + TRUST_SECONDS
    for n in range(5):
        g.record_failure(client=f"10.0.1.{n}", username="alice", now=late - 10 + n)

    assert g.check(client="10.0.0.1", username="alice", now=late - 1) is None
    assert g.check(client="10.0.0.1", username="alice", now=late) == Refusal("user", 890)


def test_trust_is_per_username() -> None:
    g = guard()
    g.record_success(client="10.0.0.1", username="mallory", now=0.0)  # one valid account
    for n in range(5):
        g.record_failure(client="10.0.0.1" if n == 0 else f"10.0.1.{n}", username="alice", now=float(n))
    assert g.check(client="10.0.0.1", username="alice", now=5.0) == Refusal("user", 895)


def test_the_trusted_clients_are_bounded_and_the_least_recent_forgotten() -> None:
    g = LoginGuard(
        client_limit=3, client_window=60, user_limit=1, user_window=900, trusted_users=2, trusted_clients_per_user=2
    )
    for n, (user, client) in enumerate([("alice", "a1"), ("alice", "a2"), ("alice", "a1"), ("alice", "a3")]):
        g.record_success(client=client, username=user, now=float(n))
    g.record_success(client="b1", username="bob", now=4.0)
    g.record_success(client="c1", username="carol", now=5.0)  # three users: alice, the least recent, goes
    for user in ("alice", "bob", "carol"):
        g.record_failure(client="x", username=user, now=6.0)

    assert g.trusted_pairs == 2
    assert [g.check(client=c, username="alice", now=6.0) is None for c in ("a1", "a2", "a3")] == [False] * 3
    assert g.check(client="b1", username="bob", now=6.0) is None
    assert g.check(client="c1", username="carol", now=6.0) is None

    g = LoginGuard(
        client_limit=3, client_window=60, user_limit=1, user_window=900, trusted_users=2, trusted_clients_per_user=2
    )
    for n, client in enumerate(["a1", "a2", "a1", "a3"]):  # a1 signed in again: a2 is the least recent
        g.record_success(client=client, username="alice", now=float(n))
    g.record_failure(client="x", username="alice", now=4.0)
    assert [g.check(client=c, username="alice", now=4.0) is None for c in ("a1", "a2", "a3")] == [True, False, True]


def test_a_spray_of_usernames_does_not_unlock_a_locked_one() -> None:
    g = guard()
    for n in range(5):
        g.record_failure(client=f"10.0.1.{n}", username="alice", now=float(n))
    for n in range(MAX_TRACKED_KEYS + 100):  # one failure each, from addresses of their own
        g.record_failure(client=f"c{n}", username=f"spray-{n}", now=10.0)

    assert len(g.users) == MAX_TRACKED_KEYS
    assert g.check(client="10.9.9.9", username="alice", now=10.0) == Refusal("user", 890)


def test_keys_below_the_limit_are_forgotten_before_keys_at_it() -> None:
    window = FailureWindow(limit=2, window=60, max_keys=3)
    window.record("locked", now=0.0)
    window.record("locked", now=1.0)
    for n in range(10):
        window.record(f"k{n}", now=2.0 + n)
    assert len(window) == 3
    assert window.retry_after("locked", now=12.0) == 48.0

    # Memory wins when every key is at the limit: the least recent goes.
    window = FailureWindow(limit=1, window=60, max_keys=3)
    for n in range(5):
        window.record(f"k{n}", now=float(n))
    assert len(window) == 3
    assert [window.retry_after(f"k{n}", now=5.0) is not None for n in range(5)] == [False, False, True, True, True]


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
