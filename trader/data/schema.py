"""DDL for MMR's three DuckDB files, in one place.

Each schema is an ordered list of idempotent statements (``CREATE … IF NOT EXISTS``,
``ALTER TABLE … ADD COLUMN IF NOT EXISTS``). `DuckStore` runs the ones a file has not seen yet, once per
process per file, and records each in the file's ``schema_version`` table. To change a table later, APPEND a
statement (never edit or reorder old ones): old files pick up the new statement, new files run them all.

- ``state.duckdb`` (`STATE_SCHEMA`): the audit trail and small mutable state: event_store, proposal_store,
  position_groups, object_store (contracts cache), universes.
- ``bars.duckdb`` (`BARS_SCHEMA`): bulk market data (tick_data), kept apart so bar ingest never blocks the
  audit trail.
- ``research.duckdb`` (`RESEARCH_SCHEMA`): backtest runs, walk-forwards, validations and sweeps, kept apart
  for the same reason.

This module is plain strings: importing it costs nothing.
"""

from __future__ import annotations

# Keeps the bookkeeping table itself out of the migration list: DuckStore creates it before anything else.
SCHEMA_VERSION_DDL = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    digest      VARCHAR NOT NULL UNIQUE,
    applied_at  TIMESTAMPTZ NOT NULL,
    statement   VARCHAR NOT NULL
)
"""

EVENT_STORE_DDL = (
    "CREATE SEQUENCE IF NOT EXISTS event_store_id_seq START 1",
    """
    CREATE TABLE IF NOT EXISTS event_store (
        id              BIGINT PRIMARY KEY DEFAULT nextval('event_store_id_seq'),
        ts              TIMESTAMPTZ NOT NULL,
        kind            VARCHAR NOT NULL,
        correlation_id  VARCHAR,
        source          VARCHAR,
        payload         JSON
    )
    """,
)

PROPOSAL_STORE_DDL = (
    """
    CREATE TABLE IF NOT EXISTS proposal_store (
        id           BIGINT PRIMARY KEY,
        created_at   TIMESTAMPTZ,
        updated_at   TIMESTAMPTZ,
        state        VARCHAR NOT NULL,
        symbol       VARCHAR,
        action       VARCHAR,
        quantity     DOUBLE,
        amount       DOUBLE,
        order_type   VARCHAR,
        limit_price  DOUBLE,
        confidence   DOUBLE,
        group_name   VARCHAR,
        reasoning    VARCHAR,
        expires_at   TIMESTAMPTZ,
        order_ids    JSON,
        detail       JSON,
        version      INTEGER NOT NULL DEFAULT 0
    )
    """,
    # issue 15: the request id as an indexed column — a retried propose is found without parsing every row's
    # JSON (strategies propose thousands a day); filled in for the proposals stored before it existed.
    # (The index before the backfill: DuckDB refuses to create an index over rows updated in the same transaction.)
    "ALTER TABLE proposal_store ADD COLUMN IF NOT EXISTS request_id VARCHAR",
    "CREATE INDEX IF NOT EXISTS proposal_store_request_id ON proposal_store (request_id)",
    """
    UPDATE proposal_store SET request_id = json_extract_string(detail, '$.request_id')
    WHERE request_id IS NULL AND coalesce(json_extract_string(detail, '$.request_id'), '') <> ''
    """,
)

POSITION_GROUPS_DDL = (
    """
    CREATE TABLE IF NOT EXISTS position_groups (
        name        VARCHAR PRIMARY KEY,
        budget_pct  DOUBLE,
        symbols     JSON,
        created_at  TIMESTAMPTZ,
        updated_at  TIMESTAMPTZ
    )
    """,
)

OBJECT_STORE_DDL = (
    """
    CREATE TABLE IF NOT EXISTS object_store (
        key         VARCHAR PRIMARY KEY,
        kind        VARCHAR,
        value       JSON,
        updated_at  TIMESTAMPTZ
    )
    """,
)

TICK_DATA_DDL = (
    """
    CREATE TABLE IF NOT EXISTS tick_data (
        conid      BIGINT NOT NULL,
        bar_size   VARCHAR NOT NULL,
        ts         TIMESTAMPTZ NOT NULL,
        source     VARCHAR NOT NULL,
        open       DOUBLE,
        high       DOUBLE,
        low        DOUBLE,
        close      DOUBLE,
        volume     DOUBLE,
        vwap       DOUBLE,
        bar_count  BIGINT,
        PRIMARY KEY (conid, bar_size, ts, source)
    )
    """,
)

# Append new statements at the END of these tuples (see module docstring).
STATE_SCHEMA: tuple[str, ...] = (
    *EVENT_STORE_DDL,
    *PROPOSAL_STORE_DDL,
    *POSITION_GROUPS_DDL,
    *OBJECT_STORE_DDL,
)

BARS_SCHEMA: tuple[str, ...] = (*TICK_DATA_DDL,)

# issue 7: the history downloader's job table (bars.duckdb): one row per finished request chunk, so an
# interrupted download resumes where it stopped.
HISTORY_CHUNKS_DDL = (
    """
    CREATE TABLE IF NOT EXISTS history_chunks (
        conid         BIGINT NOT NULL,
        bar_size      VARCHAR NOT NULL,
        source        VARCHAR NOT NULL,
        chunk_end     TIMESTAMPTZ NOT NULL,
        chunk_seconds BIGINT NOT NULL,
        bars          BIGINT NOT NULL,
        done_at       TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (conid, bar_size, source, chunk_end)
    )
    """,
)
BARS_SCHEMA = (*BARS_SCHEMA, *HISTORY_CHUNKS_DDL)

# issue 7: universes (state.duckdb): named symbol lists; conid is filled in once a symbol is resolved
# (and then serves as the cache).
UNIVERSES_DDL = (
    """
    CREATE TABLE IF NOT EXISTS universes (
        name        VARCHAR PRIMARY KEY,
        description VARCHAR NOT NULL DEFAULT '',
        created_at  TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS universe_members (
        universe  VARCHAR NOT NULL,
        symbol    VARCHAR NOT NULL,
        sec_type  VARCHAR NOT NULL DEFAULT 'STK',
        exchange  VARCHAR NOT NULL DEFAULT 'SMART',
        currency  VARCHAR NOT NULL DEFAULT 'USD',
        conid     BIGINT,
        added_at  TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (universe, symbol)
    )
    """,
)
STATE_SCHEMA = (*STATE_SCHEMA, *UNIVERSES_DDL)

# issue 7: what each stored conId is (bars.duckdb), so inventory and reads work by symbol without the broker.
BAR_SYMBOLS_DDL = (
    """
    CREATE TABLE IF NOT EXISTS bar_symbols (
        conid            BIGINT PRIMARY KEY,
        symbol           VARCHAR NOT NULL,
        sec_type         VARCHAR NOT NULL,
        exchange         VARCHAR NOT NULL,
        primary_exchange VARCHAR NOT NULL,
        currency         VARCHAR NOT NULL,
        time_zone        VARCHAR NOT NULL
    )
    """,
)
BARS_SCHEMA = (*BARS_SCHEMA, *BAR_SYMBOLS_DDL)

# issue 8: persisted backtest runs (state.duckdb); metrics, trades and equity curve as JSON text.
BACKTEST_DDL = (
    """
    CREATE TABLE IF NOT EXISTS backtest_runs (
        id           VARCHAR PRIMARY KEY,
        created_at   TIMESTAMPTZ NOT NULL,
        strategy     VARCHAR NOT NULL,
        class_name   VARCHAR NOT NULL,
        source_hash  VARCHAR NOT NULL,
        params       VARCHAR NOT NULL,
        conids       VARCHAR NOT NULL,
        start_ts     TIMESTAMPTZ,
        end_ts       TIMESTAMPTZ,
        bar_size     VARCHAR NOT NULL,
        costs        VARCHAR NOT NULL,
        capital      DOUBLE NOT NULL,
        mode         VARCHAR NOT NULL,
        metrics      VARCHAR NOT NULL,
        trades       VARCHAR NOT NULL,
        equity       VARCHAR NOT NULL,
        score        DOUBLE NOT NULL,
        archived     BOOLEAN NOT NULL DEFAULT FALSE
    )
    """,
)
STATE_SCHEMA = (*STATE_SCHEMA, *BACKTEST_DDL)

# issue 9 (validation): walk-forward results and promotion verdicts (research.duckdb); windows, summary, PBO and
# checks as JSON text. `run_id` on walkforward_runs is set when `backtests validate` ran it for one stored run.
VALIDATION_DDL = (
    """
    CREATE TABLE IF NOT EXISTS walkforward_runs (
        id          VARCHAR PRIMARY KEY,
        created_at  TIMESTAMPTZ NOT NULL,
        strategy    VARCHAR NOT NULL,
        class_name  VARCHAR NOT NULL,
        conids      VARCHAR NOT NULL,
        bar_size    VARCHAR NOT NULL,
        grid        VARCHAR NOT NULL,
        settings    VARCHAR NOT NULL,
        windows     VARCHAR NOT NULL,
        summary     VARCHAR NOT NULL,
        pbo         VARCHAR,
        run_id      VARCHAR
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS run_validations (
        id              VARCHAR PRIMARY KEY,
        run_id          VARCHAR NOT NULL,
        created_at      TIMESTAMPTZ NOT NULL,
        walkforward_id  VARCHAR,
        passed          BOOLEAN NOT NULL,
        checks          VARCHAR NOT NULL,
        criteria        VARCHAR NOT NULL
    )
    """,
)

# issue 9: parameter sweeps (research.duckdb). A sweep row holds its jobs as JSON (so `resume` can rebuild them);
# each run of a sweep is a backtest_runs row tagged with the sweep id, the job name and a canonical JSON of its
# params (combo_key): a combo is finished when that (sweep_id, sweep_job, combo_key) row exists.
SWEEP_DDL = (
    """
    CREATE TABLE IF NOT EXISTS sweeps (
        id           VARCHAR PRIMARY KEY,
        name         VARCHAR NOT NULL,
        status       VARCHAR NOT NULL,
        created_at   TIMESTAMPTZ NOT NULL,
        finished_at  TIMESTAMPTZ,
        jobs         VARCHAR NOT NULL,
        total        BIGINT NOT NULL,
        done         BIGINT NOT NULL DEFAULT 0,
        failed       BIGINT NOT NULL DEFAULT 0,
        elapsed_s    DOUBLE NOT NULL DEFAULT 0,
        digest_path  VARCHAR,
        errors       VARCHAR
    )
    """,
    "ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS sweep_id VARCHAR",
    "ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS sweep_job VARCHAR",
    "ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS combo_key VARCHAR",
)

# issue 7 (speed): tick_data without the PRIMARY KEY. Maintaining the ART index cost ~75% of ingest time;
# the key (conid, bar_size, ts, source) is now kept by BarStore.ingest, the table's only writer, with an
# anti-join under the store's exclusive lock. The copy-and-rename runs once, in the migration transaction.
TICK_DATA_NO_PK_DDL = (
    """
    CREATE TABLE IF NOT EXISTS tick_data_v2 (
        conid      BIGINT NOT NULL,
        bar_size   VARCHAR NOT NULL,
        ts         TIMESTAMPTZ NOT NULL,
        source     VARCHAR NOT NULL,
        open       DOUBLE,
        high       DOUBLE,
        low        DOUBLE,
        close      DOUBLE,
        volume     DOUBLE,
        vwap       DOUBLE,
        bar_count  BIGINT
    )
    """,
    "INSERT INTO tick_data_v2 SELECT * FROM tick_data ORDER BY conid, bar_size, source, ts",
    "DROP TABLE tick_data",
    "ALTER TABLE tick_data_v2 RENAME TO tick_data",
)
BARS_SCHEMA = (*BARS_SCHEMA, *TICK_DATA_NO_PK_DDL)

# issue 9: the equity curve's timestamps are the same for every run of a sweep job, so sweep runs store only the
# values ({"v": [...]}) and the timestamps once here; trader.simulation.store.get_run joins them back.
SWEEP_EQUITY_INDEX_DDL = (
    """
    CREATE TABLE IF NOT EXISTS sweep_equity_index (
        sweep_id   VARCHAR NOT NULL,
        sweep_job  VARCHAR NOT NULL,
        t          VARCHAR NOT NULL,
        PRIMARY KEY (sweep_id, sweep_job)
    )
    """,
)

# Research results — backtest runs, walk-forwards, validations, sweeps — live in ``research.duckdb``, apart from
# the audit trail: a nightly sweep writing thousands of runs must never hold the lock that an order's durable
# audit record waits for. (backtest_runs was first created in state.duckdb; research_store() adopts its rows
# once, when research.duckdb is created. The statements above stay in STATE_SCHEMA for that history only.)
RESEARCH_SCHEMA: tuple[str, ...] = (*BACKTEST_DDL, *VALIDATION_DDL, *SWEEP_DDL, *SWEEP_EQUITY_INDEX_DDL)
RESEARCH_TABLES: tuple[str, ...] = ("backtest_runs", "walkforward_runs", "run_validations", "sweeps",
                                    "sweep_equity_index")

# issue 13: exactly-once order actions and the durable fill ledger (state.duckdb).
# order_intents: one row per client request id (buy, sell, close, cancel, approve …), written *before* the
# broker is touched; a retry with the same id is answered from this row. fills/commissions: the fill ledger,
# keyed by execId (corrections replace the earlier revision; commissions attach once), so `trades` and
# reconciliation survive any restart.
ORDER_RECORDS_DDL = (
    """
    CREATE TABLE IF NOT EXISTS order_intents (
        request_id   VARCHAR PRIMARY KEY,
        kind         VARCHAR NOT NULL,
        state        VARCHAR NOT NULL,
        source       VARCHAR,
        order_ref    VARCHAR,
        proposal_id  BIGINT,
        created_at   TIMESTAMPTZ NOT NULL,
        updated_at   TIMESTAMPTZ NOT NULL,
        deadline     TIMESTAMPTZ,
        request      JSON,
        result       JSON,
        error        JSON,
        order_ids    JSON
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS fills (
        exec_key     VARCHAR PRIMARY KEY,
        exec_id      VARCHAR NOT NULL,
        order_id     BIGINT,
        perm_id      BIGINT,
        order_ref    VARCHAR,
        symbol       VARCHAR,
        con_id       BIGINT,
        side         VARCHAR,
        shares       DOUBLE,
        price        DOUBLE,
        time         TIMESTAMPTZ,
        exchange     VARCHAR,
        account      VARCHAR,
        recovered    BOOLEAN NOT NULL DEFAULT false,
        recorded_at  TIMESTAMPTZ NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS commissions (
        exec_id       VARCHAR PRIMARY KEY,
        commission    DOUBLE,
        currency      VARCHAR,
        realized_pnl  DOUBLE,
        recorded_at   TIMESTAMPTZ NOT NULL
    )
    """,
)
STATE_SCHEMA = (*STATE_SCHEMA, *ORDER_RECORDS_DDL)

# issue 20: every run says what its bars are worth — provenance (vendor_history, simulated_gateway_history,
# simulated_model) and coverage (bars present vs the exchange calendar's expected bars, per conId, JSON).
# generations: each `strategies generate` call with its prompt, model, raw response and outcome.
RESEARCH_TRUST_DDL = (
    "ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS provenance VARCHAR",
    "ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS coverage VARCHAR",
    "ALTER TABLE walkforward_runs ADD COLUMN IF NOT EXISTS provenance VARCHAR",
    "ALTER TABLE walkforward_runs ADD COLUMN IF NOT EXISTS coverage VARCHAR",
    """
    CREATE TABLE IF NOT EXISTS strategy_generations (
        id          VARCHAR PRIMARY KEY,
        created_at  TIMESTAMPTZ NOT NULL,
        model       VARCHAR NOT NULL,
        request     VARCHAR NOT NULL,
        prompt      VARCHAR NOT NULL,
        response    VARCHAR,
        outcome     VARCHAR
    )
    """,
)
RESEARCH_SCHEMA = (*RESEARCH_SCHEMA, *RESEARCH_TRUST_DDL)

# issue 20: the execution semantics of a run: "backtest" (the backtester's sizing) or "live" (`--execution live`:
# the live runtime's sizing rules); NULL for runs stored before it was recorded.
RESEARCH_EXECUTION_DDL = ("ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS execution VARCHAR",)
RESEARCH_SCHEMA = (*RESEARCH_SCHEMA, *RESEARCH_EXECUTION_DDL)

# issue 23: a sweep run's per-period return moments (JSON: n, sr, skew, kurt), so the leaderboard ranks by the
# Deflated Sharpe without decoding every stored equity curve (trader/simulation/sweep_rank.py).
RESEARCH_MOMENTS_DDL = ("ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS moments VARCHAR",)
RESEARCH_SCHEMA = (*RESEARCH_SCHEMA, *RESEARCH_MOMENTS_DDL)

# issue 23: a sweep run's equity values as little-endian float64 bytes (8 bytes a bar instead of ~16 of JSON text,
# no encoding or parsing); `equity` then holds only what else the curve has ({} or {"t": [...]}). Rows stored
# before keep their values in `equity` ("v") and are read as before (trader.simulation.store.equity_values).
# A run of a one-conId job that went through the grid pass stores even less: its constant-state segments
# (`equity_seg`: rows of first bar, cash, position as float64 bytes), the job's closes once in
# sweep_equity_index.close; its curve is cash + position × close over each segment, rounded to 6 decimals.
RESEARCH_EQUITY_BLOB_DDL = ("ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS equity_v BLOB",
                            "ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS equity_seg BLOB",
                            "ALTER TABLE sweep_equity_index ADD COLUMN IF NOT EXISTS close BLOB")
RESEARCH_SCHEMA = (*RESEARCH_SCHEMA, *RESEARCH_EQUITY_BLOB_DDL)

# issue 23 (scale): a run's trades JSON of at least `trader.simulation.store.TRADES_Z_MIN` bytes (a year of
# one-minute bars: ~1 MB) is stored zlib-compressed in `trades_z` (`trades` then ''). DuckDB's checkpoint
# rewrites a table's partly filled row group, holding it in memory: with ~1 MB of text per run that alone took
# the 10,000-run one-minute sweep's writer to ~4 GiB; compressed (~5x smaller) it needs a fifth.
RESEARCH_TRADES_Z_DDL = ("ALTER TABLE backtest_runs ADD COLUMN IF NOT EXISTS trades_z BLOB",)
RESEARCH_SCHEMA = (*RESEARCH_SCHEMA, *RESEARCH_TRADES_Z_DDL)
