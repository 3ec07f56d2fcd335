"""Serving a router: an OpenAI-compatible endpoint (FastAPI + uvicorn) in front of the pool's models.

``app.create_app`` builds the application, ``schema`` checks request bodies, ``backends`` reads the
backends file, ``batching`` scores concurrent requests together, ``metrics`` keeps the Prometheus
counters; ``routertrain.cli.serve`` runs it (ONNX Runtime on CPU: ``routertrain.hub.onnx``).
"""
