"""Call screening for Asterisk: reject unwanted calls with SIP 607/608, let the rest through."""

__version__ = "0.1.0"
