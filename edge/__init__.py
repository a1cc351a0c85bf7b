"""The site agent: reads the tills' devices, decides loyalty for each sale, journals it, syncs to the hub."""

__version__ = "0.1.0"
