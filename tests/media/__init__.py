"""Tests of callto.media and of the shared real-peer harness in tests/support."""
