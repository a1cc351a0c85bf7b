"""Topic builders and the parser agree, and hostile topics are refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import TopicError
from protocol.ids import ID_PATTERN
from protocol.topics import BLOCKLIST, device_topic, parse_topic, shared, site_topic

ids = st.from_regex(ID_PATTERN, fullmatch=True)


@given(ids, ids, st.sampled_from(["events", "status", "ack", "commands"]))
def test_device_topics_round_trip(site: str, device: str, kind: str) -> None:
    ref = parse_topic(device_topic(site, device, kind))  # type: ignore[arg-type]
    assert (ref.kind, ref.site_id, ref.device_id) == (kind, site, device)


def test_site_and_chain_topics() -> None:
    assert parse_topic(site_topic("riverside", "rules")).kind == "rules"
    assert parse_topic(BLOCKLIST).kind == "blocklist"
    assert shared("marquee/v1/+/+/events") == "$share/hub/marquee/v1/+/+/events"


@pytest.mark.parametrize(
    "topic",
    ["", "marquee/v2/s/d/events", "marquee/v1/s/d/other", "marquee/v1/S/d/events", "marquee/v1/s/+/events",
     "marquee/v1/s/d/events/extra", "x" * 5000],
)
def test_foreign_topics_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(topic)


@pytest.mark.parametrize("bad", ["a/b", "#", "+", "", "UPPER", "x" * 65])
def test_builders_refuse_ids_that_would_change_the_topic(bad: str) -> None:
    with pytest.raises(TopicError):
        device_topic(bad, "box", "events")
