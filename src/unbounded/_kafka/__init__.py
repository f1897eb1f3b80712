"""Kafka's wire protocol for the hot paths, without a Python object per record.

librdkafka (confluent-kafka) hands Python one ``Message`` object per record, which caps
a Python reader near 0.5M records/s. Here record batches travel as raw bytes (requests
framed by kafka-python's protocol classes) and are decoded to and encoded from Arrow
columns with NumPy, whole batches at a time.
"""

__all__: list[str] = []
