"""Outgoing mail through an SMTP server (smtplib)."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol

from torah_study.config import Settings

logger = logging.getLogger(__name__)


class MailError(RuntimeError):
    """The mail server refused the message or could not be reached."""


class Mailer(Protocol):
    def send(self, to: str, subject: str, body: str) -> None: ...


class SmtpMailer:
    def __init__(self, settings: Settings) -> None:
        if not settings.smtp_host:
            raise ValueError("Email codes need TORAH_STUDY_SMTP_HOST.")
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.security = settings.smtp_security
        self.username = settings.smtp_username
        self.password = (
            settings.smtp_password.get_secret_value() if settings.smtp_password else ""
        )
        self.sender = settings.mail_from
        self.timeout = settings.smtp_timeout_seconds

    def send(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message.set_content(body)
        try:
            if self.security == "tls":
                context = ssl.create_default_context()
                with smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=context
                ) as client:
                    self._deliver(client, message)
            else:
                with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as client:
                    if self.security == "starttls":
                        client.starttls(context=ssl.create_default_context())
                    self._deliver(client, message)
        except (OSError, smtplib.SMTPException) as error:
            logger.error("Sending mail to the SMTP server failed: %s", error)
            raise MailError("The email could not be sent; try again later.") from error

    def _deliver(self, client: smtplib.SMTP, message: EmailMessage) -> None:
        if self.username:
            client.login(self.username, self.password)
        client.send_message(message)
