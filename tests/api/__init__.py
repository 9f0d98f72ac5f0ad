"""Tests through the HTTP API, in-process with Flask's test client (no server process)."""
