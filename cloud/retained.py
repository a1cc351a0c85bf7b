"""Publishing retained messages from a request (a rule bundle to every site, the chain's blocklist): one short-lived
MQTT connection that waits for the broker to take each message (QoS 1), then closes."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from cloud.errors import HubError
from cloud.settings import HubSettings


def publish_retained(settings: HubSettings, messages: Sequence[tuple[str, bytes | str]], *, what: str,
                     timeout: float = 10.0) -> None:
    """Publish each (topic, payload) retained at QoS 1; HubError, naming `what`, when the broker does not take one."""
    protocol = MQTTProtocolVersion.MQTTv5 if settings.mqtt_protocol == "5" else MQTTProtocolVersion.MQTTv311
    # Unique: two admins publishing at once must not knock each other off the broker.
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         client_id=f"{settings.mqtt_client_id}-{what}-{secrets.token_hex(4)}", protocol=protocol)
    if settings.mqtt_username:
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        client.username_pw_set(settings.mqtt_username, password)
    try:
        client.connect(settings.mqtt_host, settings.mqtt_port)
    except OSError as exc:
        raise HubError(f"cannot reach the broker at {settings.mqtt_host}:{settings.mqtt_port}: {exc}") from exc
    client.loop_start()
    try:
        for topic, payload in messages:
            info = client.publish(topic, payload, qos=1, retain=True)
            info.wait_for_publish(timeout)
            if not info.is_published():
                raise HubError(f"the broker did not take the {what} on {topic} within {timeout:g}s")
    except (RuntimeError, ValueError) as exc:  # paho: the connection went away while publishing
        raise HubError(f"the broker did not take the {what}: {exc}") from exc
    finally:
        client.disconnect()
        client.loop_stop()
