"""The hub's HTTP side: FastAPI app, dependencies, routes under /api/v1, health and dashboard."""
