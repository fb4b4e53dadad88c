"""Secrets and signatures follow the Standard Webhooks specification."""

import base64

from product_importer.webhooks import signing

from .receiver import Received, verify


def test_secret_is_whsec_and_base64_of_enough_random_bytes():
    secret = signing.generate_secret()

    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[len("whsec_") :])) >= 24
    assert signing.generate_secret() != secret


def test_signature_matches_an_independent_implementation():
    secret = signing.generate_secret()
    body = b'{"id":"evt_1","type":"ping","data":{}}'
    headers = signing.headers([secret], "evt_1", 1_700_000_000, body)

    assert headers["webhook-id"] == "evt_1"
    assert headers["webhook-timestamp"] == "1700000000"
    assert headers["webhook-signature"].startswith("v1,")
    received = Received("/", headers, body, 0)
    assert verify(secret, received, now=1_700_000_000)
    assert not verify(secret, Received("/", headers, body + b" ", 0), now=1_700_000_000)


def test_known_vector_from_the_standard_webhooks_reference():
    # The test vector published with the Standard Webhooks reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    signature = signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)

    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
