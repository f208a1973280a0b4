-- Initial schema. Timestamps are INTEGER microseconds since the Unix epoch (UTC) so that range
-- comparisons in the purge and claim queries are plain integer comparisons.

CREATE TABLE tenant_bindings (
    environment_id TEXT NOT NULL PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    targets        TEXT NOT NULL,
    updated_at     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE inbox (
    worker      TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (worker, event_id)
) WITHOUT ROWID;
CREATE INDEX inbox_received_at ON inbox (received_at);

CREATE TABLE idempotency_keys (
    worker     TEXT NOT NULL,
    key        TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (worker, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

CREATE TABLE outbox (
    id            TEXT NOT NULL PRIMARY KEY,
    worker        TEXT NOT NULL,
    destination   TEXT NOT NULL,
    body          BLOB NOT NULL,
    content_type  TEXT NOT NULL,
    properties    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    claimed_by    TEXT,
    claimed_until INTEGER,
    claims        INTEGER NOT NULL DEFAULT 0,
    dispatched_at INTEGER
);
-- Serves the pending scan (claim, pending count): only undispatched rows are indexed.
CREATE INDEX outbox_pending ON outbox (created_at, id) WHERE dispatched_at IS NULL;
-- Serves the purge of dispatched rows.
CREATE INDEX outbox_dispatched_at ON outbox (dispatched_at) WHERE dispatched_at IS NOT NULL;

CREATE TABLE records (
    kind           TEXT NOT NULL,
    tenant_id      TEXT NOT NULL,
    id             TEXT NOT NULL,
    environment_id TEXT NOT NULL,
    version        INTEGER NOT NULL,
    body           TEXT NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (kind, tenant_id, id)
) WITHOUT ROWID;
CREATE INDEX records_environment ON records (kind, tenant_id, environment_id);
