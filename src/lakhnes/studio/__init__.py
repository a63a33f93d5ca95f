"""LakhNES Studio: a local web page (FastAPI) to generate, hear, see and download chiptunes."""

#: songs a studio folder keeps by default (the oldest go first when a new one is added)
MAX_SONGS = 50


def create_app(*args, **kwargs):
    """See :func:`lakhnes.studio.app.create_app` (imported lazily: FastAPI is an optional extra)."""
    from lakhnes.studio.app import create_app as _create_app

    return _create_app(*args, **kwargs)
