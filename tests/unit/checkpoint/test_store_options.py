"""StoreOptions: the driver's fsspec options of a URL location, carried to another
process (a Ray state actor) and installed there for that location only."""

from __future__ import annotations

import pickle

import fsspec.config
import pytest

from unbounded.checkpoint import storage
from unbounded.checkpoint.storage import StoreOptions, storage_for, store_options


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.setattr(storage, "_INSTALLED", {})
    monkeypatch.setitem(fsspec.config.conf, "memory", {})


def test_a_local_path_has_no_store_options():
    assert store_options("/tmp/cp") is None
    assert store_options("file:///tmp/cp") is None


def test_store_options_copy_the_schemes_fsspec_configuration_of_this_process(monkeypatch):
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": "http://h:9",
                                                   "client_kwargs": {"region_name": "x"}})
    taken = store_options("s3://b/cp")
    fsspec.config.conf["s3"]["client_kwargs"]["region_name"] = "changed later"
    assert taken is not None and taken.prefix == "s3://b/cp"
    assert taken.options == {"endpoint_url": "http://h:9",
                             "client_kwargs": {"region_name": "x"}}


def test_repr_names_the_options_without_their_values():
    options = StoreOptions("s3://b/cp", {"secret": "hunter2", "key": "AKIA123"})
    assert repr(options) == "StoreOptions('s3://b/cp', keys=['key', 'secret'])"
    assert "hunter2" not in repr(options) and "AKIA123" not in repr(options)
    assert pickle.loads(pickle.dumps(options)).options == options.options


def test_installed_options_open_urls_under_their_prefix_only():
    StoreOptions("memory://cp", {"skip_instance_cache": True}).install()
    assert storage._installed_options("memory://cp/state/0/1.delta") == {
        "skip_instance_cache": True}
    assert storage._installed_options("memory://cp") == {"skip_instance_cache": True}
    assert storage._installed_options("memory://cp2/state") is None
    assert store_options("memory://cp/state").options == {"skip_instance_cache": True}


def test_the_longest_installed_prefix_wins():
    StoreOptions("memory://a", {"n": 1}).install()
    StoreOptions("memory://a/b", {"n": 2}).install()
    assert storage._installed_options("memory://a/b/c") == {"n": 2}
    assert storage._installed_options("memory://a/c") == {"n": 1}


def test_a_store_opened_under_installed_options_reads_and_writes():
    StoreOptions("memory://opts", {"skip_instance_cache": True}).install()
    store = storage_for("memory://opts/cp")
    store.create("memory://opts/cp/0", b"v")
    assert store.read("memory://opts/cp/0") == b"v"
