"""Storage: the models, the per-call look-up, list edits, the call log, spam reports,
migrations and the watchdog. SQLAlchemy only: no Asterisk, no HTTP."""
