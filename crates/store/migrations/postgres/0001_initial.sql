-- Initial schema. Tables are created unqualified: the connection's search_path names the
-- schema the store lives in.

CREATE TABLE tenant_bindings (
    environment_id TEXT NOT NULL PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    targets        JSONB NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE inbox (
    worker      TEXT NOT NULL,
    event_id    UUID NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (worker, event_id)
);
CREATE INDEX inbox_received_at ON inbox (received_at);

CREATE TABLE idempotency_keys (
    worker     TEXT NOT NULL,
    key        TEXT NOT NULL,
    outcome    JSONB NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (worker, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

CREATE TABLE outbox (
    id            UUID NOT NULL PRIMARY KEY,
    worker        TEXT NOT NULL,
    destination   TEXT NOT NULL,
    body          BYTEA NOT NULL,
    content_type  TEXT NOT NULL,
    properties    JSONB NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    claimed_by    TEXT,
    claimed_until TIMESTAMPTZ,
    claims        BIGINT NOT NULL DEFAULT 0,
    dispatched_at TIMESTAMPTZ
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
    version        BIGINT NOT NULL,
    body           JSONB NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, tenant_id, id)
);
CREATE INDEX records_environment ON records (kind, tenant_id, environment_id);
