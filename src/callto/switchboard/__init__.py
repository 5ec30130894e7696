"""The switchboard: where the SIP switch (:mod:`callto.sip`, which knows no feature) is plugged into callto.

It owns the adapters on the feature side of the switch's ports: SIP accounts from the directory,
registrations, answered calls and node heartbeats in the database (its tables and their migrations),
registrations pushed between nodes over the event bus, and the switch's call reports turned into history
entries, presence, click progress and ``call.*`` events (:mod:`callto.switchboard.telephony`).
"""
