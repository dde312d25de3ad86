"""Training speed: the log-and-wait training set, a full retrain, a fine-tune.

    python -m benchmarks.training [--logged 1000000] [--full 200000] [--fine-tune 1000]

Once, in a scratch feature store of its own: ``--logged`` served vectors written as the
scorer's feature log (Parquet files in its logging layout, 100,000 rows a file, a payment a
second), their values drawn at random within the golden set's ranges (``ml/golden/``), and
labels for 2 % of the payments (half fraud), as the label table would give them.

Timed, each on one thread (``num_threads=1``, as the worker trains): ``ml.datasets.
logged_dataset`` over the whole log (read, deduplicated, joined with the labels, matured);
a full retrain (``ml.train.train_model``, 200 trees of 31 leaves, a fifth held out) on the
newest ``--full`` rows of it; a fine-tune adding 20 trees to that model on the newest
``--fine-tune`` rows. Printed: wall and CPU seconds of each, and the peak RSS. Random values
are the slow case for a tree learner: every split keeps finding a little gain.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FILE_ROWS = 100_000
START = datetime(2026, 1, 1, tzinfo=UTC)


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    import django

    django.setup()


def _column(field: pa.Field, rows: int, offset: int, rng, golden: pd.DataFrame) -> pa.Array:
    from features.served_log import (
        CONSISTENCY_FIELD,
        MODEL_VERSION_FIELD,
        PAYMENT_ID,
        ROLE_FIELD,
        STATUS_NUMBERS,
    )
    from fraud.feature_log import REQUEST_ID_FIELD

    index = np.arange(offset, offset + rows)
    stamps = pd.to_datetime(START) + pd.to_timedelta(index, unit="s")
    name, kind = field.name, field.type
    if name in (PAYMENT_ID, REQUEST_ID_FIELD):
        prefix = "p" if name == PAYMENT_ID else "e"
        return pa.array([f"{prefix}{i}" for i in index])
    if pa.types.is_timestamp(kind):
        return pa.array(stamps, type=kind)
    if name == MODEL_VERSION_FIELD:
        return pa.array(["bench"] * rows)
    if name == ROLE_FIELD:
        return pa.array(["champion"] * rows)
    if name == CONSISTENCY_FIELD:
        return pa.array(["exact"] * rows)
    if pa.types.is_string(kind):
        return pa.array([f"k{i % 5000}" for i in index])
    if pa.types.is_date(kind):
        return pa.array(stamps.date, type=kind)
    if name.endswith("__status"):
        return pa.array(np.full(rows, STATUS_NUMBERS["PRESENT"]), type=kind)
    # <view>__<feature> and on_demand__<feature>
    feature = name.split("__")[1] if "__" in name else name
    if feature in golden:
        values = golden[feature].dropna().to_numpy(dtype=float)
        drawn = rng.choice(values, size=rows) if len(values) else np.zeros(rows)
        return pa.array(drawn.astype(kind.to_pandas_dtype()), type=kind)
    if pa.types.is_integer(kind):
        return pa.array(np.ones(rows, dtype=kind.to_pandas_dtype()), type=kind)
    return pa.array(rng.random(rows), type=kind)


def logs_write(config, rows: int, rng) -> None:
    from features.served_log import log_dir, log_layout
    from ml.golden import golden_read

    layout = log_layout(config, "fraud_scoring_v1")
    golden = golden_read()
    directory = log_dir(config)
    directory.mkdir(parents=True, exist_ok=True)
    for offset in range(0, rows, FILE_ROWS):
        n = min(FILE_ROWS, rows - offset)
        table = pa.table(
            [_column(f, n, offset, rng, golden) for f in layout.schema], schema=layout.schema
        )
        pq.write_table(table, directory / f"bench-{offset:09d}.parquet")


def _timed(label: str, call):
    wall, cpu = time.perf_counter(), time.process_time()
    value = call()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logged", type=int, default=1_000_000)
    parser.add_argument("--full", type=int, default=200_000)
    parser.add_argument("--fine-tune", type=int, default=1000)
    args = parser.parse_args()
    _django()
    from features.repo import apply_repo
    from features.store import FeatureConfig, feature_store
    from ml.datasets import logged_dataset
    from ml.labels import labels_table
    from ml.train import TrainParams, model_features, newest_rows, train_model

    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        config = FeatureConfig(
            project=f"train{uuid.uuid4().hex[:8]}",
            registry_url=f"sqlite:///{Path(tmp) / 'registry.sqlite3'}",
            online="sqlite",
            data_dir=Path(tmp) / "features",
        )
        apply_repo(config)
        try:
            _timed(
                f"write {args.logged:,} logged vectors",
                lambda: logs_write(config, args.logged, rng),
            )
            labelled = rng.choice(args.logged, size=args.logged // 50, replace=False)
            labels = labels_table(
                (f"p{i}", int(rng.random() < 0.5), "chargeback",
                 START + timedelta(seconds=int(i)) + timedelta(days=2), False)
                for i in sorted(labelled)
            )  # fmt: skip
            as_of = START + timedelta(seconds=args.logged) + timedelta(days=4)
            frame = _timed(
                f"training set from {args.logged:,} logged rows",
                lambda: logged_dataset(
                    config, labels=labels, maturity=timedelta(days=3), as_of=as_of, detail=False
                ),
            )
            print(f"  {len(frame):,} rows, {int(frame['label'].sum()):,} fraud")
            features = model_features()
            full = newest_rows(frame, args.full, time_column="request_time")
            result = _timed(
                f"full retrain on {len(full):,} rows (200 trees)",
                lambda: train_model(
                    full, features=features, time_column="request_time",
                    params=TrainParams(num_boost_round=200),
                ),
            )  # fmt: skip
            tune = newest_rows(frame, args.fine_tune, time_column="request_time")
            _timed(
                f"fine-tune on {len(tune):,} rows (+20 trees)",
                lambda: train_model(
                    tune, features=features, time_column="request_time",
                    params=TrainParams(num_boost_round=20), init_model=result.booster,
                ),
            )  # fmt: skip
        finally:
            feature_store(config).teardown()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
