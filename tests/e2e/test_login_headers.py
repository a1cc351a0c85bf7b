"""The real `marquee-hub serve` counts failed logins by the connection's address, never by a header a
client writes: uvicorn would otherwise take X-Forwarded-For from a local peer."""

from __future__ import annotations

import httpx
import pytest

from tests.support.processes import Hub


@pytest.mark.e2e
@pytest.mark.parametrize("hub", ["sqlite"], indirect=True)
def test_a_forwarded_for_header_does_not_buy_more_guesses(hub: Hub) -> None:
    statuses = []
    for n in range(11):  # the limit is 10 failures per address per minute
        response = httpx.get(f"{hub.url}/api/v1/sites", auth=("mallory", f"guess-{n}"), timeout=10,
                             headers={"X-Forwarded-For": f"203.0.113.{n + 1}"})
        statuses.append(response.status_code)
    refused = httpx.get(f"{hub.url}/api/v1/sites", auth=(hub.username, hub.password), timeout=10,
                        headers={"X-Forwarded-For": "198.51.100.7"})

    assert statuses == [401] * 10 + [429]
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
