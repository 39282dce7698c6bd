"""Text and HTML templates for each message, overridable by the app.

Templates use :class:`string.Template` (``$name``). Values are HTML-escaped
in the HTML body. Override one template or all by passing a mapping of
``kind -> MessageTemplate`` to :class:`MessageTemplates`.
"""

from __future__ import annotations

import html
import string
from collections.abc import Mapping

import attrs

from .ports import OutgoingMessage

__all__ = ["DEFAULT_TEMPLATES", "MessageTemplate", "MessageTemplates"]


@attrs.frozen
class MessageTemplate:
    subject: str
    text: str
    html: str | None = None


_OTP_HTML = """<!doctype html>
<html><body style="font-family:sans-serif">
<p>Your $app_name $purpose_label code is:</p>
<p style="font-size:28px;font-weight:bold;letter-spacing:4px">$code</p>
<p>It expires in $minutes minutes. If you did not ask for it, ignore this message.</p>
</body></html>"""

DEFAULT_TEMPLATES: Mapping[str, MessageTemplate] = {
    "otp": MessageTemplate(
        subject="Your $app_name $purpose_label code",
        text=(
            "Your $app_name $purpose_label code is: $code\n\n"
            "It expires in $minutes minutes. If you did not ask for it, ignore this message.\n"
        ),
        html=_OTP_HTML,
    ),
    "password_reset": MessageTemplate(
        subject="Reset your $app_name password",
        text=(
            "Someone asked to reset the password of your $app_name account.\n\n"
            "$reset_instructions\n\n"
            "This expires in $minutes minutes and works once. "
            "If it was not you, ignore this message: your password is unchanged.\n"
        ),
        html=(
            "<!doctype html><html><body style=\"font-family:sans-serif\">"
            "<p>Someone asked to reset the password of your $app_name account.</p>"
            "<p>$reset_instructions</p>"
            "<p>This expires in $minutes minutes and works once. If it was not you, "
            "ignore this message: your password is unchanged.</p></body></html>"
        ),
    ),
    "password_changed": MessageTemplate(
        subject="Your $app_name password was changed",
        text=(
            "The password of your $app_name account was changed and every session was signed out.\n\n"
            "If this was not you, reset your password now and contact support.\n"
        ),
        html=(
            "<!doctype html><html><body style=\"font-family:sans-serif\">"
            "<p>The password of your $app_name account was changed and every session was signed out.</p>"
            "<p>If this was not you, reset your password now and contact support.</p></body></html>"
        ),
    ),
    "email_changed": MessageTemplate(
        subject="The e-mail address of your $app_name account was changed",
        text=(
            "The e-mail address of your $app_name account was changed to $new_email.\n\n"
            "This address no longer signs in. If this was not you, contact support.\n"
        ),
        html=(
            "<!doctype html><html><body style=\"font-family:sans-serif\">"
            "<p>The e-mail address of your $app_name account was changed to $new_email.</p>"
            "<p>This address no longer signs in. If this was not you, contact support.</p></body></html>"
        ),
    ),
    "account_deleted": MessageTemplate(
        subject="Your $app_name account was deleted",
        text=(
            "Your $app_name account and every session of it were deleted.\n\n"
            "If this was not you, contact support.\n"
        ),
        html=(
            "<!doctype html><html><body style=\"font-family:sans-serif\">"
            "<p>Your $app_name account and every session of it were deleted.</p>"
            "<p>If this was not you, contact support.</p></body></html>"
        ),
    ),
}

_PURPOSE_LABELS = {"login": "sign-in", "email_verify": "email verification", "email_change": "e-mail change"}


class MessageTemplates:
    """Renders messages; ``overrides`` replace default templates by kind."""

    def __init__(self, overrides: Mapping[str, MessageTemplate] | None = None, *, app_name: str = "Mindmesh") -> None:
        self._templates = {**DEFAULT_TEMPLATES, **(overrides or {})}
        self.app_name = app_name

    def render(self, kind: str, to: str, **values: str) -> OutgoingMessage:
        template = self._templates[kind]
        data = {"app_name": self.app_name, **values}
        if "purpose" in data:
            data.setdefault("purpose_label", _PURPOSE_LABELS.get(data["purpose"], data["purpose"].replace("_", " ")))
        subject = string.Template(template.subject).safe_substitute(data)
        text = string.Template(template.text).safe_substitute(data)
        body_html = None
        if template.html is not None:
            escaped = {k: html.escape(v) for k, v in data.items()}
            body_html = string.Template(template.html).safe_substitute(escaped)
        return OutgoingMessage(
            to=to, subject=" ".join(subject.split()), text=text, html=body_html, kind=kind, data=dict(values)
        )
