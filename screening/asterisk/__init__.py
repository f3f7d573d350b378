"""The Asterisk doors: the ARI Stasis app and the FastAGI server. Thin: parse what Asterisk
sends, ask the service, act. Nothing imports a door but the entry point."""
