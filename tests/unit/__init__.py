"""Tests that call one module in-process: no HTTP request, no server process."""
