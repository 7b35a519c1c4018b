"""Serving pipelines over HTTP: ``python -m spacy_luke serve PIPELINE`` and :func:`create_app`
(an ASGI app on FastAPI: ``pip install 'spacy-luke[serve]'``); :func:`ray_deployment` for Ray
Serve replicas (``pip install 'spacy-luke[ray]'``). Importing this package imports no web
framework: the names load when used.
"""
from .settings import ServeSettings

MISSING_SERVE = "serving needs FastAPI and uvicorn: pip install 'spacy-luke[serve]'"
__all__ = ["ServeSettings", "create_app", "ray_deployment"]


def __getattr__(name):
    if name == "create_app":
        try:
            from .app import create_app
        except ModuleNotFoundError as err:
            if err.name and err.name.split(".")[0] in ("fastapi", "starlette", "pydantic"):
                raise ImportError(MISSING_SERVE) from err
            raise
        return create_app
    if name == "ray_deployment":
        from .ray_serve import ray_deployment

        return ray_deployment
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
