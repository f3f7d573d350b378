"""Parameters several API operations share; their bounds are the services' own."""

from __future__ import annotations

from typing import Annotated

import msgspec

from screening.service import parse
from screening.web.api.door import MAX_LIMIT, Param

Id = Annotated[int, msgspec.Meta(ge=0, le=parse.MAX_ID)]
CallId = Annotated[int, msgspec.Meta(ge=0, le=parse.MAX_CALL_ID)]

ID = Param("id", "path", Id, required=True)
LIMIT = Param("limit", kind=Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)])
EXTENSION = Param("extension", description="an extension (a user may give only their own)")
