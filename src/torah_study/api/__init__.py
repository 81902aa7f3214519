"""HTTP API: FastAPI application and routes."""
