"""/api/v1/me: whom the token belongs to."""

from __future__ import annotations

from screening.service.views import WhoView
from screening.web.api.door import Answer, Ask, Operation


def me(ask: Ask) -> Answer:
    return 200, WhoView(name=ask.who.name, role=ask.who.role, extension=ask.who.extension)


OPERATIONS = (Operation("GET", "/me", me, "who the token belongs to", WhoView, errors=()),)
