"""Presence: the company directory with each user's state (available, ringing, busy, dnd, offline),
derived from device online state, the switch's call state and the user's do-not-disturb flag, and
broadcast as ``presence.changed`` to every logged-in user the moment it changes."""
