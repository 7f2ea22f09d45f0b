"""Tests of the hub: API, auth and live stream against a real uvicorn server."""
