"""The floor for the rejection path: a bare Flask endpoint that parses JSON and returns a
400, served by the same gunicorn settings as the service."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/reject")
def reject():
    """Parse the JSON body, answer 400."""
    request.get_json()
    return jsonify({"error": {"code": "VALIDATION_ERROR", "message": "x"}, "data": None}), 400
