//! The schema of both backends, as one ordered list of migrations: each
//! [`Migration`] is one change, written once for SQLite and once for
//! PostgreSQL, so that schema version N means the same tables and columns in
//! both (a test compares them). SQLite records the version in `PRAGMA
//! user_version`, PostgreSQL in `schema_version`; each migration runs in its
//! own transaction.
//!
//! Never edit a released migration: append a new one.

/// One change of the schema, in each backend's dialect.
pub struct Migration {
    /// SQLite.
    pub sqlite: &'static str,
    /// PostgreSQL.
    pub postgres: &'static str,
}

/// Migrations, in order.
pub const MIGRATIONS: &[Migration] = &[
    Migration { sqlite: SQLITE[0], postgres: POSTGRES[0] },
    Migration { sqlite: SQLITE[1], postgres: POSTGRES[1] },
    Migration { sqlite: SQLITE[2], postgres: POSTGRES[2] },
    Migration { sqlite: SQLITE[3], postgres: POSTGRES[3] },
    Migration { sqlite: SQLITE[4], postgres: POSTGRES[4] },
    Migration { sqlite: SQLITE[5], postgres: POSTGRES[5] },
    Migration { sqlite: SQLITE[6], postgres: POSTGRES[6] },
    Migration { sqlite: SQLITE[7], postgres: POSTGRES[7] },
    Migration { sqlite: SQLITE[8], postgres: POSTGRES[8] },
    Migration { sqlite: SQLITE[9], postgres: POSTGRES[9] },
    Migration { sqlite: SQLITE[10], postgres: POSTGRES[10] },
    Migration { sqlite: SQLITE[11], postgres: POSTGRES[11] },
    Migration { sqlite: SQLITE[12], postgres: POSTGRES[12] },
    Migration { sqlite: SQLITE[13], postgres: POSTGRES[13] },
    Migration { sqlite: SQLITE[14], postgres: POSTGRES[14] },
];

