"""Desk phone provisioning: phones by MAC and model, assigned to users, configuring themselves over HTTP(S).

- :mod:`~callto.provisioning.service`: the behaviour (phones, assignment to users' ``deskphone`` devices,
  tokens, answering the files phones request, the fetch log, what click-to-call needs of a desk phone).
- :mod:`~callto.provisioning.feed`: the phone-directory XML feed in each vendor's format.
- :mod:`~callto.provisioning.http`: the admin API and the ``/provisioning/...`` routes, with the
  per-address throttle on token guessing.
- :mod:`~callto.provisioning.ports`: what it needs from the SIP switch (``check-sync`` NOTIFY).
- :mod:`~callto.provisioning.cli`: ``callto admin phone ...``.
- Vendor knowledge (file names, templates, OUIs, action URLs) lives in :mod:`callto.phones`, not here.
"""
