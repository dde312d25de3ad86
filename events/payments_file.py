"""Files of labelled payments a team brings: read and typed column by column, so the simulator's
replay (``simulator.replay``: the rows streamed through the pipeline as the app's events) and
the backtest (``ml.backtest``: the rows through the feature definitions offline) read one
format the same way.

CSV (header row; ``,`` separated) or Parquet (by the ``.parquet`` suffix). Required columns:
``timestamp`` (ISO 8601, UTC when it has no offset, or Unix seconds), ``rider``, ``card`` (ids,
at most 64 characters), ``amount`` (currency units: ``12.50`` is 1250 cents). What the optional
ones mean is the reader's: each says which it takes.

Line numbers: CSV's count the header as line 1; Parquet's number rows from 1.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

REQUIRED = ("timestamp", "rider", "card", "amount")
TRUE = {"1", "true", "yes", "y", "t", "fraud"}
FALSE = {"0", "false", "no", "n", "f", "", "legit", "none"}


class BadRow(ValueError):
    """An input row that cannot be read: reported with its line and skipped."""


def file_salt(path: Path) -> str:
    """Return a digest of the file's content: the seed of the ids of the events made of it, so
    the same file gives the same events again."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def read_rows(path: Path, *, required: tuple[str, ...] = REQUIRED) -> Iterator[tuple[int, dict]]:
    """Yield (line, row) from a CSV or Parquet file; fail at once (``ValueError`` naming the
    file) when a ``required`` column is missing."""
    if path.suffix.lower() == ".parquet":
        parquet = pq.ParquetFile(path)
        columns_check(parquet.schema_arrow.names, path, required)
        line = 0
        for batch in parquet.iter_batches(batch_size=5000):
            for row in batch.to_pylist():
                line += 1
                yield line, row
        return
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns_check(reader.fieldnames or [], path, required)
        for row in reader:
            yield reader.line_num, row


def columns_check(names: list[str], path: Path, required: tuple[str, ...] = REQUIRED) -> None:
    missing = [c for c in required if c not in names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; has {names}")


def text(raw: dict, name: str, *, limit: int = 64) -> str:
    """The column's text, stripped ('' when absent); ``BadRow`` past ``limit`` characters."""
    value = raw.get(name)
    found = "" if value is None else str(value).strip()
    if len(found) > limit:
        raise BadRow(f"{name} is longer than {limit} characters")
    return found


def parse_time(value: str) -> datetime:
    """Parse an ISO 8601 time; a time without a zone is UTC."""
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def timestamp(value: Any) -> datetime:
    """A row's time: a datetime (naive is UTC), Unix seconds or ISO 8601."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    found = "" if value is None else str(value).strip()
    if not found:
        raise BadRow("timestamp is empty")
    try:
        return datetime.fromtimestamp(float(found), tz=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        return parse_time(found)
    except ValueError:
        raise BadRow(f"timestamp {found!r} is neither ISO 8601 nor Unix seconds") from None


def amount_cents(value: Any) -> int:
    """An amount in currency units as whole cents (half a cent rounds to even)."""
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, AttributeError):
        raise BadRow(f"amount {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise BadRow(f"amount {value!r} must be a number >= 0")
    return int((amount * 100).to_integral_value())


def label(raw: dict) -> bool | None:
    """The ``label`` column: True (fraud), False, or None when the file has no such column."""
    if "label" not in raw:
        return None
    value = raw["label"]
    found = "" if value is None else str(value).strip().lower()
    if found in TRUE:
        return True
    if found in FALSE:
        return False
    raise BadRow(f"label {value!r} is not one of 1/0, true/false, yes/no")
