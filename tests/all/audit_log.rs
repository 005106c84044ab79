//! The audit log against someone who can write the database (issue 15, item
//! 4): records cut off its end, a record rewritten and the chain re-hashed
//! after it, an officer action forged under a key swapped into the store.
//! `prereg audit verify` re-verifies every officer's signed request and checks
//! the log against a signed checkpoint (the one named, or the newest `serve`
//! wrote).

use prereg::audit::record_hash;
use prereg::store::AuditRecord;

use crate::common::{Server, prereg_command, run_local};

/// `prereg audit verify ARGS`: (exit code, what it printed).
fn verify(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let out = prereg_command(dir).args(["--data", "data", "audit", "verify"]).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

fn database(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("data/prereg.sqlite3")).unwrap()
}

/// Every audit record, as the database holds it (read through the store).
fn records(db: &rusqlite::Connection) -> Vec<AuditRecord> {
    let path = db.path().unwrap().to_owned();
    let storage = prereg::store::SqliteStorage::open(std::path::Path::new(&path)).unwrap();
    let mut tx = prereg::store::Storage::begin(&storage, prereg::store::TxKind::Read).unwrap();
    tx.audit_records(0, 10_000).unwrap()
}

/// Rewrites the chain from record `from` on, as a forger with write access
/// to the database would after changing a record: every hash recomputed.
fn rehash_from(db: &rusqlite::Connection, from: u64) {
    let all = records(db);
    let mut prev = all.iter().find(|r| r.seq == from - 1).map(|r| r.hash.clone()).unwrap();
    for mut record in all.into_iter().filter(|r| r.seq >= from) {
        record.prev_hash = prev;
        record.hash = record_hash(&record);
        db.execute(
            "UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE seq = ?3",
            rusqlite::params![record.prev_hash, record.hash, record.seq as i64],
        )
        .unwrap();
        prev = record.hash;
    }
}

/// A data folder with some history: procedures, registrations, decisions.
fn history() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_local(dir, &["init"]);
    run_local(dir, &["procedure", "add", "routers", "--domain", "corp", "--protocol", "scep"]);
    for i in 0..5 {
        run_local(dir, &["register", "--procedure", "routers", "--fqdn", &format!("r{i}.example.com")]);
    }
    for i in 0..3 {
        let _ = prereg_command(dir)
            .args(["--data", "data", "enroll", "--procedure", "routers", "--fqdn", &format!("r{i}.example.com")])
            .output()
            .unwrap();
    }
    tmp
}

