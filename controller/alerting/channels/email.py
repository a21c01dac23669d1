"""E-mail over SMTP: STARTTLS by default (certificate verified), or implicit TLS (``ssl: true``).

Optional login with ``username`` + ``password_file``. The message carries a ``Message-ID`` made
from the notification's idempotency key, so a duplicate after a crash is recognisable.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from controller.notify.channels.base import DeliveryError, Outgoing
from controller.notify.config import ChannelConfig, EmailOptions
from controller.notify.render import body, subject


class EmailSender:
    def __init__(self, channel: ChannelConfig, password: str | None) -> None:
        assert isinstance(channel.options, EmailOptions)
        self.name = channel.name
        self._options = channel.options
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
                if o.starttls:
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
