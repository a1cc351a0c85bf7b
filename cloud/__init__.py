"""The HQ hub: ingests every site's events, stores them, and serves the API and dashboard."""

__version__ = "0.1.0"
