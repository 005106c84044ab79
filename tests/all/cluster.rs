//! A cluster: several `prereg serve` nodes on one PostgreSQL database. The
//! rules hold across nodes because the database enforces them; registrations
//! and policy activations reach every node; a killed node and a restarted
//! database are survived. Every test runs the real binary against the real
//! server (skipped without PostgreSQL, unless `.ci/run` requires it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use prereg::client::{Client, ClientError};
use prereg::registry::{DecisionMode, EnrollmentInput};
use prereg::signing::{SigningKey, WriteRequest};

use crate::common::{Server, create_registration, prereg_command, sign_for};
use crate::pg::{PrivateServer, TestDatabase};

/// Nodes over one database: `node0` was initialised with `prereg init
/// --database`; the others hold a copy of its sealing key only.
struct Cluster {
    dir: tempfile::TempDir,
    url: String,
    nodes: Vec<Option<Server>>,
}

impl Cluster {
    fn start(url: &str, nodes: usize) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let out = prereg_command(dir.path()).args(["--data", "node0", "--database", url, "init"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for i in 1..nodes {
            let folder = dir.path().join(format!("node{i}"));
            std::fs::create_dir(&folder).unwrap();
            std::fs::copy(dir.path().join("node0/sealing.key"), folder.join("sealing.key")).unwrap();
        }
        let mut cluster = Cluster { dir, url: url.to_owned(), nodes: Vec::new() };
        for i in 0..nodes {
            let node = cluster.start_node(i);
            cluster.nodes.push(Some(node));
        }
        cluster.cli(&["procedure", "add", "p", "--domain", "D", "--protocol", "scep"]);
        cluster
    }

    fn start_node(&self, i: usize) -> Server {
        Server::start_node(self.dir.path(), &format!("node{i}"), &self.url)
    }

    fn node(&self, i: usize) -> &Server {
        self.nodes[i].as_ref().unwrap()
    }

    fn client(&self, i: usize) -> Client {
        self.node(i).anonymous().with_officer(std::sync::Arc::new(self.admin()))
    }

    fn admin(&self) -> SigningKey {
        let pem = std::fs::read_to_string(self.dir.path().join("node0/officer.key")).unwrap();
        SigningKey::from_pem(&pem, "officer.key").unwrap()
    }

    /// `prereg --data node0 ARGS` on the store directly; its output.
    fn cli(&self, args: &[&str]) -> String {
        let out = prereg_command(self.dir.path()).args(["--data", "node0"]).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Signs and submits through node `i`.
    fn submit(&self, i: usize, request: WriteRequest) -> Result<u64, ClientError> {
        let client = self.client(i);
        let jws = sign_for(&client, &self.admin(), request.clone());
        client.submit(&jws, &request).map(|o| o.id.unwrap_or(0))
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.cli(&["cluster", "status", "--json"])).unwrap()
    }
}

fn input(fqdn: &str) -> EnrollmentInput {
    EnrollmentInput { procedure: "p".into(), fqdn: fqdn.into(), ..Default::default() }
}

fn problem_kind(e: &ClientError) -> (u16, String) {
    match e {
        ClientError::Problem(p) => (p.status, p.kind.clone()),
        other => panic!("not a problem document: {other}"),
    }
}

/// Waits up to `limit` for `done`, polling; false if it never came.
fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

#[test]
fn eight_clients_on_three_nodes_race_for_the_same_patterns_and_exactly_one_wins_each() {
    let Some(db) = TestDatabase::create() else { return };
    let cluster = Arc::new(Cluster::start(&db.url, 3));
    const PATTERNS: usize = 12;
    const CLIENTS: usize = 8;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let results = Arc::new(Mutex::new(vec![Vec::new(); PATTERNS]));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (cluster, barrier, results) = (cluster.clone(), barrier.clone(), results.clone());
            std::thread::spawn(move || {
                for p in 0..PATTERNS {
                    // Spelled differently by each client; one canonical pattern.
                    let fqdn =
                        if c % 2 == 0 { format!("*.Site{p}.Example.COM.") } else { format!("*.site{p}.example.com") };
                    barrier.wait();
                    let outcome = cluster.submit(c % 3, create_registration("p", &fqdn));
                    results.lock().unwrap()[p].push(outcome.map_err(|e| problem_kind(&e)));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for (p, outcomes) in results.lock().unwrap().iter().enumerate() {
        let wins = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(wins, 1, "pattern {p}: {outcomes:?}");
        for o in outcomes.iter().filter_map(|o| o.as_ref().err()) {
            assert_eq!(o, &(409, "urn:prereg:problem:duplicate".to_owned()), "pattern {p}");
        }
    }
    // Every node sees all of them, and one intact audit chain.
    for i in 0..3 {
        let patterns = cluster.client(i).registrations(&Default::default()).unwrap();
        assert_eq!(patterns.len(), PATTERNS);
        let r = cluster.client(i).decide(&input("a.site7.example.com"), DecisionMode::DryRun).unwrap();
        assert_eq!(r.reason, "matched", "node{i}");
    }
    let verified = cluster.client(2).verify_audit().unwrap();
    assert_eq!((verified.checked, verified.fault), (2 + PATTERNS as u64, None));

    // A signed request accepted by one node is refused by every other.
    let request = create_registration("p", "replayed.example.com");
    let jws = sign_for(&cluster.client(0), &cluster.admin(), request.clone());
    cluster.client(0).submit(&jws, &request).unwrap();
    for i in 1..3 {
        let e = cluster.client(i).submit(&jws, &request).unwrap_err();
        assert_eq!(problem_kind(&e), (409, "urn:prereg:problem:replayed-request".to_owned()), "node{i}");
    }
}

#[test]
fn a_one_time_registration_enrolled_through_two_nodes_at_once_is_allowed_once() {
    let Some(db) = TestDatabase::create() else { return };
    let cluster = Arc::new(Cluster::start(&db.url, 3));
    const ROUNDS: usize = 15;
    for r in 0..ROUNDS {
        let request = WriteRequest::CreateRegistration {
            password_sealed: None,
            procedure: "p".into(),
            fqdn: format!("once{r}.example.com"),
            ip: None,
            serial: None,
            password_hash: None,
            valid_days: None,
            max_enrollments: Some(1),
        };
        cluster.submit(r % 3, request).unwrap();
    }
    // The CA front that asks every node (a caller is known to all of them).
    let secret = cluster.node(0).add_caller("front", &["p"]);
    for r in 0..ROUNDS {
        let barrier = Arc::new(Barrier::new(2));
        let nodes = [r % 3, (r + 1) % 3];
        let threads: Vec<_> = nodes
            .into_iter()
            .map(|i| {
                let (cluster, barrier, secret) = (cluster.clone(), barrier.clone(), secret.clone());
                std::thread::spawn(move || {
                    let client = cluster.node(i).anonymous().with_caller_secret(&secret);
                    barrier.wait();
                    client.decide(&input(&format!("once{r}.example.com")), DecisionMode::Enroll).unwrap()
                })
            })
            .collect();
        let reports: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let allowed = reports.iter().filter(|d| d.allowed).count();
        assert_eq!(allowed, 1, "round {r}: {reports:?}");
    }
    let verified = cluster.client(0).verify_audit().unwrap();
    assert_eq!(verified.fault, None);
    // Two enrollments per round, each audited once.
    let enrollments = crate::common::audited_enrollments_in(cluster.dir.path(), "node0");
    assert_eq!(enrollments.len(), 2 * ROUNDS);
    assert_eq!(enrollments.iter().filter(|e| e.outcome == "allowed").count(), ROUNDS);
}

#[test]
fn a_node_killed_and_restarted_catches_up_and_decides_like_the_others() {
    let Some(db) = TestDatabase::create() else { return };
    let mut cluster = Cluster::start(&db.url, 3);
    cluster.submit(0, create_registration("p", "before.example.com")).unwrap();
    assert!(eventually(Duration::from_secs(5), || {
        cluster.client(2).decide(&input("before.example.com"), DecisionMode::DryRun).unwrap().allowed
    }));
    cluster.nodes[2].take().unwrap().kill();
    // Written while node2 is down, through the others (and the CLI).
    for i in 0..40 {
        cluster.submit(i % 2, create_registration("p", &format!("while{i}.example.com"))).unwrap();
    }
    let listed: serde_json::Value = serde_json::from_str(&cluster.cli(&["list", "--json"])).unwrap();
    let before_id = listed.as_array().unwrap().iter().find(|r| r["pattern"] == "before.example.com").unwrap()["id"]
        .as_u64()
        .unwrap();
    cluster.cli(&["disable", &before_id.to_string()]);
    let down = cluster.status();
    let node2 = down["nodes"].as_array().unwrap().iter().find(|n| n["node_id"] == "node2").unwrap().clone();
    assert_eq!(node2["stopped"], false, "killed, not stopped: {down}");

    cluster.nodes[2] = Some(cluster.start_node(2));
    for i in 0..40 {
        let fqdn = format!("while{i}.example.com");
        let decisions: Vec<_> =
            (0..3).map(|n| cluster.client(n).decide(&input(&fqdn), DecisionMode::DryRun).unwrap().reason).collect();
        assert_eq!(decisions, ["matched", "matched", "matched"], "{fqdn}");
    }
    let r = cluster.client(2).decide(&input("before.example.com"), DecisionMode::DryRun).unwrap();
    assert_eq!(r.reason, "no-registration", "the disabled registration is disabled on the restarted node");

    // `prereg cluster status`: three nodes up, none behind.
    assert!(
        eventually(Duration::from_secs(5), || {
            let status = cluster.status();
            let nodes = status["nodes"].as_array().unwrap().clone();
            nodes.len() == 3 && nodes.iter().all(|n| n["up"] == true && n["lag"] == 0)
        }),
        "{}",
        cluster.status()
    );
    let text = cluster.cli(&["cluster", "status"]);
    for i in 0..3 {
        assert!(text.contains(&format!("node{i}")), "{text}");
    }
}

#[test]
fn a_policy_activated_on_one_node_is_active_on_all_three_within_a_second_without_failed_decisions() {
    let Some(db) = TestDatabase::create() else { return };
    let cluster = Arc::new(Cluster::start(&db.url, 3));
    cluster.submit(0, create_registration("p", "*.fleet.example.com")).unwrap();
    let exact_only = prereg_test_artifacts::EXACT_ONLY_POLICY;
    let sha = prereg::audit::hex(&<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(exact_only).unwrap()));
    let server0 = cluster.node(0).url.clone();
    let admin_key = cluster.dir.path().join("node0/officer.key").display().to_string();
    let remote = |args: &[&str]| {
        let out = prereg_command(cluster.dir.path())
            .args(["--server", &server0, "--key", &admin_key])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    remote(&["policy", "load", exact_only]);
    // Loaded versions are compiled ahead on every node; give them the time.
    for i in 0..3 {
        assert!(
            eventually(Duration::from_secs(60), || cluster.node(i).log().contains("policy version prepared")),
            "node{i}: {}",
            cluster.node(i).log()
        );
    }

    // Decisions on every node, all through the switch.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let decided = Arc::new(AtomicU64::new(0));
    let load: Vec<_> = (0..3)
        .map(|i| {
            let (cluster, stop, failures, decided) = (cluster.clone(), stop.clone(), failures.clone(), decided.clone());
            std::thread::spawn(move || {
                let client = cluster.client(i);
                while !stop.load(Ordering::Relaxed) {
                    match client.decide(&input("a.fleet.example.com"), DecisionMode::DryRun) {
                        Ok(_) => decided.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failures.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let activated = Instant::now();
    remote(&["policy", "activate", &sha[..16]]);
    let mut reached = Vec::new();
    for i in 0..3 {
        assert!(
            eventually(Duration::from_secs(10), || cluster.client(i).policy().unwrap().sha256 == sha),
            "node{i} never switched"
        );
        reached.push(activated.elapsed());
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    eprintln!("policy active on all three nodes after {:?} (each: {reached:?})", reached[2]);
    assert_eq!(failures.load(Ordering::Relaxed), 0, "no decision failed during the switch");
    assert!(decided.load(Ordering::Relaxed) > 30);
    assert!(reached.iter().all(|t| *t <= Duration::from_secs(1)), "within a second: {reached:?}");
    // The new policy decides: exact-only does not match the wildcard.
    for i in 0..3 {
        let r = cluster.client(i).decide(&input("a.fleet.example.com"), DecisionMode::DryRun).unwrap();
        assert!(!r.allowed, "node{i}: {r:?}");
    }
}

#[test]
fn postgres_restarted_under_load_gives_prompt_503s_and_loses_no_acknowledged_write() {
    let Some(server) = PrivateServer::start() else { return };
    let db = TestDatabase::create_on(&server.url);
    let cluster = Arc::new(Cluster::start(&db.url, 2));
    let stop = Arc::new(AtomicBool::new(false));
    let outage = Arc::new(AtomicBool::new(false));
    // (pattern, outcome status, how long it took, during the outage?)
    let log = Arc::new(Mutex::new(Vec::<(String, u16, Duration, bool)>::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (cluster, stop, outage, log) = (cluster.clone(), stop.clone(), outage.clone(), log.clone());
            std::thread::spawn(move || {
                let client = cluster.client(w % 2);
                let key = cluster.admin();
                let instance = client.instance().unwrap().instance_id;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let fqdn = format!("w{w}-{n}.example.com");
                    n += 1;
                    let request = create_registration("p", &fqdn);
                    let jws =
                        prereg::signing::sign(&key, &instance, request.clone(), prereg::registry::unix_now(), 300)
                            .unwrap();
                    let started = Instant::now();
                    let during = outage.load(Ordering::Relaxed);
                    let status = match client.submit(&jws, &request) {
                        Ok(_) => 201,
                        Err(ClientError::Problem(p)) => {
                            if p.status != 503 {
                                eprintln!("{fqdn}: {p:?}");
                            }
                            p.status
                        }
                        Err(e) => panic!("{fqdn}: {e}"),
                    };
                    log.lock().unwrap().push((fqdn, status, started.elapsed(), during));
                    if status != 201 {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    outage.store(true, Ordering::Relaxed);
    server.stop();
    std::thread::sleep(Duration::from_millis(2500));
    // Decisions fail promptly too, while the database is down.
    let started = Instant::now();
    let e = cluster.client(1).decide(&input("w0-0.example.com"), DecisionMode::DryRun).unwrap_err();
    assert_eq!(problem_kind(&e).0, 503, "{e}");
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    server.restart();
    outage.store(false, Ordering::Relaxed);
    let back = Instant::now();
    // The nodes reconnect by themselves: writes succeed again on both.
    assert!(eventually(Duration::from_secs(20), || {
        let log = log.lock().unwrap();
        let recent: Vec<_> = log.iter().rev().take(8).collect();
        recent.len() == 8 && recent.iter().all(|(_, status, _, _)| *status == 201)
    }));
    eprintln!("writes succeed again {:?} after the restart", back.elapsed());
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }

    let log = log.lock().unwrap();
    let refused: Vec<_> = log.iter().filter(|(_, status, _, _)| *status != 201).collect();
    assert!(!refused.is_empty(), "the outage was felt");
    for (fqdn, status, took, _) in &refused {
        assert_eq!(*status, 503, "{fqdn}");
        assert!(*took < Duration::from_secs(6), "{fqdn} took {took:?}: requests must not hang");
    }
    let slowest = log.iter().map(|(_, _, took, _)| *took).max().unwrap();
    eprintln!("{} writes, {} refused with 503, slowest answer {slowest:?}", log.len(), refused.len());
    // Every acknowledged write is in the database.
    let stored: std::collections::HashSet<String> =
        cluster.client(0).registrations(&Default::default()).unwrap().into_iter().map(|r| r.pattern).collect();
    for (fqdn, status, _, _) in log.iter() {
        if *status == 201 {
            assert!(stored.contains(fqdn), "{fqdn} was acknowledged but is lost");
        }
    }
    assert_eq!(cluster.client(1).verify_audit().unwrap().fault, None);
}

#[test]
fn an_embedded_instance_migrates_to_postgres_with_its_chain_verified() {
    let Some(db) = TestDatabase::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = prereg_command(dir.path()).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ok = |args: &[&str]| {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        out
    };
    ok(&["--data", "old", "init"]);
    ok(&["--data", "old", "procedure", "add", "p", "--domain", "D", "--protocol", "scep"]);
    ok(&["--data", "old", "register", "--procedure", "p", "--fqdn", "*.r.example.com"]);
    let once =
        ok(&["--data", "old", "register", "--procedure", "p", "--fqdn", "a.example.com", "--max-enrollments", "1"]);
    ok(&["--data", "old", "enroll", "--procedure", "p", "--fqdn", "a.example.com"]);
    ok(&["--data", "old", "policy", "load", prereg_test_artifacts::MULTI_LABEL_POLICY]);
    std::fs::write(dir.path().join("batch.csv"), "fqdn\nimported.example.com\n").unwrap();
    ok(&["--data", "old", "import", "batch.csv", "--procedure", "p"]);
    // An ACME procedure with a binding key: it must arrive too.
    ok(&["--data", "old", "procedure", "add", "web", "--domain", "D", "--protocol", "acme"]);
    let eab = ok(&["--data", "old", "acme", "eab", "add", "--procedure", "web", "--key-id", "k1"]);
    assert!(eab.contains("key id   k1"), "{eab}");

    let out = ok(&["migrate", "--from", "old", "--to", &db.url]);
    assert!(out.contains("3 registrations, 1 imports") && out.contains("audit chain intact"), "{out}");
    assert!(out.contains("1 ACME objects"), "{out}");
    // A second run refuses: the target is not empty.
    let (code, _, err) = run(&["migrate", "--from", "old", "--to", &db.url]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not empty"), "{err}");

    // A node on the migrated store: same registrations, counts, policies, chain.
    std::fs::create_dir(dir.path().join("node")).unwrap();
    std::fs::copy(dir.path().join("old/sealing.key"), dir.path().join("node/sealing.key")).unwrap();
    let server = Server::start_node(dir.path(), "node", &db.url);
    let key = SigningKey::from_pem(&std::fs::read_to_string(dir.path().join("old/officer.key")).unwrap(), "k").unwrap();
    let client = server.anonymous().with_officer(std::sync::Arc::new(key));
    let keys = client.eab_keys().unwrap();
    assert_eq!((keys.len(), keys[0].key_id.as_str()), (1, "k1"), "{keys:?}");
    let once = client.registration(once.trim().parse().unwrap()).unwrap();
    assert_eq!((once.enrollments, once.state.to_string()), (1, "used".to_owned()));
    assert!(client.decide(&input("x.r.example.com"), DecisionMode::DryRun).unwrap().allowed);
    assert_eq!(client.policy_versions().unwrap().len(), 1);
    let old_chain = ok(&["--data", "old", "audit", "verify"]);
    let verified = client.verify_audit().unwrap();
    assert_eq!(verified.fault, None);
    assert!(old_chain.contains(&format!("{} records", verified.checked)), "{old_chain}");
    // New registrations get new ids after the copied ones.
    let key = SigningKey::from_pem(&std::fs::read_to_string(dir.path().join("old/officer.key")).unwrap(), "k").unwrap();
    let request = create_registration("p", "new.example.com");
    let id = client.submit(&sign_for(&client, &key, request.clone()), &request).unwrap().id.unwrap();
    assert_eq!(id, 4);
    let imported = client.registrations(&Default::default()).unwrap();
    let imported = imported.iter().find(|r| r.pattern == "imported.example.com").unwrap();
    assert_eq!(imported.import_id, Some(1), "the import keeps its id");
    // A new import gets the next id after the copied one.
    std::fs::write(dir.path().join("later.csv"), "fqdn\nlater.example.com\n").unwrap();
    let key_path = dir.path().join("old/officer.key").display().to_string();
    ok(&["--data", "node", "--database", &db.url, "--key", &key_path, "import", "later.csv", "--procedure", "p"]);
    let later = client.registrations(&Default::default()).unwrap();
    let later = later.iter().find(|r| r.pattern == "later.example.com").unwrap();
    assert_eq!(later.import_id, Some(2));

    // A node whose sealing key is not the instance's is refused.
    std::fs::create_dir(dir.path().join("stranger")).unwrap();
    let (code, _, err) = run(&["--data", "stranger", "--database", &db.url, "list"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("sealing.key"), "{err}");
}

/// Both backends run the same migrations: the same tables with the same
/// columns at the same schema version. PostgreSQL's `seq` columns stand in
/// for SQLite's implicit rowid, and its `schema_version` table for SQLite's
/// `PRAGMA user_version`.
#[test]
fn both_backends_have_the_same_tables_and_columns() {
    let Some(db) = TestDatabase::create() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.sqlite3");
    drop(prereg::store::SqliteStorage::open(&file).unwrap());
    let pg = prereg::store::PostgresStorage::open(&db.url).unwrap();
    assert_eq!(pg.schema_version().unwrap(), prereg::store::schema::MIGRATIONS.len() as i64);

    let sqlite = rusqlite::Connection::open(&file).unwrap();
    let mut sqlite_columns = std::collections::BTreeSet::new();
    let tables: Vec<String> = sqlite
        .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for table in tables {
        let columns: Vec<String> = sqlite
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for column in columns {
            sqlite_columns.insert(format!("{table}.{column}"));
        }
    }
    let pg_columns: std::collections::BTreeSet<String> = db
        .client()
        .query(
            "SELECT table_name || '.' || column_name FROM information_schema.columns WHERE table_schema = 'public' \
             AND table_name <> 'schema_version' AND NOT (table_name IN ('policies', 'certificates') AND column_name = 'seq')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(sqlite_columns, pg_columns);
    assert!(pg_columns.len() > 80, "{}", pg_columns.len());
}
