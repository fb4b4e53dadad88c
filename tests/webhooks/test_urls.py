"""What of a webhook's URL those below admin may read: every likely credential as `***`."""

import pytest

from product_importer.webhooks.urls import url_without_secrets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://erp.example.com/hooks", "https://erp.example.com/hooks"),
        ("https://example.com/api/v1/product-importer-events", None),  # words stay
        ("https://example.com/hooks/123456789012345678", None),  # an id of digits stays
        ("https://ops:pa%40ss@example.com:8443/hook", "https://***@example.com:8443/hook"),
        ("http://ops:p[w@127.0.0.1:9/hook", "http://***@127.0.0.1:9/hook"),  # no URL parser
        ("http://u:pa＃ss@h.example/x", "http://***@h.example/x"),
        ("http://[::1]:8080/a/b", None),
        ("https://h.example/a@b/c?d=e@f", "https://h.example/a@b/c?d=***"),
        (
            "https://h.example/hook?token=abc&x=1&bare#part",
            "https://h.example/hook?token=***&x=***&***#***",
        ),
        ("https://h.example/?xq7TzK2mPa9Lw4Rn8Bv3", "https://h.example/?***"),
        (
            "https://hooks.slack.com/services/T00000000/B00000000/abcdefGHIJKLmnopqrstuvwx",
            "https://hooks.slack.com/services/T00000000/B00000000/***",
        ),
        (
            "https://discord.com/api/webhooks/123456789012345678/abcDEFghiJKL-mno_pqr1234567890",
            "https://discord.com/api/webhooks/123456789012345678/***",
        ),
        (
            "https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage",
            "https://api.telegram.org/***/sendMessage",
        ),
        ("https://webhook.site/550e8400-e29b-41d4-a716-446655440000", "https://webhook.site/***"),
        ("https://x.example/h/xq7TzK2mPa9Lw4Rn8Bv3.json", "https://x.example/h/***"),
        ("https://x.example/h/abc%2BdefGHIJ123%2Fxyzxyz=", "https://x.example/h/***"),
        ("https://x.example/p;jsessionid=ABCdef1234567890xyz", "https://x.example/***"),
    ],
)
def test_a_url_is_shown_without_what_may_be_a_credential(url, shown):
    assert url_without_secrets(url) == (shown or url)
