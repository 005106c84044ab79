//! The SQLite schema, as an ordered list of migrations. `PRAGMA user_version`
//! records how many have run; each runs in its own transaction.

/// Migrations, in order. Never edit a released one: append a new one.
pub const MIGRATIONS: &[&str] = &[
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
];
