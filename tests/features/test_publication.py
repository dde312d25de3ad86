"""The publication mark: a batch snapshot being written online makes every payment at or after
its instant inexact until the write completes, on the SQLite mark and on Redis."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from features.materialize import materialize_batch_views
from features.offline import history_files
from features.publication import (
    PENDING_UNKNOWN,
    Publication,
    batch_exact,
    publication_begin,
    publication_end,
    publication_read,
)
from features.windows import to_us
from tests.features.simulated import CONFIG, simulated_day
from tests.features.stores import ONLINE_STORES, applied_config

NOW = CONFIG.start + timedelta(hours=12)
P = to_us(NOW)
MINUTE = 60_000_000


@pytest.fixture(params=ONLINE_STORES)
def config(request, tmp_path):
    yield from applied_config(request, tmp_path)


def test_a_pending_publication_makes_payments_at_or_after_its_instant_inexact(config):
    assert publication_read(config) == Publication(pending_us=None, done_us=None)
    assert batch_exact(publication_read(config), served_us=P - MINUTE, at_us=P)

    publication_begin(config, at_us=P)
    during = publication_read(config)
    assert during == Publication(pending_us=P, done_us=None)
    # A payment before the snapshot's instant gets the previous snapshot from the join, which
    # is still what it is served, unless its row was already rewritten by the new one.
    assert batch_exact(during, served_us=P - MINUTE, at_us=P - 1)
    assert not batch_exact(during, served_us=P, at_us=P - 1)
    # At or after the instant, some entities may still hold the previous snapshot.
    assert not batch_exact(during, served_us=P - MINUTE, at_us=P)
    assert not batch_exact(during, served_us=P, at_us=P + MINUTE)

    publication_end(config, P)
    after = publication_read(config)
    assert after == Publication(pending_us=None, done_us=P)
    assert batch_exact(after, served_us=P, at_us=P + MINUTE)
    assert batch_exact(after, served_us=None, at_us=P + MINUTE)
    assert not batch_exact(after, served_us=P + MINUTE, at_us=P)


def test_a_starting_publication_is_suspect_for_every_payment(config):
    starting = Publication(pending_us=PENDING_UNKNOWN, done_us=None)
    assert not batch_exact(starting, served_us=None, at_us=1)

    taken = publication_begin(config)
    assert publication_read(config).pending_us == taken > 0


def test_an_earlier_publication_ending_late_leaves_a_later_one_pending(config):
    publication_begin(config, at_us=P)
    publication_begin(config, at_us=P + MINUTE)
    publication_end(config, P)
    assert publication_read(config) == Publication(pending_us=P + MINUTE, done_us=P)
    publication_end(config, P + MINUTE)
    publication_end(config, P + MINUTE)
    assert publication_read(config) == Publication(pending_us=None, done_us=P + MINUTE)


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> Path:
    return simulated_day(tmp_path_factory.mktemp("history"))


def _archive(day: Path, config) -> None:
    for topic, (path,) in history_files(day).items():
        directory = config.events_dir(topic)
        directory.mkdir(parents=True)
        pq.write_table(pq.read_table(path), directory / "batch-000001.parquet")


def test_materialisation_publishes_and_clears_the_mark(config, day: Path):
    _archive(day, config)
    done = materialize_batch_views(config, now=NOW)

    assert done.at == NOW
    assert publication_read(config) == Publication(pending_us=None, done_us=P)


def test_a_failed_materialisation_leaves_batch_reads_inexact(config, day: Path, monkeypatch):
    _archive(day, config)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("features.materialize.view_file_write", broken)
    with pytest.raises(OSError, match="disk full"):
        materialize_batch_views(config, now=NOW)

    mark = publication_read(config)
    assert mark.pending_us == P
    assert not batch_exact(mark, served_us=P - MINUTE, at_us=P + MINUTE)
