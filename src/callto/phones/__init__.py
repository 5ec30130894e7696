"""Desk phones: the vendor catalog (data in ``vendors/*.toml``), config rendering and ``phone_http``.

- :mod:`callto.phones.catalog`: vendors, models, OUI prefixes, requested file names, action URLs;
  ``normalize_mac``, ``suggest_vendor``, ``match_request``.
- :mod:`callto.phones.render`: ``render_config(vendor, model, file_name, variables)``.
- :mod:`callto.phones.http`: ``phone_http(target, action, ...)`` and the pure request builder the
  Link's LAN relay shares.
"""
