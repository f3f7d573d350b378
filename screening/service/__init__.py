"""The screening service behind every door: the screener (a call in, a decision out) and the
feature codes, and the runtime that opens and closes them."""
