"""What the Kafka source and sink share: client configs from Spark options, redaction,
and retrying a broker call until ``kafkaConsumer.pollTimeoutMs`` runs out.

Spark users pass Java client settings as ``kafka.*`` options; they reach librdkafka with
the prefix stripped, and the few Java-only settings users rely on for SASL/TLS
(``sasl.jaas.config``, PEM trust stores, ``ssl.endpoint.identification.algorithm=""``)
are translated to their librdkafka equivalents.

Example:
    >>> client_config({"kafka.bootstrap.servers": "b:9092", "subscribe": "t"})
    {'bootstrap.servers': 'b:9092'}
    >>> redact_options({"kafka.sasl.password": "s3cret", "subscribe": "t"})
    {'kafka.sasl.password': '*********(redacted)', 'subscribe': 't'}
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from unbounded.errors import (
    AnalysisException,
    KafkaUnavailableError,
    UnboundedError,
)

__all__ = [
    "POLL_TIMEOUT_OPTION",
    "REDACTED",
    "ClientConf",
    "StatusListener",
    "as_client_conf",
    "client_config",
    "redact_options",
    "redact_text",
    "retry_until_timeout",
    "secret_values",
    "unavailable_error",
    "waiting_message",
    "wire_supported",
]

_log = logging.getLogger(__name__)

REDACTED = "*********(redacted)"
POLL_TIMEOUT_OPTION = "kafkaConsumer.pollTimeoutMs"
_SECRET = re.compile(r"password|secret|token|key|jaas", re.IGNORECASE)
_JAAS_FIELD = re.compile(r"""(\w+)\s*=\s*"((?:[^"\\]|\\.)*)\"""")
_JAAS_MODULES = ("PlainLoginModule", "ScramLoginModule")

T = TypeVar("T")
ClientConf = dict[str, Any]  # values: librdkafka settings, and the `logger` object


def _is_secret(key: str, value: str) -> bool:
    return bool(_SECRET.search(key) or _SECRET.search(value))


def redact_options(options: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``options`` safe to print: secret-looking keys or values are masked."""
    return {k: REDACTED if _is_secret(k, str(v)) else v for k, v in options.items()}


def secret_values(options: Mapping[str, str]) -> list[str]:
    """The option values that must never appear in a log line or error message."""
    return [str(v) for k, v in options.items() if v and _is_secret(k, str(v))]


