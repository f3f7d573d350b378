"""Browsers an account logged in from: a signed cookie (user id, a random id) set at a good
login. A known browser's failed logins count against that browser only, so that a stranger
guessing an admin's password cannot lock the admin out of their own browser (OWASP,
"device cookies"); strangers' attempts count against the account and their source."""

from __future__ import annotations

import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer

#: As long as the cookie lives (web.pages.session.DEVICE_AGE).
MAX_AGE_S = 180 * 86400


class KnownDevices:
    def __init__(self, secret_key: str) -> None:
        self._signer = URLSafeTimedSerializer(secret_key, salt="screening known device")

    def issue(self, user_id: int) -> str:
        return self._signer.dumps([user_id, secrets.token_hex(12)])

    def read(self, cookie: str) -> tuple[int, str] | None:
        """(user id, device id) of a cookie we signed and that has not expired; else None."""
        if not cookie or len(cookie) > 512:
            return None
        try:
            value = self._signer.loads(cookie, max_age=MAX_AGE_S)
        except BadSignature:
            return None
        if (
            isinstance(value, list)
            and len(value) == 2
            and isinstance(value[0], int)
            and isinstance(value[1], str)
        ):
            return value[0], value[1][:32]
        return None
