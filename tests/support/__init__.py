"""Shared test harness: real peers (baresip, sipp, aiortc, rtpengine) on loopback, and audio checks.

Import as ``support.<module>`` (``tests/`` must be on ``sys.path``: pytest puts it there when a test
package under ``tests/`` has an ``__init__.py``, or set ``pythonpath = ["tests"]``). Fixtures live in
``support.fixtures``; pull them into a conftest with ``from support.fixtures import *``.

Every helper here binds to 127.0.0.1 only, picks ports at run time and kills what it starts.
"""
