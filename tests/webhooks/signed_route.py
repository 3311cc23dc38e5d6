"""One security contract for every signed route: subclass it and say how to sign and post."""

from __future__ import annotations

import json

import pytest

from mappings.models import Job, WebhookDelivery


class SignedRouteContract:
    """A signed route stores nothing and answers 401 unless the signature is valid.

    Subclasses provide ``url`` (a fixture-backed property), ``sign(body, secret)`` → headers,
    ``secret`` and ``other_secret``, and a ``valid_body()``.
    """

    secret: str
    other_secret: str

    def sign(self, body: bytes, secret: str) -> dict[str, str]:
        raise NotImplementedError

    def valid_body(self) -> bytes:
        raise NotImplementedError

    @pytest.fixture
    def route(self) -> str:
        raise NotImplementedError

    @staticmethod
    def stored() -> tuple[int, int]:
        return WebhookDelivery.select().count(), Job.select().count()

    def post(self, client, route: str, body: bytes, headers: dict[str, str]):
        return client.post(route, content=body, headers={"Content-Type": "application/json", **headers})

    def test_a_valid_signature_is_accepted_and_stored(self, client, route):
        answer = self.post(client, route, self.valid_body(), self.sign(self.valid_body(), self.secret))
        assert answer.status_code == 200
        assert self.stored()[0] == 1

    def test_a_missing_signature_is_refused(self, client, route):
        answer = self.post(client, route, self.valid_body(), {})
        assert answer.status_code == 401 and answer.headers["content-type"] == "application/problem+json"
        assert self.stored() == (0, 0)

    def test_no_secret_provided_is_refused(self, client, route):
        answer = self.post(client, route, self.valid_body(), {"X-Cal-Signature-256": "no-secret-provided"})
        assert answer.status_code == 401 and self.stored() == (0, 0)

    def test_a_wrong_secret_is_refused(self, client, route):
        answer = self.post(client, route, self.valid_body(), self.sign(self.valid_body(), "not-the-secret-at-all"))
        assert answer.status_code == 401 and self.stored() == (0, 0)

    def test_a_signature_of_other_bytes_is_refused(self, client, route):
        body = self.valid_body()
        tampered = body.replace(b"}", b" }", 1)
        answer = self.post(client, route, tampered, self.sign(body, self.secret))
        assert answer.status_code == 401 and self.stored() == (0, 0)

    def test_a_signature_that_is_not_ascii_is_refused(self, client, route):
        answer = self.post(client, route, self.valid_body(), {"X-Cal-Signature-256": "é".encode("latin-1") * 64})
        assert answer.status_code == 401 and self.stored() == (0, 0)

    def test_a_signed_body_nested_too_deeply_is_a_400(self, client, route):
        body = b'{"triggerEvent": "PING", "payload": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
        answer = self.post(client, route, body, self.sign(body, self.secret))
        assert answer.status_code == 400 and self.stored() == (0, 0)
        assert answer.headers["content-type"] == "application/problem+json"

    def test_a_content_length_of_thousands_of_digits_is_a_413(self, client, route):
        body = self.valid_body()
        answer = self.post(client, route, body, {**self.sign(body, self.secret),
                                                 "Content-Length": "9" * 5000})
        assert answer.status_code == 413 and self.stored() == (0, 0)

    def test_every_rotated_secret_is_accepted(self, client, route):
        answer = self.post(client, route, self.valid_body(), self.sign(self.valid_body(), self.other_secret))
        assert answer.status_code == 200

    def test_the_same_body_twice_is_applied_once(self, client, route):
        headers = self.sign(self.valid_body(), self.secret)
        first = self.post(client, route, self.valid_body(), headers)
        second = self.post(client, route, self.valid_body(), headers)
        assert first.status_code == second.status_code == 200
        assert second.json()["status"] == "duplicate"
        assert self.stored()[0] == 1

    def test_a_signed_body_that_is_not_json_is_a_400(self, client, route):
        body = b"{not json"
        answer = self.post(client, route, body, self.sign(body, self.secret))
        assert answer.status_code == 400 and self.stored() == (0, 0)

    def test_a_body_over_one_mebibyte_is_a_413(self, client, route):
        body = json.dumps({"triggerEvent": "PING", "pad": "x" * 1_100_000}).encode()
        answer = self.post(client, route, body, self.sign(body, self.secret))
        assert answer.status_code == 413 and self.stored() == (0, 0)

    def test_a_body_over_one_mebibyte_without_content_length_is_a_413(self, client, route):
        body = json.dumps({"triggerEvent": "PING", "pad": "x" * 1_100_000}).encode()
        chunks = (body[start:start + 65_536] for start in range(0, len(body), 65_536))
        answer = client.post(route, content=chunks, headers={"Content-Type": "application/json",
                                                              **self.sign(body, self.secret)})
        assert answer.status_code == 413 and self.stored() == (0, 0)

    def test_a_content_length_that_is_not_a_number_is_a_400(self, client, route):
        body = self.valid_body()
        answer = self.post(client, route, body, {**self.sign(body, self.secret), "Content-Length": "ten"})
        assert answer.status_code == 400 and self.stored() == (0, 0)
        assert answer.headers["content-type"] == "application/problem+json"

    @pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
    def test_other_methods_are_a_405_naming_post(self, client, route, method):
        answer = client.request(method, route)
        assert answer.status_code == 405 and answer.headers["allow"] == "POST"
        assert answer.json()["type"] == "/problems/method-not-allowed"
