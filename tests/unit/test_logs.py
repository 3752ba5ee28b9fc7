from __future__ import annotations

import logging

import pytest

from riven_async.logs import REDACTED, SecretFilter


def make_logger(secret_filter: SecretFilter) -> tuple[logging.Logger, list[str]]:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.addFilter(secret_filter)
    logger = logging.getLogger(f"test.logs.{id(lines)}")
    logger.handlers = [handler]
    logger.propagate = False
    return logger, lines


def test_secret_in_arguments_is_redacted() -> None:
    logger, lines = make_logger(SecretFilter(["sk-abcdef123"]))
    logger.warning("calling %s with key=%s", "https://x/api", "sk-abcdef123")
    assert lines == [f"calling https://x/api with key={REDACTED}"]


def test_secret_in_exception_text_is_redacted() -> None:
    logger, lines = make_logger(SecretFilter(["tok-999999"]))
    try:
        raise RuntimeError("GET https://h/?api_key=tok-999999 failed")
    except RuntimeError:
        logger.exception("upstream failed")
    assert "tok-999999" not in "\n".join(lines)
    assert REDACTED in "\n".join(lines)


def test_longest_secret_wins_when_secrets_overlap() -> None:
    secret_filter = SecretFilter(["abcd", "abcdefgh"])
    assert secret_filter.redact("x abcdefgh y") == f"x {REDACTED} y"


def test_reload_replaces_the_secret_list() -> None:
    secret_filter = SecretFilter(["old-secret"])
    secret_filter.set_secrets(["new-secret"])
    assert secret_filter.redact("old-secret new-secret") == f"old-secret {REDACTED}"


@pytest.mark.parametrize("tiny", ["", "a", "abc"])
def test_tiny_values_are_not_treated_as_secrets(tiny: str) -> None:
    # Redacting one-letter "secrets" would shred every log line.
    assert SecretFilter([tiny]).redact("a normal line abc") == "a normal line abc"
