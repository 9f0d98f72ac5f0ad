"""The floor for the rejection path: a bare Flask endpoint that parses JSON and returns a
400, served by the same gunicorn settings as the service."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/reject")
def reject():
    """Parse the JSON body, answer 400."""
    request.get_json()
    return jsonify({"error": {"code": "VALIDATION_ERROR", "message": "x"}, "data": None}), 400


@app.get("/api/v1/auth/verify")
def verify():
    """Read the Authorization header, answer 200 with a small JSON body: the floor for
    the service's /verify (which also checks the token and sets four headers)."""
    request.headers.get("Authorization")
    return jsonify({"error": None, "data": {"ok": True}})
