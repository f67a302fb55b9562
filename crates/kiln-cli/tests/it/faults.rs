//! The fault suite's crash rounds (issue 15): the built `kiln` binary is
//! killed with SIGKILL while clients upload documents, write secrets and
//! run agent turns, and started again on the same data. After every
//! restart: every write the server acknowledged is there, every turn that
//! started has reached its terminal event, and within 15 s no document is
//! `pending` or `processing` and no session has a turn running.
//!
//! `KILN_FAULT_ROUNDS` sets the rounds (3 by default, as CI runs them;
//! `.ci/faults` runs 20 on each database). It prints what it checked, the
//! figures the README reports.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_providers::fake::{FakeProvider, Reply};
use kiln_sdk::Client;
use kiln_sdk::api::{CreateSecretVault, CreateSession};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");
/// How soon after a restart everything interrupted must have settled.
const SETTLED_WITHIN: Duration = Duration::from_secs(15);
/// A fixed key-encryption key, so secrets written before a crash can be
/// read after it.
const KEK: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

mod crash_rounds {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::crash_rounds(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::crash_rounds(true).await;
    }
}

fn rounds() -> usize {
    std::env::var("KILN_FAULT_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
}

/// A `kiln serve` child; killed (SIGKILL) when dropped.
struct Server {
    child: Child,
    base_url: String,
    log: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(data_dir: &Path, database_url: Option<&str>, fake: &FakeProvider, round: usize) -> Server {
        let port = crate::binary::free_port();
        let log = data_dir.parent().unwrap().join(format!("kiln-{round}.log"));
        let mut command = Command::new(KILN);
        command
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .env("KILN_SECRET_KEK", KEK)
            .env("OPENAI_API_KEY", "test-key")
            .env("KILN_OPENAI_BASE_URL", fake.openai_base_url())
            .env("KILN_DEFAULT_MODEL", "openai/gpt-test")
            .env("KILN_RATE_LIMIT_RUNS", "0")
            .env("KILN_RATE_LIMIT_UPLOADS", "0")
            .env("KILN_RATE_LIMIT_CHAT", "0")
            .env("RUST_LOG", "info")
            .env_remove("KILN_DATABASE_URL")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(url) = database_url {
            command.env("KILN_DATABASE_URL", url);
        }
        let server = Server {
            child: command.spawn().unwrap(),
            base_url: format!("http://127.0.0.1:{port}"),
            log,
        };
        assert!(
            crate::binary::healthy(&server.base_url, Duration::from_secs(30)).await,
            "kiln did not become healthy: {}",
            std::fs::read_to_string(&server.log).unwrap_or_default()
        );
        server
    }

    /// The first-start banner's key.
    fn bootstrap_key(&self) -> String {
        crate::binary::find_key(&std::fs::read_to_string(&self.log).unwrap())
            .expect("the first start prints a key")
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// What the clients were told was done.
#[derive(Default)]
struct Acknowledged {
    documents: Vec<String>,
    secrets: Vec<String>,
    /// Sessions whose `run` was accepted.
    turns: Vec<String>,
}

async fn crash_rounds(postgres: bool) {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let schema = if postgres {
        match crate::harness::postgres_schema().await {
            Some(found) => Some(found),
            None => return,
        }
    } else {
        None
    };
    let database_url = schema.as_ref().map(|(url, _, _)| url.clone());
    let fake = FakeProvider::start().await;
    fake.stop_recording();
    // Each turn: a code step writing session data, then the answer.
    fake.set_default(
        Reply::code_step("await data.set('seen', true); 6 * 7", "Forty-two.")
            .delay(Duration::from_millis(60)),
    );

    let first = Server::start(&data_dir, database_url.as_deref(), &fake, 0).await;
    let key = first.bootstrap_key();
    let client = Client::new(&first.base_url, &key).unwrap();
    let index = client
        .create_index(&kiln_sdk::api::CreateIndex {
            name: "crash".into(),
            description: None,
            metadata: None,
        })
        .await
        .unwrap()
        .id;
    let vault = client
        .create_secret_vault(&CreateSecretVault {
            name: "crash".into(),
            metadata: None,
        })
        .await
        .unwrap()
        .id;
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let mut server = first;
    let rounds = rounds();
    for round in 1..=rounds {
        let client = Client::new(&server.base_url, &key).unwrap();
        let load = [
            tokio::spawn(upload_load(client.clone(), index.clone(), acked.clone(), round)),
            tokio::spawn(secret_load(client.clone(), vault.clone(), acked.clone(), round)),
            tokio::spawn(turn_load(client.clone(), acked.clone())),
            tokio::spawn(turn_load(client, acked.clone())),
        ];
        // Somewhere in the middle of the work, differently each round.
        tokio::time::sleep(Duration::from_millis(300 + (round as u64 * 137) % 500)).await;
        server.kill();
        for task in load {
            task.abort();
            let _ = task.await;
        }
        server = Server::start(&data_dir, database_url.as_deref(), &fake, round).await;
        let restarted = Instant::now();
        let client = Client::new(&server.base_url, &key).unwrap();
        settled(&client, &vault, &acked, restarted).await;
    }
    let (documents, secrets, turns) = {
        let acked = acked.lock().unwrap();
        (acked.documents.len(), acked.secrets.len(), acked.turns.len())
    };
    eprintln!(
        "crash rounds ({}): {rounds} kills survived; {documents} documents, {secrets} secrets and {turns} turns \
         acknowledged, all present and ended",
        if postgres { "PostgreSQL" } else { "SQLite" },
    );
    assert!(documents > 0 && secrets > 0 && turns > 0);
    let listed = reqwest::Client::new()
        .get(format!(
            "{}/api/sdk/secret-vaults/{vault}/secrets",
            server.base_url
        ))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listed.contains("secret_r1_0"), "{listed}");
    drop(server);
    // Secret-leak scan: no secret value in clear in any log of any round,
    // in the data dir (SQLite database and WAL, search index), in the
    // PostgreSQL schema's dump, or in what the API answered.
    let mut places = files_under(root.path());
    if let Some((_, base, name)) = &schema {
        let dump = Command::new("pg_dump")
            .args(["--schema", name, "--data-only"])
            .arg(base)
            .output()
            .expect("pg_dump runs");
        assert!(
            dump.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&dump.stderr)
        );
        let path = root.path().join("dump.sql");
        std::fs::write(&path, &dump.stdout).unwrap();
        places.push(path);
    }
    let mut scanned = 0;
    for path in &places {
        let bytes = std::fs::read(path).unwrap();
        scanned += bytes.len();
        assert!(
            !bytes.windows(b"value-1-".len()).any(|w| w == b"value-1-"),
            "a secret value in clear in {}",
            path.display()
        );
    }
    assert!(!listed.contains("value-"), "{listed}");
    eprintln!(
        "secret-leak scan: {} files ({scanned} bytes) of logs, data and database dump hold no secret value",
        places.len()
    );
    if let Some((_, base, schema)) = schema {
        crate::harness::drop_postgres_schema(&base, &schema).await;
    }
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

async fn upload_load(client: Client, index: String, acked: Arc<Mutex<Acknowledged>>, round: usize) {
    let pdf = kiln_extract::fixtures::pdf(&[&["Crash round text in a PDF."]]);
    for i in 0.. {
        let (name, bytes) = if i % 3 == 2 {
            (format!("r{round}-{i}.pdf"), pdf.clone())
        } else {
            (
                format!("r{round}-{i}.md"),
                format!("# Round {round}\n\nDocument {i} of the crash rounds.").into_bytes(),
            )
        };
        if let Ok(doc) = client
            .upload_document_bytes(&index, &name, bytes, &Default::default())
            .await
        {
            acked.lock().unwrap().documents.push(doc.id);
        }
    }
}

async fn secret_load(client: Client, vault: String, acked: Arc<Mutex<Acknowledged>>, round: usize) {
    for i in 0.. {
        let name = format!("secret_r{round}_{i}");
        if client
            .put_secret(&vault, &name, &format!("value-{round}-{i}"))
            .await
            .is_ok()
        {
            acked.lock().unwrap().secrets.push(name);
        }
    }
}

async fn turn_load(client: Client, acked: Arc<Mutex<Acknowledged>>) {
    loop {
        let Ok(session) = client.create_session(&CreateSession::default()).await else {
            continue;
        };
        let Ok(stream) = client.run_agent(&session.id, "What is six times seven?").await else {
            continue;
        };
        acked.lock().unwrap().turns.push(session.id);
        let _ = stream.collect_turn().await;
    }
}

/// Within [`SETTLED_WITHIN`] of the restart: every acknowledged document,
/// secret and turn is there, documents are past ingestion and turns ended.
async fn settled(client: &Client, vault: &str, acked: &Mutex<Acknowledged>, restarted: Instant) {
    let (documents, secrets, turns) = {
        let acked = acked.lock().unwrap();
        (
            acked.documents.clone(),
            acked.secrets.clone(),
            acked.turns.clone(),
        )
    };
    let names: Vec<String> = client
        .list_secrets(vault)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    for name in &secrets {
        assert!(names.contains(name), "acknowledged secret {name} is missing");
    }
    loop {
        let mut unsettled = Vec::new();
        for id in &documents {
            let doc = client
                .get_document(id)
                .await
                .unwrap_or_else(|e| panic!("acknowledged document {id} is missing: {e}"));
            if doc.status == "pending" || doc.status == "processing" {
                unsettled.push(format!("document {id} {}", doc.status));
            }
        }
        for id in &turns {
            let detail = client
                .get_session(id)
                .await
                .unwrap_or_else(|e| panic!("session {id} is missing: {e}"));
            if matches!(
                detail.session.status.as_str(),
                "running" | "awaiting_input" | "awaiting_tool"
            ) {
                unsettled.push(format!("session {id} {}", detail.session.status));
            }
        }
        if unsettled.is_empty() {
            break;
        }
        assert!(
            restarted.elapsed() < SETTLED_WITHIN,
            "{} s after the restart: {unsettled:?}",
            SETTLED_WITHIN.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every started turn ended with exactly one terminal event.
    for id in &turns {
        let asked = client
            .get_session(id)
            .await
            .unwrap()
            .steps
            .iter()
            .filter(|s| s.step_type == "user_message")
            .count();
        let events = tokio::time::timeout(
            Duration::from_secs(10),
            client.resume_events(id, 0).await.unwrap().collect_turn(),
        )
        .await
        .expect("an idle session's replay ends")
        .unwrap();
        let ended = events.iter().filter(|e| e.is_terminal()).count();
        assert_eq!(
            ended, asked,
            "session {id}: {asked} turns, {ended} terminal events"
        );
    }
}

mod provider_faults {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::provider_faults(crate::harness::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::provider_faults(crate::harness::Backend::Postgres).await;
    }
}

/// Every fault the fake can play, in agent turns and on `/v1`: a hang, 5xx
/// past the retries, a cut stream, a malformed body, a malformed tool call,
/// an error inside the stream, a stream that never ends. Each turn ends
/// with one terminal event (an `error` with a code, or `done` when the
/// model recovers), each chat request with an error body; nothing hangs,
/// and the server answers the next request.
async fn provider_faults(backend: crate::harness::Backend) {
    use crate::harness::{TestApp, TestOptions};
    let fake = FakeProvider::start().await;
    let options = TestOptions {
        runtime: kiln_core::runtime::RuntimeConfig {
            max_turn_time: Duration::from_secs(3),
            ..Default::default()
        },
        ..crate::agents::fake_options(&fake)
    };
    let Some(app) = TestApp::start_with(backend, options).await else {
        return;
    };
    let c = &app.client;
    let faults: Vec<(&str, Vec<Reply>)> = vec![
        ("hang", vec![Reply::hang()]),
        ("5xx", (0..3).map(|_| Reply::status(503, "overloaded")).collect()),
        ("cut stream", vec![Reply::cut_off("Half an answer that stops", 2)]),
        ("malformed", vec![Reply::malformed()]),
        (
            "malformed tool call",
            vec![
                Reply::raw_tool_call("execute_js", "{\"code\": \"6 *"),
                Reply::text("Recovered."),
            ],
        ),
        (
            "error in the stream",
            vec![Reply::stream_error("Partial", "overloaded mid-stream")],
        ),
        ("endless stream", vec![Reply::endless()]),
    ];
    for (name, replies) in faults {
        for reply in replies {
            fake.push(reply);
        }
        let session = c.create_session(&CreateSession::default()).await.unwrap().id;
        let events = tokio::time::timeout(Duration::from_secs(30), async {
            c.run_agent(&session, "Go")
                .await
                .unwrap()
                .collect_turn()
                .await
                .unwrap()
        })
        .await
        .unwrap_or_else(|_| panic!("{name}: the turn hung"));
        let terminals: Vec<_> = events.iter().filter(|e| e.is_terminal()).collect();
        assert_eq!(terminals.len(), 1, "{name}: {events:#?}");
        let status = c.get_session(&session).await.unwrap().session.status;
        assert!(status == "error" || status == "active", "{name}: {status}");
        eprintln!(
            "provider fault {name}: the turn ended with `{}`",
            terminals[0].raw.kind
        );
    }
    // The same faults on the OpenAI-compatible endpoint: an error body, never a hang.
    for reply in [Reply::hang(), Reply::malformed(), Reply::endless()] {
        fake.push(reply);
        let response = tokio::time::timeout(
            Duration::from_secs(30),
            app.http()
                .post(app.url("/v1/chat/completions"))
                .bearer_auth(&app.key)
                .json(&serde_json::json!({"model": "openai/gpt-test", "messages": [{"role": "user", "content": "hi"}]}))
                .send(),
        )
        .await
        .expect("the chat request hung")
        .unwrap();
        assert!(response.status().as_u16() >= 500, "{}", response.status());
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    fake.push(Reply::text("Still here."));
    let fine = c.create_session(&CreateSession::default()).await.unwrap().id;
    let events = c
        .run_agent(&fine, "Hello")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    assert_eq!(events.last().unwrap().raw.kind, "done");
    app.stop().await;
}

/// Every address form that reaches this machine's loopback (or another
/// private network), for a listener on `port`.
fn ssrf_targets(port: u16) -> Vec<String> {
    let hosts = [
        "127.0.0.1",
        "localhost",
        "localhost.",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[64:ff9b:1::7f00:1]",
        "[2002:7f00:1::]",
        "[fec0::1]",
        "0.0.0.0",
        "2130706433",
        "0x7f.1",
        "017700000001",
    ];
    let mut targets: Vec<String> = hosts.iter().map(|h| format!("http://{h}:{port}/probe")).collect();
    for other in [
        "10.0.0.1",
        "192.168.1.1",
        "172.16.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "[fd00::1]",
        "[fe80::1]",
    ] {
        targets.push(format!("http://{other}/latest/meta-data/"));
    }
    targets
}

/// A TCP listener on loopback that counts connections: a probe that gets
/// through shows here.
async fn tripwire() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });
    (port, hits)
}

mod ssrf_probes {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::ssrf_probes(crate::harness::Backend::Sqlite).await;
    }
}

/// SSRF probes with private networks off (the default): the sandbox's
/// `fetch()`, a vault's provider base URL and a session's webhook, each
/// given every address form above, are refused without a connection.
async fn ssrf_probes(backend: crate::harness::Backend) {
    use crate::harness::{TestApp, TestOptions};
    use serde_json::json;
    let fake = FakeProvider::start().await;
    let options = TestOptions {
        allow_private_network: false,
        ..crate::agents::fake_options(&fake)
    };
    let Some(app) = TestApp::start_with(backend, options).await else {
        return;
    };
    let (port, hits) = tripwire().await;
    let targets = ssrf_targets(port);
    let c = &app.client;

    // fetch() in the sandbox: every probe rejects.
    let code = format!(
        "const refused = [];\nfor (const url of {}) {{\n  try {{ await fetch(url); }} catch (e) {{ refused.push(e.message); }}\n}}\nrefused",
        serde_json::to_string(&targets).unwrap()
    );
    fake.push(Reply::tool_call("execute_js", json!({ "code": code })));
    fake.push(Reply::text("Probed."));
    let session = c.create_session(&CreateSession::default()).await.unwrap().id;
    let events = c
        .run_agent(&session, "Probe")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    let refused = events
        .iter()
        .find_map(|e| match &e.kind {
            kiln_sdk::TurnEventKind::ExecuteJsResult { result, .. } => result.clone(),
            _ => None,
        })
        .expect("the block's value");
    assert_eq!(
        refused.as_array().map(Vec::len),
        Some(targets.len()),
        "every probe rejected: {refused}"
    );

    // A vault's provider base URL: the chat fails without a connection.
    let vault = c
        .create_secret_vault(&CreateSecretVault {
            name: "probe".into(),
            metadata: None,
        })
        .await
        .unwrap()
        .id;
    c.put_secret(&vault, "openai_api_key", "sk-probe").await.unwrap();
    c.set_project_vault(Some(&vault)).await.unwrap();
    let mut vault_refusals = 0;
    for target in &targets {
        let base = target
            .replace("/probe", "/v1")
            .replace("/latest/meta-data/", "/v1");
        c.put_secret(&vault, "openai_base_url", &base).await.unwrap();
        let answer = c
            .chat_completion(&kiln_sdk::api::ChatCompletionInput {
                model: Some("openai/gpt-probe".into()),
                messages: vec![kiln_sdk::api::ChatMessage {
                    role: "user".into(),
                    content: "hi".into(),
                }],
                ..Default::default()
            })
            .await;
        assert!(answer.is_err(), "{base}: answered {answer:?}");
        vault_refusals += 1;
    }
    c.set_project_vault(None).await.unwrap();

    // A webhook to each (https://, which webhooks require): refused when
    // set, or its deliveries never connect.
    let mut webhook_refusals = 0;
    for target in &targets {
        let set = c
            .set_webhooks(
                &session,
                &[kiln_sdk::api::webhook::WebhookConfig {
                    url: target.replacen("http://", "https://", 1),
                    events: None,
                    secret: None,
                }],
            )
            .await;
        if set.is_err() {
            webhook_refusals += 1;
        }
    }
    fake.push(Reply::text("Once more."));
    c.run_agent(&session, "Again")
        .await
        .unwrap()
        .collect_turn()
        .await
        .unwrap();
    // The accepted hooks' deliveries were tried, and failed without a
    // connection. (A claimed delivery shows its attempt before its outcome,
    // so wait for the outcome.)
    let mut deliveries = Vec::new();
    for _ in 0..200 {
        deliveries = c.list_webhook_deliveries(&session).await.unwrap();
        if deliveries
            .iter()
            .all(|d| d.error.is_some() || d.delivered_at.is_some())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        !deliveries.is_empty(),
        webhook_refusals < targets.len(),
        "{deliveries:#?}"
    );
    assert!(
        deliveries
            .iter()
            .all(|d| d.attempt > 0 && d.delivered_at.is_none() && d.error.is_some()),
        "{deliveries:#?}"
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a probe reached the loopback listener"
    );
    eprintln!(
        "SSRF probes: {} address forms; fetch() refused all, vault base URLs {vault_refusals}, webhooks refused \
         at set {webhook_refusals} (the rest never delivered); 0 connections",
        targets.len()
    );
    app.stop().await;
}

/// Model-written code meant to hurt: each block ends (its turn gets one
/// terminal event), and another project's turns and searches keep working
/// meanwhile. (How much slower they get is measured by `kiln-bench
/// hostile`, not here.)
const HOSTILE_BLOCKS: &[(&str, &str)] = &[
    ("infinite loop", "while (true) {}"),
    (
        "memory bomb",
        "const a = []; for (;;) a.push('x'.repeat(1 << 20));",
    ),
    ("string doubling", "let s = 'x'; for (;;) s += s;"),
    ("deep recursion", "function f(n) { return f(n + 1) + 1 } f(0)"),
    ("regex backtracking", "/^(a+)+$/.test('a'.repeat(40) + 'b')"),
    (
        "Promise.all flood",
        "await Promise.all(Array.from({ length: 20000 }, (_, i) => data.get('k' + i)))",
    ),
    (
        "prototype tricks",
        "Object.prototype.toJSON = () => { throw new Error('no') }; JSON.stringify = null; \
         Array.prototype.push = null; globalThis.Promise = null; Object.freeze(Object.prototype); \
         ({ still: 'answered' })",
    ),
    (
        "console flood",
        "for (let i = 0; i < 1e6; i++) console.log('spam '.repeat(100))",
    ),
    ("huge result", "'x'.repeat(30 * 1024 * 1024)"),
    ("unsettled promise", "await new Promise(() => {})"),
    ("require tricks", "require('fs'); require('../../etc/passwd')"),
];

mod hostile_code_and_documents {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::hostile_code_and_documents(crate::harness::Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::hostile_code_and_documents(crate::harness::Backend::Postgres).await;
    }
}

async fn hostile_code_and_documents(backend: crate::harness::Backend) {
    use crate::harness::{TestApp, TestOptions};
    let fake = FakeProvider::start().await;
    let options = TestOptions {
        runtime: kiln_core::runtime::RuntimeConfig {
            sandbox: kiln_core::sandbox::SandboxLimits {
                time: Duration::from_secs(2),
                ..Default::default()
            },
            ..Default::default()
        },
        upload_limit: 1 << 20,
        ..crate::agents::fake_options(&fake)
    };
    let Some(app) = TestApp::start_with(backend, options).await else {
        return;
    };
    let (_, victim) = app.key_for("victim").await;
    let vindex = victim
        .create_index(&kiln_sdk::api::CreateIndex {
            name: "handbook".into(),
            description: None,
            metadata: None,
        })
        .await
        .unwrap()
        .id;
    let vdoc = victim
        .upload_document_bytes(
            &vindex,
            "leave.md",
            b"# Leave\n\nAnnual leave is 25 days a year.".to_vec(),
            &Default::default(),
        )
        .await
        .unwrap();
    victim
        .wait_for_document(&vdoc.id, Duration::from_secs(30))
        .await
        .unwrap();

    // The attacker's documents: bombs and malformed files of each format.
    let attacker = &app.client;
    let aindex = crate::documents::index(&app, "hostile").await;
    let hostile_files: Vec<(&str, Vec<u8>)> = vec![
        ("zip-bomb.docx", kiln_extract::fixtures::zip_bomb(300 << 20)),
        ("flate-bomb.pdf", kiln_extract::fixtures::pdf_bomb(300 << 20)),
        ("declares.docx", kiln_extract::fixtures::zip_declaring(u32::MAX)),
        (
            "truncated.pdf",
            kiln_extract::fixtures::pdf(&[&["Cut short."]])[..200].to_vec(),
        ),
        ("not-a-zip.docx", b"PK\x03\x04 this is not a zip archive".to_vec()),
        (
            "nested.html",
            format!("{}x{}", "<div>".repeat(50_000), "</div>".repeat(50_000)).into_bytes(),
        ),
        ("binary.pdf", (0..=255u8).cycle().take(100_000).collect()),
    ];
    let mut uploaded = Vec::new();
    for (name, bytes) in hostile_files {
        let doc = attacker
            .upload_document_bytes(&aindex, name, bytes, &Default::default())
            .await
            .unwrap();
        uploaded.push((name, doc.id));
    }

    // The attacker's blocks, all at once, each in a turn of its own.
    // Each turn's prompt is its code (the fake runs it as one step).
    fake.set_default(Reply::prompt_as_code("Done."));
    let mut turns = Vec::new();
    for (name, code) in HOSTILE_BLOCKS {
        let session = attacker
            .create_session(&CreateSession::default())
            .await
            .unwrap()
            .id;
        let stream = attacker.run_agent(&session, code).await.unwrap();
        turns.push((*name, stream));
    }
    // Meanwhile the victim's turn and search work.
    let vsession = victim.create_session(&CreateSession::default()).await.unwrap().id;
    let events = tokio::time::timeout(Duration::from_secs(60), async {
        victim
            .run_agent(&vsession, "6 * 7")
            .await
            .unwrap()
            .collect_turn()
            .await
            .unwrap()
    })
    .await
    .expect("the victim's turn ended");
    assert_eq!(events.last().unwrap().raw.kind, "done");
    let hits = victim
        .search(&kiln_sdk::api::SearchRequest {
            query: "annual leave".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(hits[0].document_id, vdoc.id);

    for (name, stream) in turns {
        let events = tokio::time::timeout(Duration::from_secs(60), stream.collect_turn())
            .await
            .unwrap_or_else(|_| panic!("{name}: the turn hung"))
            .unwrap();
        let terminals = events.iter().filter(|e| e.is_terminal()).count();
        assert_eq!(terminals, 1, "{name}: {events:#?}");
        let outcome = events
            .iter()
            .find_map(|e| match &e.kind {
                kiln_sdk::TurnEventKind::ExecuteJsResult { error, .. } => {
                    Some(error.clone().unwrap_or_else(|| "ok".into()))
                }
                _ => None,
            })
            .unwrap_or_else(|| "no block result".into());
        eprintln!("hostile code {name}: {}", outcome.lines().next().unwrap_or(""));
    }
    for (name, id) in uploaded {
        // A hang guard: extraction may take up to its 120 s timeout on a
        // loaded machine.
        let doc = attacker
            .wait_for_document(&id, Duration::from_secs(180))
            .await
            .unwrap();
        assert_eq!(doc.status, "error", "{name}: {doc:?}");
        eprintln!(
            "hostile document {name}: {}",
            doc.error_message.unwrap_or_default()
        );
    }
    app.stop().await;
}