#[test]
fn serve_writes_checkpoints_and_verify_catches_a_log_cut_short() {
    let tmp = history();
    let dir = tmp.path();
    let args = ["--data", "data", "serve", "--listen", "127.0.0.1:0", "--checkpoint-seconds", "1"];
    let server = Server::start_with(dir, "server.log", &args);
    // The served checkpoint and the written one count the whole log (10 records).
    let url = format!("{}/v1/audit/checkpoint", server.url.trim_end_matches('/'));
    // An officer of every domain reads it; nobody else.
    let anonymous = ureq::get(&url).config().http_status_as_error(false).build().call().unwrap();
    assert_eq!(anonymous.status(), 401);
    let mut response = ureq::get(&url).header("authorization", server.officer_authorization()).call().unwrap();
    let served = response.body_mut().read_to_string().unwrap();
    assert!(served.lines().nth(1) == Some("10"), "{served}");
    // latest.note follows the log within 250 ms; the numbered note comes
    // with the next periodic checkpoint (every --checkpoint-seconds): wait
    // for both.
    let latest = dir.join("data/checkpoints/latest.note");
    let numbered = dir.join("data/checkpoints/10.note");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !(std::fs::read_to_string(&latest).is_ok_and(|t| t.lines().nth(1) == Some("10")) && numbered.exists()) {
        assert!(std::time::Instant::now() < deadline, "no checkpoint: {}", server.log());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    std::fs::write(dir.join("served.note"), &served).unwrap();
    assert!(server.stop().success());

    let (code, text) = verify(dir, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("audit chain intact: 10 records, 6 signed requests verified, holds the 10 records"),
        "{text}"
    );

    // The forger deletes the last three records: the chain alone still
    // verifies, the checkpoint does not.
    database(dir).execute("DELETE FROM audit WHERE seq > 7", []).unwrap();
    let (code, text) = verify(dir, &["--checkpoint", "served.note"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("broken at record 8: the log ends at record 7, but a signed checkpoint counts 10"), "{text}");
    // The newest checkpoint in the data folder is used without asking.
    let (code, text) = verify(dir, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("records were cut off its end"), "{text}");

    // A checkpoint altered to count fewer records is refused: not signed by this instance.
    let forged = served.replacen("\n10\n", "\n7\n", 1);
    std::fs::write(dir.join("forged.note"), forged).unwrap();
    let (code, text) = verify(dir, &["--checkpoint", "forged.note"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("not signed by this instance's key"), "{text}");
}

#[test]
fn a_rewritten_and_rehashed_record_is_caught_by_the_keyed_chain_the_checkpoint_and_signatures() {
    let tmp = history();
    let dir = tmp.path();
    run_local(dir, &["audit", "checkpoint", "--out", "cp.note"]);
    let db = database(dir);
    // Every record but the first (written before the instance key existed) is keyed.
    let all = records(&db);
    assert!(all[0].mac.is_none() && all[1..].iter().all(|r| r.mac.as_ref().is_some_and(|m| m.len() == 64)));

    // An enrollment decision (no officer signature) turned from allowed to
    // denied, and the chain re-hashed from it: its MAC no longer verifies.
    let changed = all.iter().find(|r| r.action == "enroll" && r.outcome == "allowed").unwrap().seq;
    db.execute("UPDATE audit SET outcome = 'denied', reason = 'no-registration' WHERE seq = ?1", [changed as i64])
        .unwrap();
    rehash_from(&db, changed);
    let (code, text) = verify(dir, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&format!("record {changed} does not carry the instance key's MAC: its MAC does not verify")));
    // Dropping its MAC: records from the marker on must have one.
    db.execute("UPDATE audit SET mac = NULL WHERE seq >= ?1", [changed as i64]).unwrap();
    let (code, text) = verify(dir, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("records from 2 on are keyed, and this one has no MAC"), "{text}");
    // Dropping every MAC and the marker too makes a log that looks as if it
    // had never been keyed; the checkpoint still shows the rewrite.
    db.execute("UPDATE audit SET mac = NULL", []).unwrap();
    db.execute("UPDATE instance SET audit_keyed_from = NULL, audit_keyed_mac = NULL", []).unwrap();
    let (code, text) = verify(dir, &[]);
    assert_eq!(code, Some(0), "without a checkpoint: {text}");
    let (code, text) = verify(dir, &["--checkpoint", "cp.note"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("record 10 no longer hashes to the signed checkpoint's root"), "{text}");

    // An officer's action altered (the registration it created), re-hashed:
    // its signed request no longer says so.
    let created = records(&db).into_iter().find(|r| r.action == "registration.create").unwrap().seq;
    db.execute("UPDATE audit SET action = 'registration.delete' WHERE seq = ?1", [created as i64]).unwrap();
    rehash_from(&db, created);
    let (code, text) = verify(dir, &["--checkpoint", "/nonexistent"]);
    assert_eq!(code, Some(2), "a missing checkpoint file is named: {text}");
    assert!(text.contains("/nonexistent"), "{text}");
    std::fs::remove_file(dir.join("cp.note")).unwrap();
    let (code, text) = verify(dir, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("broken at record {created}"))
            && text.contains("the officer signed registration.create, but the record says registration.delete"),
        "{text}"
    );
}

#[test]
fn an_officer_action_forged_under_a_key_swapped_into_the_store_is_caught() {
    let tmp = history();
    let dir = tmp.path();
    let db = database(dir);
    // The forger swaps its own key in for the admin's and appends a signed
    // registration, chained correctly.
    run_local(dir, &["officer", "keygen", "--out", "forger.key"]);
    let forger = std::fs::read_to_string(dir.join("forger.key.pub")).unwrap();
    let admin_kid: String = db.query_row("SELECT kid FROM officers", [], |r| r.get(0)).unwrap();
    db.execute("UPDATE officers SET public_key_pem = ?1", [forger]).unwrap();
    let last = records(&db).pop().unwrap();
    let key =
        prereg::signing::SigningKey::from_pem(&std::fs::read_to_string(dir.join("forger.key")).unwrap(), "f").unwrap();
    let instance: String = db.query_row("SELECT instance_id FROM instance", [], |r| r.get(0)).unwrap();
    let request = crate::common::create_registration("routers", "evil.example.com");
    let jws = prereg::signing::sign(&key, &instance, request, last.time, 300).unwrap();
    // The forger claims the admin's key id in the header.
    let jws = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = jws.split('.');
        let mut header: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts.next().unwrap()).unwrap()).unwrap();
        header["kid"] = admin_kid.clone().into();
        format!("{}.{}.{}", b64.encode(header.to_string()), parts.next().unwrap(), parts.next().unwrap())
    };
    let mut forged = AuditRecord {
        seq: last.seq + 1,
        prev_hash: last.hash.clone(),
        hash: String::new(),
        time: last.time,
        actor: admin_kid,
        action: "registration.create".into(),
        object: "registration:99".into(),
        outcome: "ok".into(),
        reason: None,
        policy_sha256: None,
        request: jws,
        detail: String::new(),
        mac: None,
        domain: None,
    };
    forged.hash = record_hash(&forged);
    db.execute(
        "INSERT INTO audit (seq, prev_hash, hash, time, actor, action, object, outcome, reason, policy_sha256, \
         request, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        rusqlite::params![
            forged.seq as i64,
            forged.prev_hash,
            forged.hash,
            forged.time as i64,
            forged.actor,
            forged.action,
            forged.object,
            forged.outcome,
            forged.reason,
            forged.policy_sha256,
            forged.request,
            forged.detail
        ],
    )
    .unwrap();
    let (code, text) = verify(dir, &[]);
    assert_eq!(code, Some(1), "{text}");
    // The key in the store is not the key its id names: the first officer record already fails.
    assert!(text.contains("is not the key"), "{text}");
}

