"""Tests that start real processes: gunicorn (one or two instances) and the benchmark."""
