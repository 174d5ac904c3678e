"""Serving a model folder over HTTP (``bertfit serve``): FastAPI app, micro-batching, a page to try it."""
