"""callto's embedded SIP switch.

The sans-IO core (``grammar``, ``message``, ``auth``, ``transaction``, ``endpoint``, ``registrar``) never
reads a clock or touches a socket; ``transport`` and ``server`` run it on asyncio. Call logic (B2BUA,
trunks, origination) builds on :class:`callto.sip.endpoint.SipEndpoint`. See docs/sip.md.
"""
