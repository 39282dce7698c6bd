"""What each default mail says, purpose labels, app names, overrides and HTML escaping."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mindmesh_auth import MessageTemplate, MessageTemplates

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"


def otp_mail(env, purpose: str):
    env.auth.auth.register(EMAIL, PASSWORD)
    if purpose == "login":
        env.auth.auth.login(EMAIL, PASSWORD)
    else:
        env.auth.otp.send(EMAIL, purpose)
    return env.outbox.last(EMAIL, "otp")


@pytest.mark.parametrize(
    ("purpose", "label"),
    [("login", "sign-in"), ("email_verify", "email verification"), ("delete_account", "delete account")],
)
def test_otp_mail_names_the_purpose_the_code_the_app_and_the_expiry(make_env, purpose: str, label: str) -> None:
    env = make_env(app_name="Acme", otp_ttl=timedelta(minutes=3), otp_purposes=("login", "email_verify", "delete_account"))
    mail = otp_mail(env, purpose)
    code = mail.data["code"]
    assert mail.to == EMAIL and mail.kind == "otp"
    assert mail.subject == f"Your Acme {label} code"
    assert mail.text == (
        f"Your Acme {label} code is: {code}\n\nIt expires in 3 minutes. If you did not ask for it, ignore this message.\n"
    )
    assert f"<p>Your Acme {label} code is:</p>" in mail.html
    assert f">{code}</p>" in mail.html
    assert "It expires in 3 minutes." in mail.html
    assert mail.data == {"code": code, "purpose": purpose, "minutes": "3"}


def test_reset_mail_carries_the_link_and_the_expiry(make_env) -> None:
    env = make_env(app_name="Acme", reset_url="https://app.example/reset#token={token}")
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.password.request_reset(EMAIL)
    mail = env.outbox.last(EMAIL, "password_reset")
    token = env.outbox.last_reset_token(EMAIL)
    link = f"https://app.example/reset#token={token}"
    assert mail.subject == "Reset your Acme password"
    assert mail.text == (
        "Someone asked to reset the password of your Acme account.\n\n"
        f"Open this link to choose a new password: {link}\n\n"
        "This expires in 60 minutes and works once. "
        "If it was not you, ignore this message: your password is unchanged.\n"
    )
    assert f"<p>Open this link to choose a new password: {link}</p>" in mail.html
    assert "This expires in 60 minutes and works once." in mail.html


def test_password_changed_mail_names_the_app(make_env) -> None:
    env = make_env(app_name="Acme")
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.password.request_reset(EMAIL)
    env.auth.password.reset(env.outbox.last_reset_token(EMAIL), "a brand new passphrase")
    mail = env.outbox.last(EMAIL, "password_changed")
    assert mail.subject == "Your Acme password was changed"
    assert mail.text.startswith("The password of your Acme account was changed and every session was signed out.")
    assert "<p>The password of your Acme account was changed" in mail.html


def test_message_templates_name_mindmesh_unless_told_otherwise() -> None:
    assert MessageTemplates().render("password_changed", to=EMAIL).subject == "Your Mindmesh password was changed"
    assert MessageTemplates(app_name="Acme").render("password_changed", to=EMAIL).subject == ("Your Acme password was changed")


def test_a_templates_object_passed_to_the_facade_is_used_as_given(make_env) -> None:
    templates = MessageTemplates({"otp": MessageTemplate(subject="$app_name: $code", text="$code")}, app_name="Own")
    env = make_env(templates=templates, app_name="From Config")
    mail = otp_mail(env, "login")
    assert mail.subject == f"Own: {mail.data['code']}"
    assert mail.html is None


def test_unknown_placeholders_stay_as_written(make_env) -> None:
    env = make_env(templates={"otp": MessageTemplate(subject="Code", text="$code for $nobody ($purpose_label)")})
    mail = otp_mail(env, "login")
    assert mail.text == f"{mail.data['code']} for $nobody (sign-in)"


def test_html_escaping_applies_to_every_value_but_not_to_the_text(make_env) -> None:
    env = make_env(
        app_name="A&B",
        reset_url="https://app.example/reset?x=1&y=<2>#token={token}",
    )
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.password.request_reset(EMAIL)
    mail = env.outbox.last(EMAIL, "password_reset")
    assert "A&B" in mail.text and "?x=1&y=<2>" in mail.text
    assert "A&amp;B" in mail.html and "?x=1&amp;y=&lt;2&gt;" in mail.html
    assert "<2>" not in mail.html


def test_a_multiline_subject_is_folded_to_single_spaces(make_env) -> None:
    env = make_env(templates={"otp": MessageTemplate(subject="  Your\n\tcode:   $code \r\n", text="$code")})
    mail = otp_mail(env, "login")
    assert mail.subject == f"Your code: {mail.data['code']}"
