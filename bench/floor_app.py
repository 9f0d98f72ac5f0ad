"""The floors: bare Flask endpoints, served by the same gunicorn settings as the service,
that do the least a framework does for each path measured against them (parse the JSON
body, read the bearer header, answer the same status with a small JSON body)."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/reject")
def reject():
    """Parse the JSON body, answer 400: the floor of the rejected sign-up."""
    request.get_json()
    return jsonify({"error": {"code": "VALIDATION_ERROR", "message": "x"}, "data": None}), 400


@app.get("/api/v1/auth/verify")
def verify():
    """Read the Authorization header, answer 200 with a small JSON body: the floor for
    the service's /verify (which also checks the token and sets four headers)."""
    request.headers.get("Authorization")
    return jsonify({"error": None, "data": {"ok": True}})


@app.post("/api/v1/auth/password/forgot")
def forgot():
    """Parse the JSON body, answer 202: the floor of a forgotten password (which also
    looks the address up, records the request and writes the mail)."""
    request.get_json()
    return jsonify({"error": None, "data": None}), 202


@app.patch("/api/v1/auth/me")
def patch_me():
    """Read the Authorization header and parse the JSON body, answer 200: the floor of
    a profile change (which also checks the token, the fields, and writes the change)."""
    request.headers.get("Authorization")
    request.get_json()
    return jsonify({"error": None, "data": {"ok": True}})
