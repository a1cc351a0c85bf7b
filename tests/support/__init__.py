"""Helpers shared by the test suite: real brokers, waiting on conditions."""
