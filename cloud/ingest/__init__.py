"""Ingest: MQTT in, hash chain verified, events stored idempotently with their rollups, ack out."""
