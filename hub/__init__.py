"""The hub: FastAPI REST API, bearer-token auth, the live Server-Sent-Events stream and the
dashboard.

Entry points: :func:`hub.app.create_app` builds the ASGI app, :func:`hub.app.make_server` wraps it
in a uvicorn server that ends live streams on shutdown, :mod:`hub.cli` adds ``farsight hub`` and
``farsight token``.
"""