def redact_text(text: str, secrets: list[str]) -> str:
    """``text`` with every secret value masked (client errors may echo settings)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def as_client_conf(config: Mapping[str, str]) -> ClientConf:
    """``config`` typed as the confluent-kafka constructors want it, librdkafka's own
    messages routed through Python logging (rate-limited) unless a logger is given."""
    from unbounded._kafka.logs import KAFKA_CLIENT_LOG

    conf: ClientConf = dict(config)
    conf.setdefault("logger", KAFKA_CLIENT_LOG)
    return conf


def client_config(options: Mapping[str, str]) -> dict[str, str]:
    """The librdkafka settings in ``options``: every ``kafka.*`` key, prefix stripped."""
    raw = {k[len("kafka."):].lower(): str(v) for k, v in options.items()
           if k.lower().startswith("kafka.")}
    config = dict(raw)
    _translate_jaas(config)
    _translate_stores(config)
    if config.get("ssl.endpoint.identification.algorithm") == "":
        config["ssl.endpoint.identification.algorithm"] = "none"
    return config


def _translate_jaas(config: dict[str, str]) -> None:
    jaas = config.pop("sasl.jaas.config", None)
    if jaas is None:
        return
    if not any(module in jaas for module in _JAAS_MODULES):
        raise AnalysisException(
            "Option 'kafka.sasl.jaas.config' names a login module this client cannot use; "
            "only PlainLoginModule and ScramLoginModule are translated. Pass the librdkafka "
            "settings instead (e.g. kafka.sasl.username, kafka.sasl.password, "
            "kafka.sasl.oauthbearer.*).",
            error_class="INVALID_OPTION",
        )
    fields = {name.lower(): value for name, value in _JAAS_FIELD.findall(jaas)}
    for name in ("username", "password"):
        if name in fields:
            config.setdefault(f"sasl.{name}", fields[name])


def _translate_stores(config: dict[str, str]) -> None:
    trust_type = config.pop("ssl.truststore.type", "JKS").upper()
    trust = config.pop("ssl.truststore.location", None)
    config.pop("ssl.truststore.password", None)
    if trust is not None:
        if trust_type != "PEM":
            raise AnalysisException(
                "Option 'kafka.ssl.truststore.location' points at a JKS trust store, which "
                "this client cannot read. Convert it to PEM and pass "
                "kafka.ssl.ca.location=<file.pem> (or set kafka.ssl.truststore.type=PEM).",
                error_class="INVALID_OPTION",
            )
        config.setdefault("ssl.ca.location", trust)
    key_type = config.pop("ssl.keystore.type", "PKCS12").upper()
    if key_type not in ("PKCS12", "PEM") and "ssl.keystore.location" in config:
        raise AnalysisException(
            f"Option 'kafka.ssl.keystore.type' is {key_type}; this client reads PKCS12 key "
            "stores only. Convert it with keytool to PKCS12, or pass "
            "kafka.ssl.certificate.location and kafka.ssl.key.location (PEM).",
            error_class="INVALID_OPTION",
        )


StatusListener = Callable[[str], None]


def retry_until_timeout(
    call: Callable[[], T], *, what: str, bootstrap: str, timeout_ms: int, option: str,
    secrets: list[str] | None = None, on_wait: StatusListener | None = None,
) -> T:
    """``call()``, retried with exponential backoff while it raises, for ``timeout_ms``.

    Each wait is logged and told to ``on_wait`` (the query's status). Past the timeout
    raise :class:`KafkaUnavailableError` naming the broker and the option that sets it.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    delay = 0.1
    while True:
        try:
            return call()
        except (UnboundedError, AnalysisException):
            raise
        except Exception as exc:
            remaining = deadline - time.monotonic()
            detail = redact_text(str(exc), secrets or [])
            if remaining <= 0:
                raise unavailable_error(what, bootstrap, timeout_ms, option, detail) from None
            _log.warning("Kafka %s failed (%s); retrying in %.1fs", what, detail, delay)
            if on_wait is not None:
                on_wait(waiting_message(what, bootstrap, timeout_ms, option, remaining))
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 5.0)


def waiting_message(what: str, bootstrap: str, timeout_ms: int, option: str,
                    remaining_s: float) -> str:
    """The status line of a query waiting for unreachable brokers."""
    return (f"Waiting for Kafka brokers at {bootstrap} ({what} failed); retrying for "
            f"{max(remaining_s, 0):.0f}s more of {option}={timeout_ms}")


def unavailable_error(
    what: str, bootstrap: str, timeout_ms: int, option: str, detail: str,
) -> KafkaUnavailableError:
    return KafkaUnavailableError(
        f"Kafka {what} did not succeed within {timeout_ms} ms: the brokers at "
        f"{bootstrap!r} did not answer ({detail}). Check that the brokers are reachable, "
        f"or raise option {option!r} to wait longer.",
    )


def wire_supported(config: Mapping[str, str]) -> bool:
    """Whether ``config`` (librdkafka settings) suits our wire-protocol reader and
    writer, which speak plaintext only: no TLS, no SASL.

    Example:
        >>> wire_supported({"bootstrap.servers": "b:9092", "isolation.level": "read_committed"})
        True
        >>> wire_supported({"bootstrap.servers": "b:9092", "security.protocol": "SASL_SSL"})
        False
    """
    protocol = str(config.get("security.protocol", "plaintext")).lower()
    secured = any(k.lower().startswith(("sasl.", "ssl.")) for k in config)
    return protocol == "plaintext" and not secured
