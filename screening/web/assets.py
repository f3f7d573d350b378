"""The console's stylesheets (static/: simple.css, vendored, and ours), served from the
package under /static/ with a year's cache. Pages link a file by a URL that carries a hash
of its content, so a release that changes a file changes its URL and no browser keeps the
old one."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
#: Safe with the hashed URLs: a changed file is asked for under a new one.
CACHE = "public, max-age=31536000, immutable"


@functools.cache
def url(name: str) -> str:
    """`/static/NAME?v=HASH` for a template's link (read once per process)."""
    digest = hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]
    return f"/static/{name}?v={digest}"


class _Cached(StaticFiles):
    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = CACHE
        return response


def mount() -> Mount:
    return Mount("/static", app=_Cached(directory=STATIC), name="static")
