"""HQ analytics: box office and occupancy from the rollups kept on ingest, and member analytics."""
