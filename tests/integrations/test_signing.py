"""HMAC signatures of outgoing webhooks, and the SMTP sender against the local server."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from garrison.integrations import signing
from garrison.integrations.httpclient import IntegrationError
from garrison.integrations.notify.email import SmtpConfig, send_email
from tests.integrations.servers import SmtpServer


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = b'{"a":1}'
    h = signing.headers("k", body, "ping", now=1_700_000_000)
    want = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert h["X-Garrison-Signature"] == "sha256=" + want and h["X-Garrison-Timestamp"] == "1700000000"
    assert signing.verify("k", "1700000000", body, h["X-Garrison-Signature"], now=1_700_000_100)
    assert not signing.verify("k", "1700000000", body + b" ", h["X-Garrison-Signature"], now=1_700_000_100)
    assert not signing.verify("other", "1700000000", body, h["X-Garrison-Signature"], now=1_700_000_100)
    assert not signing.verify("k", "1700000000", body, h["X-Garrison-Signature"], now=1_700_001_000)  # replayed
    assert not signing.verify("k", "soon", body, h["X-Garrison-Signature"])


@pytest.mark.usefixtures("local_integrations")
def test_smtp_login_header_injection_and_refusal() -> None:
    with SmtpServer(username="u", password="p", refuse={"x@example.org"}) as smtp:
        cfg = SmtpConfig("127.0.0.1", smtp.port, "garrison@example.org", starttls=False, username="u", password="p")
        send_email(cfg, "a@example.org", "line one\r\nBcc: evil@example.org", "body\n.\nmore\n")
        msg = smtp.messages[0].message
        assert msg["Subject"] == "line one Bcc: evil@example.org" and msg["Bcc"] is None
        assert smtp.messages[0].recipients == ["a@example.org"]
        assert msg.get_content().replace("\r\n", "\n") == "body\n.\nmore\n"  # dot-stuffing round trip
        with pytest.raises(IntegrationError) as e:
            send_email(cfg, "x@example.org", "s", "b")
        assert not e.value.retryable
        bad = SmtpConfig("127.0.0.1", smtp.port, "garrison@example.org", starttls=False, username="u", password="no")
        with pytest.raises(IntegrationError) as e:
            send_email(bad, "a@example.org", "s", "b")
        assert "login failed" in str(e.value) and not e.value.retryable
