"""Company domains, normalized so the same company matches however a source spells it."""

from __future__ import annotations

PERSONAL_EMAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "yahoo.co.uk",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "msn.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "proton.me",
        "protonmail.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.ru",
        "yandex.ru",
        "qq.com",
        "163.com",
    }
)


def normalize_domain(value: str | None) -> str | None:
    """``https://WWW.Acme.com/about`` -> ``acme.com``; None for empty or unusable input."""
    if not value:
        return None
    text = value.strip().lower()
    if "@" in text:
        text = text.rsplit("@", 1)[1]
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    text = text.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0].strip(".")
    if text.startswith("www."):
        text = text[4:]
    if not text or "." not in text or " " in text:
        return None
    return text


def email_domain(email: str | None) -> str | None:
    """The normalized domain of an email address, or None."""
    if not email or "@" not in email:
        return None
    return normalize_domain(email.rsplit("@", 1)[1])


def parent_domains(domain: str) -> list[str]:
    """``eu.app.acme.com`` -> ``[eu.app.acme.com, app.acme.com, acme.com]`` (never a bare TLD)."""
    parts = domain.split(".")
    return [".".join(parts[i:]) for i in range(len(parts) - 1)]
