"""The web console's application: the pages (web.pages) and the JSON API (web.api) behind
one body limit and one signed session cookie, and the public redress jCard (web.redress);
what the handlers work with is on app.state."""

from __future__ import annotations

from datetime import timedelta

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware

from screening.config import Config
from screening.core.features import Reputation
from screening.service import redress as redress_service
from screening.service.accounts import dummy_hash
from screening.store.engine import Engine
from screening.web import api, assets, pages, redress
from screening.web.console import Console
from screening.web.devices import KnownDevices
from screening.web.limits import BodyLimit, Gate
from screening.web.pages.common import Door

#: How long a session lasts without being used.
SESSION_AGE = int(timedelta(hours=8).total_seconds())
#: Password checks (argon2: 64 MiB each) at once, logins that may wait for one, and of
#: those how many from one address; more are answered 429 at once. A browser the account
#: logged in from before (web.devices) has a gate of its own, one login of an account's at
#: a time: strangers flooding the first cannot keep the owner out.
PASSWORD_CHECKS = 2
LOGINS_WAITING = 8
LOGINS_PER_SOURCE = 2
KNOWN_CHECKS = 1
KNOWN_WAITING = 8


def create_app(
    config: Config, engine: Engine, secret_key: str, https_only: bool = False
) -> Starlette:
    # The redress key and certificate, read and checked first: a problem stops the start.
    jcard = redress_service.load(config)
    dummy_hash()  # made now, so that the first login of an unknown name is not slower
    console = Console(config, engine)
    door = Door(
        console,
        KnownDevices(secret_key),
        Reputation(config.reputation_reports, config.reputation_days),
        Gate(PASSWORD_CHECKS, LOGINS_WAITING, LOGINS_PER_SOURCE, "password-check"),
        Gate(KNOWN_CHECKS, KNOWN_WAITING, 1, "known-browser-check"),
        https_only,
    )
    app = Starlette(
        routes=[
            *pages.routes(),
            *api.routes(config, engine),
            *redress.routes(),
            assets.mount(),
        ],
        middleware=[
            Middleware(BodyLimit),  # first: before the session, the routes, any body read
            Middleware(
                SessionMiddleware,
                secret_key=secret_key,
                session_cookie="screening_session",
                max_age=SESSION_AGE,
                same_site="strict",
                https_only=https_only,
            ),
        ],
    )
    app.state.redress = jcard
    app.state.door = door
    app.state.console = console
    app.state.import_jobs = {}
    return app
