"""Serving a router: an OpenAI-compatible endpoint (FastAPI + uvicorn) in front of the pool's models.

``app.create_app`` builds the application, ``backends`` reads the backends file, ``batching`` scores
concurrent requests together, ``metrics`` renders the Prometheus text; ``routertrain.cli.serve`` runs it.
"""