/// Issue 17, item 3: `latest.note` follows the log, not a 60 s clock: a
/// write acknowledged by the service, and one made by another process
/// beside it, are counted within a second or so. So when the newest records
/// are lost afterwards (the WAL removed, a database file restored, a forger
/// with write access), `audit verify` reports the cut.
#[test]
fn the_newest_checkpoint_follows_every_commit_and_catches_the_loss_of_the_newest_records() {
    let tmp = history();
    let dir = tmp.path();
    // The default --checkpoint-seconds (60).
    let mut server = Server::start_with(dir, "server.log", &["--data", "data", "serve", "--listen", "127.0.0.1:0"]);
    let latest = dir.join("data/checkpoints/latest.note");
    let counted = || -> u64 {
        std::fs::read_to_string(&latest).ok().and_then(|t| t.lines().nth(1).and_then(|n| n.parse().ok())).unwrap_or(0)
    };
    let head =
        || -> u64 { database(dir).query_row("SELECT MAX(seq) FROM audit", [], |r| r.get::<_, i64>(0)).unwrap() as u64 };
    let follows = |what: &str| {
        let want = head();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while counted() < want {
            assert!(std::time::Instant::now() < deadline, "{what}: latest.note counts {}, the log {want}", counted());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    follows("at start");
    // A write through the service, then one by another process.
    let client = server.client();
    let key = server.admin_key();
    let request = crate::common::create_registration("routers", "late.example.com");
    client.submit(&crate::common::sign_for(&client, &key, request.clone()), &request).unwrap();
    follows("after a write through the service");
    run_local(dir, &["register", "--procedure", "routers", "--fqdn", "beside.example.com"]);
    follows("after a write by another process");
    let newest = head();
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    // The newest record is lost.
    database(dir).execute("DELETE FROM audit WHERE seq = ?1", [newest as i64]).unwrap();
    let (code, text) = verify(dir, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains(&format!("a signed checkpoint counts {newest}")), "{text}");
}
