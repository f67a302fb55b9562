//! The built `kiln` binary, run as a user would: first-start banner, keys
//! minted by the CLI beside a running server, revocation, SIGTERM, and a
//! search of logs and database files for a secret's plaintext.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_sdk::Client;
use kiln_sdk::api::CreateSecretVault;

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Served {
    child: Child,
    base_url: String,
    stderr_path: std::path::PathBuf,
}

/// A server left running by a failing assertion is stopped, not orphaned.
impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Served {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap()
    }

    /// SIGTERM, then wait for a clean exit.
    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "kiln exited with {status}: {}", self.stderr());
                return;
            }
            assert!(Instant::now() < deadline, "kiln did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

async fn serve(data_dir: &Path, log_name: &str) -> Served {
    let port = free_port();
    let stderr_path = data_dir.parent().unwrap().join(log_name);
    let child = Command::new(KILN)
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "debug")
        // The fake provider listens on loopback and is configured through a vault.
        .env("KILN_ALLOW_PRIVATE_NETWORK", "true")
        .env_remove("KILN_SECRET_KEK")
        .env_remove("KILN_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    // Owned by `Served` from here on, so a failed wait still stops it.
    let served = Served {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
        stderr_path,
    };
    if !healthy(&served.base_url, Duration::from_secs(15)).await {
        panic!("kiln did not become healthy: {}", served.stderr());
    }
    served
}

/// Waits up to `within` for `/healthz` to answer 200; `false` if it did not.
pub(crate) async fn healthy(base_url: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let http = reqwest::Client::new();
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{base_url}/healthz")).send().await
            && r.status() == 200
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

fn cli(data_dir: &Path, args: &[&str]) -> (String, String) {
    let output = Command::new(KILN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("KILN_DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "kiln {args:?} failed: {stderr}");
    (stdout, stderr)
}

/// The first API key in `text` (log lines also hold `kiln_…` module paths).
pub(crate) fn find_key(text: &str) -> Option<String> {
    text.match_indices("kiln_").find_map(|(start, _)| {
        let key: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        (key.len() == 45 && key[5..].chars().all(|c| c.is_ascii_alphanumeric())).then_some(key)
    })
}

fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiln_binary_end_to_end() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let secret_value = format!("sk-plaintext-{}", uuid::Uuid::new_v4().simple());

    // First start: banner with one key, a generated KEK with mode 0600.
    let server = serve(&data_dir, "first.log").await;
    let banner = server.stderr();
    assert!(banner.contains("first start"), "{banner}");
    let key = find_key(&banner).expect("the banner prints a key");
    assert!(
        banner.contains("KILN_SECRET_KEK"),
        "warns that production must pass a KEK"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join("secret.kek"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let client = Client::new(&server.base_url, &key).unwrap();
    assert_eq!(client.get_project().await.unwrap().name, "default");
    let vault = client
        .create_secret_vault(&CreateSecretVault {
            name: "prod".into(),
            metadata: None,
        })
        .await
        .unwrap();
    client
        .put_secret(&vault.id, "openai_api_key", &secret_value)
        .await
        .unwrap();
    // A refused write does not echo the value either.
    let err = client
        .put_secret("missing-vault", "openai_api_key", &secret_value)
        .await
        .unwrap_err();
    assert!(!err.to_string().contains(&secret_value));

    // The CLI mints a key beside the running server; the key is the last stdout line.
    let (stdout, _) = cli(&data_dir, &["keys", "create", "--project", "acme"]);
    let acme_key = stdout.lines().last().unwrap().to_owned();
    assert_eq!(find_key(&acme_key).as_deref(), Some(acme_key.as_str()));
    let acme = Client::new(&server.base_url, &acme_key).unwrap();
    assert_eq!(acme.get_project().await.unwrap().name, "acme");

    let (listing, _) = cli(&data_dir, &["keys", "list"]);
    assert!(
        listing.contains("acme") && listing.contains("default"),
        "{listing}"
    );
    assert!(
        !listing.contains(&acme_key) && !listing.contains(&key),
        "lists never show keys"
    );
    let (projects, _) = cli(&data_dir, &["projects", "list"]);
    assert!(
        projects.contains("acme") && projects.contains("default"),
        "{projects}"
    );

    // Revoke from the CLI: the server refuses the key within its cache TTL.
    let (json, _) = cli(&data_dir, &["keys", "list", "--project", "acme", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let acme_key_id = listed[0]["id"].as_str().unwrap().to_owned();
    cli(&data_dir, &["keys", "revoke", &acme_key_id]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while acme.get_project().await.is_ok() {
        assert!(Instant::now() < deadline, "revoked key still accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(acme.get_project().await.unwrap_err().is_unauthorized());

    // `kiln index create|list|delete` against the running server.
    let remote = |args: &[&str]| {
        let output = Command::new(KILN)
            .args(args)
            .args(["--url", &server.base_url, "--api-key", &key])
            .output()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        (
            output.status.success(),
            String::from_utf8(output.stdout).unwrap(),
            stderr,
        )
    };
    let (ok, id, _) = remote(&[
        "index",
        "create",
        "handbook",
        "--description",
        "HR",
        "--metadata",
        r#"{"team":"hr"}"#,
    ]);
    assert!(ok);
    let index = client.get_index(id.trim()).await.unwrap();
    assert_eq!(
        (index.name.as_str(), index.metadata["team"].as_str()),
        ("handbook", Some("hr"))
    );
    let (ok, listing, _) = remote(&["index", "list"]);
    assert!(
        ok && listing.contains("handbook") && listing.contains("HR"),
        "{listing}"
    );
    let (ok, _, err) = remote(&["index", "create", "handbook"]);
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = remote(&["index", "create", "x", "--metadata", "[1]"]);
    assert!(!ok && err.contains("JSON object"), "{err}");

    // `kiln upload` a directory and a pattern, then `kiln search` and `kiln docs list`.
    let docs_dir = root.path().join("docs");
    std::fs::create_dir_all(docs_dir.join("hr")).unwrap();
    std::fs::write(
        docs_dir.join("hr/leave.md"),
        "# Leave\n\n## Parental leave\n\nParents get sixteen weeks of paid leave.\n",
    )
    .unwrap();
    std::fs::write(
        docs_dir.join("badges.txt"),
        "Badges are collected at the front desk.",
    )
    .unwrap();
    std::fs::write(docs_dir.join("broken.pdf"), "%PDF-1.4 not really").unwrap();
    let docs_arg = docs_dir.to_string_lossy().into_owned();
    let (ok, _, err) = remote(&["upload", "--index", "handbook", &docs_arg]);
    assert!(!ok, "a file that fails makes the command fail");
    assert!(
        err.contains("ready") && err.contains("leave.md") && err.contains("1 chunk"),
        "{err}"
    );
    assert!(
        err.contains("error") && err.contains("broken.pdf") && err.contains("PDF"),
        "{err}"
    );
    assert!(
        err.contains("3 file(s)") && err.contains("2 ok, 1 failed"),
        "{err}"
    );
    let pattern = format!("{docs_arg}/*.txt");
    let (ok, _, err) = remote(&["upload", "--index", "handbook", &pattern]);
    assert!(ok && err.contains("badges.txt") && err.contains("1 ok"), "{err}");
    let (ok, out, err) = remote(&[
        "search", "--index", "handbook", "--json", "how", "long", "is", "parental", "leave",
    ]);
    assert!(ok, "{err}");
    let hits: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        hits[0]["content"].as_str().unwrap().contains("sixteen weeks"),
        "{out}"
    );
    let (ok, out, _) = remote(&["search", "--documents", "front", "desk", "badges"]);
    assert!(
        ok && out.lines().nth(1).unwrap_or_default().contains("badges.txt"),
        "{out}"
    );
    let (ok, out, _) = remote(&["docs", "list", "--index", "handbook"]);
    assert!(ok, "{out}");
    // The re-uploaded badges.txt is version 2 of its name, not a duplicate.
    assert_eq!(
        out.lines().filter(|l| l.contains("badges.txt")).count(),
        1,
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.contains("badges.txt") && l.contains(" 2 ")),
        "{out}"
    );
    let (ok, _, err) = remote(&["upload", "--index", "nope", &pattern]);
    assert!(!ok && err.contains("no index named"), "{err}");

    // `kiln run` on the offline model: it searches the index and quotes;
    // `kiln sessions` lists, shows and deletes the session.
    let (ok, out, err) = remote(&[
        "run",
        "--index",
        "handbook",
        "--system",
        "You are an HR assistant",
        "How long is parental leave?",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("```js") && out.contains("search("),
        "the code is shown: {out}"
    );
    assert!(out.contains("[search]"), "primitive calls are shown: {out}");
    assert!(
        out.contains("sixteen weeks"),
        "the answer quotes the handbook: {out}"
    );
    assert!(err.contains("done:"), "{err}");
    let session = client.list_sessions(None, None).await.unwrap()[0].clone();
    assert!(err.contains(&session.id), "the session id is printed: {err}");
    assert_eq!(session.system_prompt, "You are an HR assistant");
    assert_eq!(session.index_ids.as_ref().map(Vec::len), Some(1));
    let (ok, out, err) = remote(&["run", "--session", &session.id, "--json", "Where are badges?"]);
    assert!(ok, "{err}");
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "done", "{out}");
    let (ok, out, _) = remote(&["sessions", "list"]);
    assert!(ok && out.contains(&session.id) && out.contains("active"), "{out}");
    let (ok, out, _) = remote(&["sessions", "show", &session.id]);
    assert!(
        ok && out.contains("user_message") && out.contains("execute_js_result"),
        "{out}"
    );
    assert!(remote(&["sessions", "delete", &session.id]).0);
    let (ok, _, err) = remote(&["sessions", "show", &session.id]);
    assert!(!ok && err.contains("not found"), "{err}");

    assert!(remote(&["index", "delete", "handbook"]).0);
    assert!(client.list_indexes().await.unwrap().is_empty());

    // `kiln chat` with piped input: the offline model answers, the
    // conversation is stored, and `--conversation` continues it.
    let chat = |extra: Vec<String>, input: &str| {
        let mut child = Command::new(KILN)
            .args(["chat", "--url", &server.base_url, "--api-key", &key])
            .args(&extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        (
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (answer, notes) = chat(Vec::new(), "What is Kiln?\n/exit\n");
    assert!(answer.contains("offline model"), "{answer}");
    assert!(notes.contains("tokens"), "{notes}");
    let conversations = client.list_conversations(None, None).await.unwrap();
    assert_eq!(conversations.len(), 1);
    let id = conversations[0].id.clone();
    let (again, _) = chat(vec!["--conversation".into(), id.clone()], "And again?\n");
    assert!(again.contains("offline model"), "{again}");
    assert_eq!(client.get_conversation(&id).await.unwrap().messages.len(), 4);

    // A provider key in the vault never reaches logs or errors, even when
    // the provider rejects it (the fake stands in for the vendor).
    let fake = kiln_providers::fake::FakeProvider::start().await;
    fake.require_key("the-right-key");
    let provider_key = format!("sk-provider-{}", uuid::Uuid::new_v4().simple());
    client
        .put_secret(&vault.id, "openai_api_key", &provider_key)
        .await
        .unwrap();
    client
        .put_secret(&vault.id, "openai_base_url", &fake.openai_base_url())
        .await
        .unwrap();
    client.set_project_vault(Some(&vault.id)).await.unwrap();
    let err = client
        .chat_completion(&kiln_sdk::api::ChatCompletionInput {
            messages: vec![kiln_sdk::api::ChatMessage {
                role: "user".into(),
                content: "hi".into(),
            }],
            model: Some("openai/gpt-4o".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.api().unwrap().status, 502);
    assert!(!err.to_string().contains(&provider_key));
    assert_eq!(
        fake.requests()[0].header("authorization"),
        Some(format!("Bearer {provider_key}").as_str())
    );

    let logs = server.stderr();
    server.terminate();
    assert!(!logs.contains(&provider_key), "provider key in the server log");

    // The plaintext is nowhere: not in the logs, not in any database file.
    assert!(!logs.contains(&secret_value), "secret value in the server log");
    assert_eq!(
        files_containing(&data_dir, secret_value.as_bytes()),
        Vec::<String>::new()
    );

    // Second start: no banner; data and keys survive.
    let again = serve(&data_dir, "second.log").await;
    let client = Client::new(&again.base_url, &key).unwrap();
    assert_eq!(
        client.list_secrets(&vault.id).await.unwrap().len(),
        2,
        "openai_api_key and openai_base_url survive the restart"
    );
    let second_log = again.stderr();
    again.terminate();
    assert!(!second_log.contains("first start"), "{second_log}");
    assert_eq!(find_key(&second_log), None, "no key printed on later starts");
}

/// `kiln run` answers an `input()` question on the terminal (stdin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiln_run_asks_input_questions_on_the_terminal() {
    use kiln_providers::fake::{FakeProvider, Reply};
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    let server = serve(&data_dir, "run.log").await;
    let key = find_key(&server.stderr()).expect("the banner prints a key");
    let client = Client::new(&server.base_url, &key).unwrap();
    let fake = FakeProvider::start().await;
    let vault = client
        .create_secret_vault(&CreateSecretVault {
            name: "llm".into(),
            metadata: None,
        })
        .await
        .unwrap();
    client.put_secret(&vault.id, "openai_api_key", "k").await.unwrap();
    client
        .put_secret(&vault.id, "openai_base_url", &fake.openai_base_url())
        .await
        .unwrap();
    client.set_project_vault(Some(&vault.id)).await.unwrap();
    fake.push(Reply::tool_call(
        "execute_js",
        serde_json::json!({ "code": "await input({ type: 'choice', message: 'Which colour?', options: ['red', 'blue'] })" }),
    ));
    fake.push(Reply::text("You picked blue."));

    let mut child = Command::new(KILN)
        .args(["run", "--model", "openai/gpt-test", "Pick a colour for me"])
        .args(["--url", &server.base_url, "--api-key", &key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"2\n").unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    let err = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{out}\n{err}");
    assert!(
        out.contains("Which colour?") && out.contains("1) red") && out.contains("2) blue"),
        "{out}"
    );
    assert!(out.contains("→ blue"), "the answer went back to the code: {out}");
    assert!(out.contains("You picked blue."), "{out}");
    let request = &fake.requests()[1].body;
    let tool = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap();
    assert_eq!(tool["content"], "blue");
    server.terminate();
}

/// `kiln run --session S --queue` waits behind the running turn, says
/// where it stands, then plays only its own turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiln_run_queue_waits_behind_the_running_turn() {
    use kiln_providers::fake::{FakeProvider, Reply};
    let root = tempfile::tempdir().unwrap();
    let server = serve(&root.path().join("data"), "queue.log").await;
    let key = find_key(&server.stderr()).expect("the banner prints a key");
    let client = Client::new(&server.base_url, &key).unwrap();
    let fake = FakeProvider::start().await;
    let vault = client
        .create_secret_vault(&CreateSecretVault {
            name: "llm".into(),
            metadata: None,
        })
        .await
        .unwrap();
    client.put_secret(&vault.id, "openai_api_key", "k").await.unwrap();
    client
        .put_secret(&vault.id, "openai_base_url", &fake.openai_base_url())
        .await
        .unwrap();
    client.set_project_vault(Some(&vault.id)).await.unwrap();
    let session = client
        .create_session(&kiln_sdk::api::CreateSession {
            model: Some("openai/gpt-test".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    fake.push(Reply::tool_call(
        "execute_js",
        serde_json::json!({ "code": "await input({ type: 'confirm', message: 'Hold?' })" }),
    ));
    fake.push(Reply::text("first done"));
    fake.push(Reply::text("second done"));
    client.enqueue_message(&session.id, "first").await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let request_id = loop {
        let detail = client.get_session(&session.id).await.unwrap();
        if let Some(step) = detail.steps.iter().find(|s| s.step_type == "input_request") {
            break step.tool_args["request_id"].as_str().unwrap().to_owned();
        }
        assert!(tokio::time::Instant::now() < deadline, "no input request");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };

    let child = Command::new(KILN)
        .args(["run", "--session", &session.id, "--queue", "--json", "second"])
        .args(["--url", &server.base_url, "--api-key", &key])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if client.list_queue(&session.id).await.unwrap().len() == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the CLI did not queue");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    client
        .respond_to_input(&session.id, &request_id, serde_json::json!(true))
        .await
        .unwrap();
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    let err = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{out}\n{err}");
    assert!(err.contains("queued at position 1"), "{err}");
    assert!(out.contains("second done"), "{out}");
    assert!(!out.contains("first done"), "only its own turn is shown: {out}");
    let last: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "done", "{out}");
    server.terminate();
}
