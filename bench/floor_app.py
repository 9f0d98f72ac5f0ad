"""The floors: bare Flask endpoints, served by the same gunicorn settings as the service,
that do the least a framework does for each path measured against them (parse the JSON
body, read the bearer header, answer the same status with a small JSON body)."""

from flask import Flask, jsonify, request

from app.permissions import EVERY_LEAF

app = Flask(__name__)


@app.post("/reject")
def reject():
    """Parse the JSON body, answer 400: the floor of the rejected sign-up."""
    request.get_json()
    return jsonify({"error": {"code": "VALIDATION_ERROR", "message": "x"}, "data": None}), 400


# /verify's answer for an Admin (the bench's tokens are of Admins and of a custom role):
# the same keys, the role's 20 leaves, the same headers, fixed values.
PERMISSIONS = sorted(EVERY_LEAF)  # the Admin role holds every leaf
IDENTITY = {
    "user_id": "00000000-0000-4000-8000-000000000001",
    "company_id": "00000000-0000-4000-8000-000000000002",
    "role": "Admin",
    "role_id": "6a0f1c1e-2d7b-4c55-9a57-0e3c2b6f0a01",
    "permissions": PERMISSIONS,
    "session_id": "00000000-0000-4000-8000-000000000003",
    "email_verified": False,
}


@app.get("/api/v1/auth/verify")
def verify():
    """Read the Authorization header, answer 200 with the identity's headers and body, of
    the same size as the service's for an Admin (fixed values): the floor for the
    service's /verify, which also checks the token and finds the identity."""
    request.headers.get("Authorization")
    answer = jsonify({"error": None, "data": IDENTITY})
    answer.headers.update(
        {
            "X-User-Id": IDENTITY["user_id"],
            "X-Company-Id": IDENTITY["company_id"],
            "X-User-Role": IDENTITY["role"],
            "X-User-Role-Id": IDENTITY["role_id"],
            "X-User-Permissions": ",".join(PERMISSIONS),
            "X-Session-Id": IDENTITY["session_id"],
            "X-Email-Verified": "false",
            "Cache-Control": "no-store",
        }
    )
    return answer


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
