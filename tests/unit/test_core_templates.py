"""Message templates: app overrides, and HTML escaping of values."""

from __future__ import annotations

import pytest

from mindmesh_auth import MessageTemplate

PASSWORD = "correct horse battery staple"
EMAIL = "ada@example.com"


def test_overriding_the_otp_template_changes_the_mail(make_env) -> None:
    env = make_env(templates={"otp": MessageTemplate(subject="Code: $code", text="Use $code", html="<b>$code</b>")})
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.login(EMAIL, PASSWORD)
    mail = env.outbox.last(EMAIL, "otp")
    code = mail.data["code"]
    assert mail.subject == f"Code: {code}"
    assert mail.text == f"Use {code}"
    assert mail.html == f"<b>{code}</b>"
    assert env.auth.auth.verify_otp(EMAIL, code).user.email == EMAIL


def test_overriding_one_template_keeps_the_others(make_env) -> None:
    env = make_env(templates={"otp": MessageTemplate(subject="Code: $code", text="Use $code")})
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.password.request_reset(EMAIL)
    mail = env.outbox.last(EMAIL, "password_reset")
    assert mail.subject == "Reset your Mindmesh password"
    assert env.outbox.last_reset_token(EMAIL) in mail.text


def test_template_without_html_sends_text_only(make_env) -> None:
    env = make_env(templates={"otp": MessageTemplate(subject="Code", text="Use $code")})
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.login(EMAIL, PASSWORD)
    assert env.outbox.last(EMAIL, "otp").html is None


def test_default_otp_mail_names_the_app_the_purpose_and_the_expiry(env) -> None:
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.login(EMAIL, PASSWORD)
    mail = env.outbox.last(EMAIL, "otp")
    assert mail.subject == "Your Mindmesh sign-in code"
    assert "5 minutes" in mail.text and mail.data["code"] in mail.text and mail.data["code"] in mail.html
    assert "$" not in mail.text and "$" not in mail.html


def test_html_values_are_escaped_and_text_values_are_raw(make_env) -> None:
    app_name = 'Acme <script>alert("x")</script> & Co'
    env = make_env(app_name=app_name)
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.login(EMAIL, PASSWORD)
    mail = env.outbox.last(EMAIL, "otp")
    assert app_name in mail.text
    assert "<script>" not in mail.html
    assert "Acme &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in mail.html


@pytest.mark.parametrize("kind", ["password_reset", "password_changed"])
def test_reset_and_change_mails_escape_the_app_name_in_html(make_env, kind: str) -> None:
    env = make_env(app_name="<img src=x onerror=alert(1)>")
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.password.request_reset(EMAIL)
    env.auth.password.reset(env.outbox.last_reset_token(EMAIL), "a brand new passphrase")
    mail = env.outbox.last(EMAIL, kind)
    assert "<img" not in mail.html and "&lt;img src=x onerror=alert(1)&gt;" in mail.html
    assert "<img src=x onerror=alert(1)>" in mail.text


def test_subject_is_a_single_line_even_with_a_multiline_override(make_env) -> None:
    env = make_env(templates={"otp": MessageTemplate(subject="Code\r\nBcc: evil@example.com $code", text="Use $code")})
    env.auth.auth.register(EMAIL, PASSWORD)
    env.auth.auth.login(EMAIL, PASSWORD)
    subject = env.outbox.last(EMAIL, "otp").subject
    assert "\r" not in subject and "\n" not in subject
