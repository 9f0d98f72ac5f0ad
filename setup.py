"""Packaging for Lumyri accounts: `pip install -e .` makes the `app` package importable."""

from setuptools import find_packages, setup

setup(
    name="lumyri-accounts",
    version="0.1.0",
    description="Sign-up service for the Lumyri platform (admin and customer accounts).",
    python_requires=">=3.11",
    packages=find_packages(include=["app", "app.*"]),
    py_modules=["config", "wsgi"],
    include_package_data=True,
    install_requires=[
        "Flask>=3.1",
        "Flask-SQLAlchemy>=3.1",
        "SQLAlchemy>=2.0",
        "Flask-Migrate>=4.0",
        "marshmallow>=4.0",
        "email-validator>=2.1",
        "PyJWT>=2.8",
        "argon2-cffi>=23.1",
        "itsdangerous>=2.1",
        "psycopg[binary]>=3.1",
        "gunicorn>=22",
        "python-dotenv>=1.0",
        "apispec>=6.0",
        "Flask-Limiter>=3.5",
        "redis>=5.0",
        "prometheus-client>=0.20",
        "flask-cors>=4.0",
        "pyotp>=2.9",
        "segno>=1.6",
        "cryptography>=42",
    ],
)