/// The SQLite side (the comments explain each change).
const SQLITE: [&str; 15] = [
    // 1: the core tables.
    r#"
    CREATE TABLE instance (
        singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
        instance_id TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE domains (
        name TEXT PRIMARY KEY
    );
    CREATE TABLE procedures (
        name                    TEXT PRIMARY KEY,
        domain                  TEXT NOT NULL REFERENCES domains(name),
        protocol                TEXT NOT NULL CHECK (protocol IN ('scep', 'cmp', 'est', 'acme', 'other')),
        require_preregistration INTEGER NOT NULL CHECK (require_preregistration IN (0, 1)),
        allowed_domains         TEXT NOT NULL,  -- JSON array of canonical names
        created_by              TEXT NOT NULL,
        created_at              INTEGER NOT NULL,
        CHECK (require_preregistration = 1 OR protocol NOT IN ('scep', 'cmp'))
    );
    CREATE TABLE officers (
        kid            TEXT PRIMARY KEY,
        name           TEXT NOT NULL UNIQUE,
        algorithm      TEXT NOT NULL CHECK (algorithm IN ('EdDSA', 'ES256')),
        public_key_pem TEXT NOT NULL,
        domains        TEXT NOT NULL,  -- JSON array; ["*"] is every domain
        created_by     TEXT NOT NULL,
        created_at     INTEGER NOT NULL
    );
    CREATE TABLE registrations (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        domain          TEXT NOT NULL REFERENCES domains(name),
        procedure       TEXT NOT NULL REFERENCES procedures(name),
        pattern         TEXT NOT NULL,
        index_key       TEXT NOT NULL,  -- prereg_core::IndexKey::encode
        ip              TEXT,
        serial          TEXT,
        password_hash   TEXT,           -- PHC string (argon2id)
        expires_at      INTEGER,
        max_enrollments INTEGER CHECK (max_enrollments IS NULL OR max_enrollments > 0),
        enrollments     INTEGER NOT NULL DEFAULT 0 CHECK (enrollments >= 0),
        failed_attempts INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
        state           TEXT NOT NULL CHECK (state IN ('open', 'used', 'disabled', 'locked')),
        created_by      TEXT NOT NULL REFERENCES officers(kid),
        created_at      INTEGER NOT NULL,
        -- SPEC: canonical patterns are unique within a domain. The constraint,
        -- not a check in code, is what makes exactly one of two racing writers win.
        UNIQUE (domain, pattern)
    );
    -- Candidate lookups: a handful of equality probes per decision, never a scan.
    CREATE INDEX registrations_by_key ON registrations (domain, index_key);
    CREATE TABLE request_ids (
        jti        TEXT PRIMARY KEY,
        kid        TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX request_ids_by_expiry ON request_ids (expires_at);
    CREATE TABLE audit (
        seq           INTEGER PRIMARY KEY,
        prev_hash     TEXT NOT NULL,
        hash          TEXT NOT NULL,
        time          INTEGER NOT NULL,
        actor         TEXT NOT NULL,
        action        TEXT NOT NULL,
        object        TEXT NOT NULL,
        outcome       TEXT NOT NULL,
        reason        TEXT,
        policy_sha256 TEXT,
        request       TEXT NOT NULL,
        detail        TEXT NOT NULL
    );
    "#,
    // 2: bulk imports. A registration remembers the import and the row it came
    // from, so that running the same file again changes nothing.
    r#"
    CREATE TABLE imports (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        sha256      TEXT NOT NULL,
        procedure   TEXT NOT NULL,
        file_name   TEXT NOT NULL,
        partial     INTEGER NOT NULL CHECK (partial IN (0, 1)),
        dry_run     INTEGER NOT NULL CHECK (dry_run IN (0, 1)),
        officer     TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('running', 'completed', 'rejected', 'interrupted', 'failed')),
        rows_total  INTEGER NOT NULL,
        rows_done   INTEGER NOT NULL DEFAULT 0,
        created     INTEGER NOT NULL DEFAULT 0,
        unchanged   INTEGER NOT NULL DEFAULT 0,
        errors      INTEGER NOT NULL DEFAULT 0,
        started_at  INTEGER NOT NULL,
        finished_at INTEGER,
        message     TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX imports_by_file ON imports (sha256, procedure);
    ALTER TABLE registrations ADD COLUMN import_id INTEGER REFERENCES imports(id);
    ALTER TABLE registrations ADD COLUMN import_row INTEGER;
    "#,
    // 3: policy versions. The component itself is kept, so that any version
    // can be activated again, and the active one is loaded at start.
    r#"
    CREATE TABLE policies (
        sha256      TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        version     TEXT NOT NULL,
        wit_version TEXT NOT NULL,
        size        INTEGER NOT NULL,
        component   BLOB NOT NULL,
        loaded_by   TEXT NOT NULL,
        loaded_at   INTEGER NOT NULL
    );
    CREATE TABLE active_policy (
        singleton    INTEGER PRIMARY KEY CHECK (singleton = 1),
        sha256       TEXT REFERENCES policies(sha256),  -- NULL: the built-in default policy
        activated_by TEXT NOT NULL,
        activated_at INTEGER NOT NULL
    );
    "#,
    // 4: the hashes of precompiled policies this program wrote (see
    // engine::cache): only a file with a recorded hash is deserialized.
    r#"
    CREATE TABLE precompiled (
        key    TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL
    );
    "#,
    // 5: shadow mode: a candidate policy decides beside the active one on
    // every enrollment, without effect; the decisions where they disagree are
    // kept, with how many were compared.
    r#"
    CREATE TABLE shadow_policy (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        sha256    TEXT REFERENCES policies(sha256),  -- NULL: no shadow
        set_by    TEXT NOT NULL,
        set_at    INTEGER NOT NULL,
        compared  INTEGER NOT NULL DEFAULT 0,
        disagreed INTEGER NOT NULL DEFAULT 0,
        since_id  INTEGER NOT NULL DEFAULT 0  -- disagreements of this shadow period have larger ids
    );
    CREATE TABLE shadow_disagreements (
        id                  INTEGER PRIMARY KEY,
        time                INTEGER NOT NULL,
        audit_seq           INTEGER NOT NULL,
        request             TEXT NOT NULL,
        active_sha256       TEXT NOT NULL,
        active_allowed      INTEGER NOT NULL,
        active_reason       TEXT NOT NULL,
        active_registration INTEGER,
        active_explanation  TEXT NOT NULL,
        shadow_sha256       TEXT NOT NULL,
        shadow_allowed      INTEGER NOT NULL,
        shadow_reason       TEXT NOT NULL,
        shadow_registration INTEGER,
        shadow_explanation  TEXT NOT NULL
    );
    CREATE INDEX shadow_disagreements_by_shadow ON shadow_disagreements (shadow_sha256, id);
    "#,
    // 6: the change log that keeps in-memory candidate indexes (crate::index)
    // in step with the store, whichever process writes. Each entry names the
    // registrations `first_id` to `last_id` as changed: triggers log every
    // update and delete, in the writer's own transaction; inserts are logged
    // by the storage layer when their transaction commits, as one id range
    // (a bulk import of a million rows is one entry, not a million trigger
    // runs). `seq` only grows: pruning always keeps the newest entry, so
    // SQLite never hands out a smaller rowid again.
    r#"
    CREATE TABLE registration_changes (
        seq      INTEGER PRIMARY KEY,
        first_id INTEGER NOT NULL,
        last_id  INTEGER NOT NULL
    );
    CREATE TRIGGER registrations_updated AFTER UPDATE ON registrations BEGIN
        INSERT INTO registration_changes (first_id, last_id) VALUES (NEW.id, NEW.id);
    END;
    CREATE TRIGGER registrations_deleted AFTER DELETE ON registrations BEGIN
        INSERT INTO registration_changes (first_id, last_id) VALUES (OLD.id, OLD.id);
    END;
    "#,
    // 7: enrollment. A registration may keep its password sealed to the
    // instance's key (crate::sealing) for CMP's MAC; a token procedure sets
    // the validity of the certificates issued through it.
    r#"
    ALTER TABLE registrations ADD COLUMN password_sealed TEXT;
    ALTER TABLE procedures ADD COLUMN certificate_days INTEGER NOT NULL DEFAULT 365
        CHECK (certificate_days BETWEEN 1 AND 3650);
    "#,
    // 8: certificates the enrollment front issued, kept in the store rather
    // than in one process's memory: a CMP certificate held for its certConf
    // (which a restarted process, or another node, can then accept), and
    // every issued certificate (a resent SCEP request, CertPoll, GetCert).
    r#"
    CREATE TABLE certificates (
        serial         TEXT PRIMARY KEY,   -- lower-case hex of the INTEGER's content
        transaction_id TEXT NOT NULL,      -- cmp:<hex> or scep:<id>
        registration   INTEGER,
        state          TEXT NOT NULL CHECK (state IN ('held', 'confirming', 'issued', 'rejected')),
        der            BLOB NOT NULL,
        request        TEXT NOT NULL,      -- what a confirmation needs again (JSON, no password)
        issued_at      INTEGER NOT NULL,
        expires_at     INTEGER NOT NULL    -- held: the confirmation deadline; issued: notAfter
    );
    CREATE INDEX certificates_by_transaction ON certificates (transaction_id, issued_at);
    "#,
    // 9: clusters. The enrollment limit is enforced by the database as well
    // as by the rules (a CHECK in PostgreSQL; SQLite cannot add one to an
    // existing table, so a trigger); the nodes serving one store report
    // themselves (`prereg cluster status`); the instance records the public
    // half of its sealing key, so that a node with another key is refused.
    r#"
    CREATE TRIGGER registrations_within_limit BEFORE UPDATE OF enrollments ON registrations
    WHEN NEW.max_enrollments IS NOT NULL AND NEW.enrollments > NEW.max_enrollments BEGIN
        SELECT RAISE(ABORT, 'enrollments_within_limit: enrollments exceed max_enrollments');
    END;
    CREATE TABLE nodes (
        node_id       TEXT PRIMARY KEY,
        address       TEXT NOT NULL,
        version       TEXT NOT NULL,
        started_at    INTEGER NOT NULL,
        seen_at       INTEGER NOT NULL,
        policy_sha256 TEXT NOT NULL,
        policy_name   TEXT NOT NULL,
        index_seq     INTEGER NOT NULL,  -- the registration change the node's index has applied
        stopped       INTEGER NOT NULL DEFAULT 0 CHECK (stopped IN (0, 1))
    );
    ALTER TABLE instance ADD COLUMN sealing_key TEXT;
    "#,
    // 10: revocation and a keyed audit log. An enrollment is counted when its certificate is
    // issued; a CMP certificate the client rejects or never confirms is
    // revoked (revoked_at, with an RFC 5280 CRLReason code or NULL for
    // unspecified) and its count given back. Certificates held, being
    // confirmed or rejected under earlier versions were sent to clients but
    // never counted: they are revoked here. The CA's CRLs are kept, newest
    // last, so that every node serves the same one and the cRLNumber only
    // grows (`revoked` is how many revoked certificates it lists). Audit
    // records carry a MAC by a key derived from the instance key
    // (crate::audit::AuditKeys) from the first one written with it on, which
    // the instance records (audit_keyed_from, with its own MAC). An officer's
    // key can be disabled (officers.disabled_at).
    r#"
    ALTER TABLE audit ADD COLUMN mac TEXT;
    ALTER TABLE officers ADD COLUMN disabled_at INTEGER;
    ALTER TABLE instance ADD COLUMN audit_keyed_from INTEGER;
    ALTER TABLE instance ADD COLUMN audit_keyed_mac TEXT;
    ALTER TABLE certificates ADD COLUMN revoked_at INTEGER;
    ALTER TABLE certificates ADD COLUMN revocation_reason INTEGER;
    UPDATE certificates SET state = 'rejected', revoked_at = issued_at
        WHERE state IN ('held', 'confirming', 'rejected');
    CREATE INDEX certificates_by_state ON certificates (state, expires_at);
    CREATE INDEX certificates_revoked ON certificates (revoked_at) WHERE revoked_at IS NOT NULL;
    CREATE TABLE crls (
        number      INTEGER PRIMARY KEY,
        this_update INTEGER NOT NULL,
        next_update INTEGER NOT NULL,
        revoked     INTEGER NOT NULL,
        der         BLOB NOT NULL
    );
    "#,
    // 11: a service that faces a network. CA callers are the systems that ask
    // for enrollment decisions (a CA front, another CA's webhook): each may
    // ask for the token procedures it lists (JSON array), authenticated by a
    // bearer secret of which only the SHA-256 is kept (a random 256-bit
    // secret needs no slow hash) and/or a TLS client certificate (its SHA-256
    // fingerprint). Audit records carry the domain they belong to (NULL:
    // instance-wide, seen by officers of every domain only), so officers read
    // only their domains' records; the record hash covers it when present.
    r#"
    CREATE TABLE callers (
        name               TEXT PRIMARY KEY,
        procedures         TEXT NOT NULL,
        secret_sha256      TEXT UNIQUE,
        certificate_sha256 TEXT UNIQUE,
        created_by         TEXT NOT NULL,
        created_at         INTEGER NOT NULL,
        disabled_at        INTEGER
    );
    ALTER TABLE audit ADD COLUMN domain TEXT;
    CREATE INDEX audit_by_domain ON audit (domain, seq);
    "#,
    // 12: retried enrollments. A CA caller may send an Idempotency-Key with
    // an enrollment; the answer is kept under (caller, key) with the SHA-256
    // of the request it answered, in the transaction of the decision, so a
    // retry gets the first answer and counts nothing again (kept a day).
    r#"
    CREATE TABLE idempotent_answers (
        caller         TEXT NOT NULL,
        key            TEXT NOT NULL,
        request_sha256 TEXT NOT NULL,
        answer         TEXT NOT NULL,
        created_at     INTEGER NOT NULL,
        PRIMARY KEY (caller, key)
    );
    CREATE INDEX idempotent_answers_by_age ON idempotent_answers (created_at);
    "#,
    // 13: staged imports and import leases. An all-or-nothing import writes
    // its rows in short transactions, each marked `staged_by` the import;
    // they count only once that import is `completed`, so the one
    // transaction that completes it makes them all visible at once, and a
    // rejected or interrupted import's rows never are (they are deleted in
    // batches afterwards). Every read of registrations goes through
    // `visible_registrations`; the unique (domain, pattern) index still
    // covers staged rows, so an import cannot stage a name twice. The
    // change log skips deleting a row nobody could see. An import's `owner`
    // (host, process, start time) renews `heartbeat_at` while it runs, so
    // another process marks it interrupted only when its owner is gone.
    // (SQLite expands the view's `*` when it is used; PostgreSQL when it is
    // created: a migration that adds a column to registrations recreates
    // the view there.)
    r#"
    ALTER TABLE registrations ADD COLUMN staged_by INTEGER;
    CREATE INDEX registrations_staged ON registrations (staged_by, id) WHERE staged_by IS NOT NULL;
    CREATE VIEW visible_registrations AS SELECT * FROM registrations
        WHERE staged_by IS NULL OR staged_by IN (SELECT id FROM imports WHERE status = 'completed');
    DROP TRIGGER registrations_deleted;
    CREATE TRIGGER registrations_deleted AFTER DELETE ON registrations
        WHEN OLD.staged_by IS NULL OR OLD.staged_by IN (SELECT id FROM imports WHERE status = 'completed')
    BEGIN
        INSERT INTO registration_changes (first_id, last_id) VALUES (OLD.id, OLD.id);
    END;
    ALTER TABLE imports ADD COLUMN owner TEXT;
    ALTER TABLE imports ADD COLUMN heartbeat_at INTEGER;
    "#,
    // 14: webhooks. A CA caller that is another CA's authorizing webhook
    // (step-ca) proves each call with an HMAC keyed by a shared secret, so
    // the service must have the secret itself: it is kept sealed to the
    // instance's key (like CMP passwords), never in clear.
    r#"
    ALTER TABLE callers ADD COLUMN webhook_secret_sealed TEXT;
    "#,
    // 15: ACME (RFC 8555). Its external account binding keys, accounts,
    // orders and authorizations are JSON documents of the ACME server
    // (`prereg::enroll::acme`); the columns are what the store finds and
    // guards them by: the parent (an order's account, an authorization's
    // order), a unique lookup (an account's key thumbprint), and the state
    // that updates compare and set.
    r#"
    CREATE TABLE acme_objects (
        kind       TEXT NOT NULL CHECK (kind IN ('eab', 'account', 'order', 'authorization')),
        id         TEXT NOT NULL,
        parent     TEXT,
        lookup     TEXT,
        state      TEXT NOT NULL,
        body       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (kind, id)
    );
    CREATE UNIQUE INDEX acme_objects_by_lookup ON acme_objects (kind, lookup) WHERE lookup IS NOT NULL;
    CREATE INDEX acme_objects_by_parent ON acme_objects (kind, parent, created_at) WHERE parent IS NOT NULL;
    "#,
];

/// The PostgreSQL side: the same changes. Integers are BIGINT where SQLite's
/// are 64-bit, booleans BOOLEAN, blobs BYTEA; an identity column stands in
/// for SQLite's AUTOINCREMENT, and `seq` for its implicit rowid where the
/// order of insertion is read. PostgreSQL also notifies listening nodes of
/// registration and policy changes (migration 9), at commit.
const POSTGRES: [&str; 15] = [
    // 1
    r#"
    CREATE TABLE instance (
        singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
        instance_id TEXT NOT NULL,
        created_at  BIGINT NOT NULL
    );
    CREATE TABLE domains (
        name TEXT PRIMARY KEY
    );
    CREATE TABLE procedures (
        name                    TEXT PRIMARY KEY,
        domain                  TEXT NOT NULL REFERENCES domains(name),
        protocol                TEXT NOT NULL CHECK (protocol IN ('scep', 'cmp', 'est', 'acme', 'other')),
        require_preregistration BOOLEAN NOT NULL,
        allowed_domains         TEXT NOT NULL,
        created_by              TEXT NOT NULL,
        created_at              BIGINT NOT NULL,
        CHECK (require_preregistration OR protocol NOT IN ('scep', 'cmp'))
    );
    CREATE TABLE officers (
        kid            TEXT PRIMARY KEY,
        name           TEXT NOT NULL UNIQUE,
        algorithm      TEXT NOT NULL CHECK (algorithm IN ('EdDSA', 'ES256')),
        public_key_pem TEXT NOT NULL,
        domains        TEXT NOT NULL,
        created_by     TEXT NOT NULL,
        created_at     BIGINT NOT NULL
    );
    CREATE TABLE registrations (
        id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        domain          TEXT NOT NULL REFERENCES domains(name),
        procedure       TEXT NOT NULL REFERENCES procedures(name),
        pattern         TEXT NOT NULL,
        index_key       TEXT NOT NULL,
        ip              TEXT,
        serial          TEXT,
        password_hash   TEXT,
        expires_at      BIGINT,
        max_enrollments INTEGER CHECK (max_enrollments IS NULL OR max_enrollments > 0),
        enrollments     INTEGER NOT NULL DEFAULT 0 CHECK (enrollments >= 0),
        failed_attempts INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
        state           TEXT NOT NULL CHECK (state IN ('open', 'used', 'disabled', 'locked')),
        created_by      TEXT NOT NULL REFERENCES officers(kid),
        created_at      BIGINT NOT NULL,
        UNIQUE (domain, pattern)
    );
    CREATE INDEX registrations_by_key ON registrations (domain, index_key);
    CREATE TABLE request_ids (
        jti        TEXT PRIMARY KEY,
        kid        TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    );
    CREATE INDEX request_ids_by_expiry ON request_ids (expires_at);
    CREATE TABLE audit (
        seq           BIGINT PRIMARY KEY,
        prev_hash     TEXT NOT NULL,
        hash          TEXT NOT NULL,
        time          BIGINT NOT NULL,
        actor         TEXT NOT NULL,
        action        TEXT NOT NULL,
        object        TEXT NOT NULL,
        outcome       TEXT NOT NULL,
        reason        TEXT,
        policy_sha256 TEXT,
        request       TEXT NOT NULL,
        detail        TEXT NOT NULL
    );
    "#,
    // 2
    r#"
    CREATE TABLE imports (
        id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        sha256      TEXT NOT NULL,
        procedure   TEXT NOT NULL,
        file_name   TEXT NOT NULL,
        partial     BOOLEAN NOT NULL,
        dry_run     BOOLEAN NOT NULL,
        officer     TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('running', 'completed', 'rejected', 'interrupted', 'failed')),
        rows_total  BIGINT NOT NULL,
        rows_done   BIGINT NOT NULL DEFAULT 0,
        created     BIGINT NOT NULL DEFAULT 0,
        unchanged   BIGINT NOT NULL DEFAULT 0,
        errors      BIGINT NOT NULL DEFAULT 0,
        started_at  BIGINT NOT NULL,
        finished_at BIGINT,
        message     TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX imports_by_file ON imports (sha256, procedure);
    ALTER TABLE registrations ADD COLUMN import_id BIGINT REFERENCES imports(id);
    ALTER TABLE registrations ADD COLUMN import_row BIGINT;
    "#,
    // 3
    r#"
    CREATE TABLE policies (
        sha256      TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        version     TEXT NOT NULL,
        wit_version TEXT NOT NULL,
        size        BIGINT NOT NULL,
        component   BYTEA NOT NULL,
        loaded_by   TEXT NOT NULL,
        loaded_at   BIGINT NOT NULL,
        seq         BIGINT GENERATED ALWAYS AS IDENTITY
    );
    CREATE TABLE active_policy (
        singleton    INTEGER PRIMARY KEY CHECK (singleton = 1),
        sha256       TEXT REFERENCES policies(sha256),
        activated_by TEXT NOT NULL,
        activated_at BIGINT NOT NULL
    );
    "#,
    // 4
    r#"
    CREATE TABLE precompiled (
        key    TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL
    );
    "#,
    // 5
    r#"
    CREATE TABLE shadow_policy (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        sha256    TEXT REFERENCES policies(sha256),
        set_by    TEXT NOT NULL,
        set_at    BIGINT NOT NULL,
        compared  BIGINT NOT NULL DEFAULT 0,
        disagreed BIGINT NOT NULL DEFAULT 0,
        since_id  BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE shadow_disagreements (
        id                  BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        time                BIGINT NOT NULL,
        audit_seq           BIGINT NOT NULL,
        request             TEXT NOT NULL,
        active_sha256       TEXT NOT NULL,
        active_allowed      BOOLEAN NOT NULL,
        active_reason       TEXT NOT NULL,
        active_registration BIGINT,
        active_explanation  TEXT NOT NULL,
        shadow_sha256       TEXT NOT NULL,
        shadow_allowed      BOOLEAN NOT NULL,
        shadow_reason       TEXT NOT NULL,
        shadow_registration BIGINT,
        shadow_explanation  TEXT NOT NULL
    );
    CREATE INDEX shadow_disagreements_by_shadow ON shadow_disagreements (shadow_sha256, id);
    "#,
    // 6: `seq` comes from an identity; writers take the store's write lock
    // (store::postgres), so they commit in the order of their numbers.
    r#"
    CREATE TABLE registration_changes (
        seq      BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        first_id BIGINT NOT NULL,
        last_id  BIGINT NOT NULL
    );
    CREATE FUNCTION registrations_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'DELETE' THEN
            INSERT INTO registration_changes (first_id, last_id) VALUES (OLD.id, OLD.id);
        ELSE
            INSERT INTO registration_changes (first_id, last_id) VALUES (NEW.id, NEW.id);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER registrations_updated AFTER UPDATE ON registrations
        FOR EACH ROW EXECUTE FUNCTION registrations_changed();
    CREATE TRIGGER registrations_deleted AFTER DELETE ON registrations
        FOR EACH ROW EXECUTE FUNCTION registrations_changed();
    "#,
    // 7
    r#"
    ALTER TABLE registrations ADD COLUMN password_sealed TEXT;
    ALTER TABLE procedures ADD COLUMN certificate_days INTEGER NOT NULL DEFAULT 365
        CHECK (certificate_days BETWEEN 1 AND 3650);
    "#,
    // 8
    r#"
    CREATE TABLE certificates (
        serial         TEXT PRIMARY KEY,
        transaction_id TEXT NOT NULL,
        registration   BIGINT,
        state          TEXT NOT NULL CHECK (state IN ('held', 'confirming', 'issued', 'rejected')),
        der            BYTEA NOT NULL,
        request        TEXT NOT NULL,
        issued_at      BIGINT NOT NULL,
        expires_at     BIGINT NOT NULL,
        seq            BIGINT GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX certificates_by_transaction ON certificates (transaction_id, issued_at);
    "#,
    // 9: and the notifications: one per committing transaction and channel
    // (PostgreSQL folds equal payloads), delivered at commit.
    r#"
    ALTER TABLE registrations ADD CONSTRAINT enrollments_within_limit
        CHECK (max_enrollments IS NULL OR enrollments <= max_enrollments);
    CREATE TABLE nodes (
        node_id       TEXT PRIMARY KEY,
        address       TEXT NOT NULL,
        version       TEXT NOT NULL,
        started_at    BIGINT NOT NULL,
        seen_at       BIGINT NOT NULL,
        policy_sha256 TEXT NOT NULL,
        policy_name   TEXT NOT NULL,
        index_seq     BIGINT NOT NULL,
        stopped       BOOLEAN NOT NULL DEFAULT FALSE
    );
    ALTER TABLE instance ADD COLUMN sealing_key TEXT;
    CREATE FUNCTION notify_registrations() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('prereg_registrations', '');
        RETURN NULL;
    END $$;
    CREATE TRIGGER registration_changes_notify AFTER INSERT ON registration_changes
        FOR EACH STATEMENT EXECUTE FUNCTION notify_registrations();
    CREATE FUNCTION notify_policy() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('prereg_policy', '');
        RETURN NULL;
    END $$;
    CREATE TRIGGER active_policy_notify AFTER INSERT OR UPDATE ON active_policy
        FOR EACH STATEMENT EXECUTE FUNCTION notify_policy();
    CREATE TRIGGER shadow_policy_notify AFTER INSERT OR UPDATE ON shadow_policy
        FOR EACH STATEMENT EXECUTE FUNCTION notify_policy();
    CREATE TRIGGER policies_notify AFTER INSERT ON policies
        FOR EACH STATEMENT EXECUTE FUNCTION notify_policy();
    "#,
    // 10
    r#"
    ALTER TABLE audit ADD COLUMN mac TEXT;
    ALTER TABLE officers ADD COLUMN disabled_at BIGINT;
    ALTER TABLE instance ADD COLUMN audit_keyed_from BIGINT;
    ALTER TABLE instance ADD COLUMN audit_keyed_mac TEXT;
    ALTER TABLE certificates ADD COLUMN revoked_at BIGINT;
    ALTER TABLE certificates ADD COLUMN revocation_reason INTEGER;
    UPDATE certificates SET state = 'rejected', revoked_at = issued_at
        WHERE state IN ('held', 'confirming', 'rejected');
    CREATE INDEX certificates_by_state ON certificates (state, expires_at);
    CREATE INDEX certificates_revoked ON certificates (revoked_at) WHERE revoked_at IS NOT NULL;
    CREATE TABLE crls (
        number      BIGINT PRIMARY KEY,
        this_update BIGINT NOT NULL,
        next_update BIGINT NOT NULL,
        revoked     BIGINT NOT NULL,
        der         BYTEA NOT NULL
    );
    "#,
    // 11
    r#"
    CREATE TABLE callers (
        name               TEXT PRIMARY KEY,
        procedures         TEXT NOT NULL,
        secret_sha256      TEXT UNIQUE,
        certificate_sha256 TEXT UNIQUE,
        created_by         TEXT NOT NULL,
        created_at         BIGINT NOT NULL,
        disabled_at        BIGINT
    );
    ALTER TABLE audit ADD COLUMN domain TEXT;
    CREATE INDEX audit_by_domain ON audit (domain, seq);
    "#,
    // 12
    r#"
    CREATE TABLE idempotent_answers (
        caller         TEXT NOT NULL,
        key            TEXT NOT NULL,
        request_sha256 TEXT NOT NULL,
        answer         TEXT NOT NULL,
        created_at     BIGINT NOT NULL,
        PRIMARY KEY (caller, key)
    );
    CREATE INDEX idempotent_answers_by_age ON idempotent_answers (created_at);
    "#,
    // 13
    r#"
    ALTER TABLE registrations ADD COLUMN staged_by BIGINT;
    CREATE INDEX registrations_staged ON registrations (staged_by, id) WHERE staged_by IS NOT NULL;
    CREATE VIEW visible_registrations AS SELECT * FROM registrations
        WHERE staged_by IS NULL OR staged_by IN (SELECT id FROM imports WHERE status = 'completed');
    DROP TRIGGER registrations_deleted ON registrations;
    CREATE TRIGGER registrations_deleted AFTER DELETE ON registrations
        FOR EACH ROW WHEN (OLD.staged_by IS NULL) EXECUTE FUNCTION registrations_changed();
    CREATE FUNCTION staged_registration_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM imports WHERE id = OLD.staged_by AND status = 'completed') THEN
            INSERT INTO registration_changes (first_id, last_id) VALUES (OLD.id, OLD.id);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER staged_registrations_deleted AFTER DELETE ON registrations
        FOR EACH ROW WHEN (OLD.staged_by IS NOT NULL) EXECUTE FUNCTION staged_registration_deleted();
    ALTER TABLE imports ADD COLUMN owner TEXT;
    ALTER TABLE imports ADD COLUMN heartbeat_at BIGINT;
    "#,
    // 14
    r#"
    ALTER TABLE callers ADD COLUMN webhook_secret_sealed TEXT;
    "#,
    // 15
    r#"
    CREATE TABLE acme_objects (
        kind       TEXT NOT NULL CHECK (kind IN ('eab', 'account', 'order', 'authorization')),
        id         TEXT NOT NULL,
        parent     TEXT,
        lookup     TEXT,
        state      TEXT NOT NULL,
        body       TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (kind, id)
    );
    CREATE UNIQUE INDEX acme_objects_by_lookup ON acme_objects (kind, lookup) WHERE lookup IS NOT NULL;
    CREATE INDEX acme_objects_by_parent ON acme_objects (kind, parent, created_at) WHERE parent IS NOT NULL;
    "#,
];
