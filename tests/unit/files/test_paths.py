"""Plain local paths stay paths whatever they hold; only ``scheme:`` strings are URIs."""

from __future__ import annotations

import pytest

from unbounded.files.paths import local_path, path_uri


@pytest.mark.parametrize("path", ["/x/out#1", "/x/what?y", "/x/p%20q", "/x/a b", "/x/ü/é"])
def test_a_local_path_survives_the_round_trip_through_its_uri(path):
    assert local_path(path_uri(path)) == path


def test_uris_percent_encode_what_java_uri_would():
    assert path_uri("/x/out#1/a b%?") == "file:///x/out%231/a%20b%25%3F"


def test_a_bare_path_is_never_decoded():
    assert local_path("/x/p%20q#1") == "/x/p%20q#1"


def test_hadoop_and_authority_forms_of_file_uris():
    assert local_path("file:/x/a%20b") == "/x/a b"
    assert local_path("file://localhost/x/y") == "/x/y"
    assert path_uri("s3://bucket/a b") == "s3://bucket/a b"
