"""Tables for the analysis world: a dataset spec → CSV / parquet files → a read-only DuckDB.

A dataset is `shop` / `shop?seed=1` (generated, agentwheel/envs/shop_data.py) or a folder
of .csv / .parquet files, one table per file named by its stem. Each is loaded once into
a DuckDB database file in a cache folder, then opened read-only with external access off
(no file reads, COPY, ATTACH or extensions from SQL) and its configuration locked, so a
model's SQL can read the tables and nothing else. The data files stay where the sandbox
mounts them for `run_python` (/data).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from agentwheel.core.industrial import parse_generated_spec
from agentwheel.envs.shop_data import generate_shop

TABLE_FILES = (".csv", ".parquet")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
CACHE_ENV = "AGENTWHEEL_TABLE_CACHE"
DB_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "enable_external_access": False,
    "threads": 1,
    "memory_limit": "512MB",
    "lock_configuration": True,
}


@dataclass(frozen=True)
class TableSet:
    data_dir: Path
    connection: duckdb.DuckDBPyConnection
    tables: tuple[str, ...]
    # Outputs of read-only queries by their text: the tables never change, so a replay (the
    # gate runs each path several times) need not run a query twice.
    results: dict[str, Any] = field(default_factory=dict)


def cache_root() -> Path:
    """Where generated data and databases live (readable by the sandbox's `nobody`)."""
    root = Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "agentwheel-tables")
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    return root


def _publish(build: Path, final: Path) -> None:
    """Move a finished build into place; a concurrent builder of the same key wins alike."""
    try:
        build.rename(final)
    except OSError:
        shutil.rmtree(build, ignore_errors=True)


def generated_data_dir(seed: int) -> Path:
    final = cache_root() / f"shop-v1-seed{seed}"
    if not final.is_dir():
        build = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_root()))
        tables = generate_shop(seed)
        for table in tables:
            with open(build / f"{table.name}.csv", "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(table.columns)
                writer.writerows(["" if v is None else v for v in row] for row in table.rows)
            os.chmod(build / f"{table.name}.csv", 0o644)
        os.chmod(build, 0o755)
        _publish(build, final)
    return final


def table_files(data_dir: Path) -> dict[str, Path]:
    files = {p.stem: p for p in sorted(data_dir.iterdir()) if p.suffix.lower() in TABLE_FILES}
    bad = [name for name in files if not _IDENTIFIER.match(name)]
    if bad:
        raise ValueError(f"table file names must be identifiers, bad: {bad}")
    if not files:
        raise FileNotFoundError(f"no .csv or .parquet files in {data_dir}")
    return files


def _database(data_dir: Path) -> Path:
    files = table_files(data_dir)
    stamp = "|".join(
        f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files.values()
    )
    path = cache_root() / f"db-{hashlib.sha256(stamp.encode()).hexdigest()[:16]}.duckdb"
    if not path.exists():
        build = path.with_name(f".build-{os.getpid()}-{path.name}")
        with duckdb.connect(str(build)) as db:
            for name, file in files.items():
                reader = "read_parquet" if file.suffix.lower() == ".parquet" else "read_csv"
                db.execute(f'CREATE TABLE "{name}" AS SELECT * FROM {reader}(?)', [str(file)])
        os.replace(build, path)
    return path


_OPEN: dict[str, TableSet] = {}


def load_tables(spec: str) -> TableSet:
    """The tables of a dataset spec, opened read-only once per process."""
    if spec not in _OPEN:
        options = parse_generated_spec(spec, "shop")
        if options is not None and set(options) - {"seed"}:
            raise ValueError(f"{spec!r}: a generated dataset takes only seed=")
        data_dir = generated_data_dir(options.get("seed", 0)) if options is not None else Path(spec)
        if not data_dir.is_dir():
            raise FileNotFoundError(f"no table folder at {spec!r} (or use 'shop')")
        connection = duckdb.connect(str(_database(data_dir)), read_only=True, config=DB_CONFIG)
        tables = tuple(r[0] for r in connection.execute("SHOW TABLES").fetchall())
        _OPEN[spec] = TableSet(data_dir=data_dir.resolve(), connection=connection, tables=tables)
    return _OPEN[spec]


def plain(value: Any) -> Any:
    """A DuckDB value as JSON: decimals as floats, dates as ISO text."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 6)
    return value
