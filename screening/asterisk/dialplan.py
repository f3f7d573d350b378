"""Names shared with asterisk-conf/extensions.conf, in one place for both doors."""

from __future__ import annotations

#: Where rejected calls go: the extension is the SIP code (607 or 608).
REJECT_CONTEXT = "screening-reject"
#: The only context feature requests are accepted from: the phones reach it through
#: [screening-features]; outside callers never do.
FEATURE_CONTEXT = "screening-feature"
#: Where a feature request ends: the extension is the outcome, which plays its prompt.
FEATURE_RESULT_CONTEXT = "screening-feature-result"
#: The channel variable the FastAGI door sets: "607"/"608" to reject, "continue" to go on,
#: or a feature outcome. Unset after AGI() means the server did not answer: fail open.
RESULT_VARIABLE = "SCREENING_RESULT"
