"""callto: click-to-call and CTI with an embedded SIP switch."""

__version__ = "0.1.0"
