"""Trunk administration (the provider connections): the admin API, validation of what it accepts, and the
storage of trunks with their encrypted passwords and DIDs, handed to the switch as configurations.

The SQLAlchemy model ``Trunk`` is :mod:`callto.trunks.models`; its table is made by the switchboard's
migration with the SIP tables. The switch knows nothing of this package: :mod:`callto.switchboard.wiring`
hands it the configurations this service gives out.
"""
