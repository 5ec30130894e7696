"""Trunk administration (the provider connections): the admin API, validation of what it accepts, and the
storage of trunks with their encrypted passwords and DIDs, handed to the switch as configurations.

The SQLAlchemy model ``Trunk`` and its migration stay in :mod:`callto.sip.models` with the SIP tables;
the switch knows nothing of this package: the composition root (:mod:`callto.sip.wiring`) subscribes it
to the configurations this service hands out.
"""
