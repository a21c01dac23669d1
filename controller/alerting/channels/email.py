"""E-mail over SMTP: STARTTLS by default (certificate verified), or implicit TLS (``ssl: true``).

Optional login with ``username`` + ``password_file``. The message carries a ``Message-ID`` made
from the notification's idempotency key, so a duplicate after a crash is recognisable.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Annotated, Literal

from pydantic import Field, model_validator

from controller.alerting.channels.base import ChannelSettings, DeliveryError, Outgoing, SecretFiles
from controller.alerting.render import body, subject
from controller.configkit import Bool, Expect, FilePath, Invalid, Names, Text, parse_address


class EmailChannel(ChannelSettings):
    """``{type: email, smtp: "smtp.example.com:587", from: bk@example.com, to: [ops@example.com],
    username: bk, password_file: /etc/boxkeeper/smtp.password}``: STARTTLS unless ``ssl: true``."""

    type: Literal["email"]
    smtp: Annotated[tuple[str, int], Expect("an SMTP address such as smtp.example.com:587", parse_address)]
    sender: Annotated[Text, Expect("a sender address")] = Field(alias="from")
    recipients: Annotated[Names, Expect("a list of recipient addresses")] = Field(alias="to")
    starttls: Bool | None = None  # default: true unless ssl
    ssl: Bool = False
    username: Text | None = None
    password_file: FilePath | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EmailChannel:
        if (self.username is None) != (self.password_file is None):
            raise Invalid("password_file", "username and password_file together")
        if self.ssl and self.starttls:
            raise Invalid("starttls", "false when ssl (implicit TLS) is true", True)
        return self

    @property
    def smtp_host(self) -> str:
        return self.smtp[0]

    @property
    def smtp_port(self) -> int:
        return self.smtp[1]

    @property
    def use_starttls(self) -> bool:
        return not self.ssl if self.starttls is None else self.starttls

    def build_sender(self, secrets: SecretFiles) -> EmailSender:
        password = None if self.password_file is None else secrets.read(self.password_file, "password_file")
        return EmailSender(self, password)


class EmailSender:
    def __init__(self, channel: EmailChannel, password: str | None) -> None:
        self.name = channel.name
        self._options = channel
        self._password = password
        self._timeout = channel.timeout

    def secrets(self) -> tuple[str, ...]:
        return (self._password,) if self._password else ()

    def message(self, note: Outgoing) -> EmailMessage:
        o = self._options
        message = EmailMessage()
        message["Subject"] = subject(note.payload)
        message["From"] = o.sender
        message["To"] = ", ".join(o.recipients)
        message["Date"] = formatdate(localtime=False)
        domain = o.sender.rpartition("@")[2] or "boxkeeper.invalid"
        message["Message-ID"] = f"<{note.idempotency_key.replace(':', '.')}@{domain}>"
        message["X-Boxkeeper-Event"] = note.event
        message.set_content(body(note.payload))
        return message

    def send(self, note: Outgoing) -> None:
        o = self._options
        context = ssl.create_default_context(cafile=str(o.ca_file) if o.ca_file else None)
        try:
            smtp: smtplib.SMTP
            if o.ssl:
                smtp = smtplib.SMTP_SSL(o.smtp_host, o.smtp_port, timeout=self._timeout, context=context)
            else:
                smtp = smtplib.SMTP(o.smtp_host, o.smtp_port, timeout=self._timeout)
            with smtp:
                if o.use_starttls:
                    smtp.starttls(context=context)
                if o.username and self._password:
                    smtp.login(o.username, self._password)
                smtp.send_message(self.message(note))
        except smtplib.SMTPResponseException as exc:
            retry = not 500 <= exc.smtp_code < 600
            message = f"email {self.name}: SMTP {exc.smtp_code} {exc.smtp_error!r}"
            raise DeliveryError(message, retry=retry) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"email {self.name}: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        return None
