"""Sign-up endpoints: thin views over the schema, the password module and the repository."""

from marshmallow import ValidationError

from app import passwords, repository
from app.body import read_json_object
from app.errors import EmailTaken, ValidationFailed
from app.responses import auth_response
from app.schemas import SIGNUP_SCHEMA
from app.signup import bp


def load_signup_fields():
    """Read and validate the body; every broken rule of every field is reported at once."""
    try:
        return SIGNUP_SCHEMA.load(read_json_object())
    except ValidationError as error:
        raise ValidationFailed(fields=error.messages) from None


def sign_up(create_account):
    """Validate, refuse a known e-mail early, hash outside any transaction, then write."""
    fields = load_signup_fields()
    if repository.email_exists(fields["email"]):
        raise EmailTaken()
    password_hash = passwords.hash_password(fields.pop("password"))
    user, credential = create_account(fields, password_hash)
    return auth_response(user, credential, status=201)


@bp.post("/admin/signup")
def admin_signup():
    """Register an admin with a new company (used by the website)."""
    return sign_up(repository.create_admin_account)


@bp.post("/customer/signup")
def customer_signup():
    """Register a customer, without a company (used by the mobile app)."""
    return sign_up(repository.create_customer_account)
