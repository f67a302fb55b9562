//! Long sessions as a user runs them (issue 17): the built `kiln` binary and
//! the fake model each in a process of their own, over HTTP. One session is
//! driven for `--turns` turns, each one `execute_js` step (the message runs
//! as code) and an answer, so two model calls; every `--window` turns the
//! run prints the window's latency and the server process's own CPU per
//! turn (utime + stime from `/proc/<pid>/stat`), so a cost that grows with
//! the session shows as a rising column. Then `--sessions` sessions run
//! `--concurrent-turns` turns each at once: turns per second and CPU per
//! turn.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kiln_sdk::Client;
use kiln_sdk::api::CreateSession;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::agents::{histogram, percentiles, process_ticks};

#[derive(Debug, clap::Args)]
pub(crate) struct LongSessionArgs {
    /// The kiln binary to serve with.
    #[arg(long, default_value = "target/release/kiln")]
    kiln: PathBuf,
    /// Turns of the one long session.
    #[arg(long, default_value_t = 1000)]
    turns: usize,
    /// Turns per reported window.
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// Sessions run at once in the throughput phase (0 skips it).
    #[arg(long, default_value_t = 16)]
    sessions: usize,
    /// Turns each of those sessions runs.
    #[arg(long, default_value_t = 50)]
    concurrent_turns: usize,
    /// The server's database (a fresh SQLite file by default).
    #[arg(long)]
    database_url: Option<String>,
}

/// CPU time of process `pid` so far (utime + stime), in ms.
pub(crate) fn cpu_ms(pid: u32) -> anyhow::Result<f64> {
    let ticks = process_ticks(&pid.to_string()).context("reading /proc/<pid>/stat (Linux only)")?;
    // USER_HZ: 100 ticks per second.
    Ok(ticks as f64 * 10.0)
}

/// A child process, killed when dropped.
struct Process(Child);

impl Process {
    fn pid(&self) -> anyhow::Result<u32> {
        self.0.id().context("the process has ended")
    }
}

/// The built `kiln` serving a fresh store, and the fake model (running each
/// message as code), each in a process of its own.
pub(crate) struct Served {
    fake: Process,
    server: Process,
    dir: PathBuf,
    pub(crate) client: Client,
    pub(crate) pid: u32,
}

impl Served {
    /// Starts both; `extra` goes to `kiln serve`.
    pub(crate) async fn start(
        kiln: &PathBuf,
        database_url: Option<&str>,
        extra: &[String],
    ) -> anyhow::Result<Served> {
        let fake_port = crate::free_port()?;
        // The model process: `kiln-fake-provider`, built beside this binary.
        let model = std::env::current_exe()?.with_file_name("kiln-fake-provider");
        let fake = Process(
            Command::new(&model)
                .args(["--prompt-as-code", "--addr", &format!("127.0.0.1:{fake_port}")])
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| {
                    format!(
                        "starting {} (cargo build --release -p kiln-bench builds it)",
                        model.display()
                    )
                })?,
        );
        let port = crate::free_port()?;
        let dir = std::env::temp_dir().join(format!("kiln-bench-served-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut serve = Command::new(kiln);
        serve
            .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(&dir)
            .args(["--rate-limit-runs", "0", "--allow-private-network"])
            .args(extra)
            .env("OPENAI_API_KEY", "bench")
            .env("OPENAI_BASE_URL", format!("http://127.0.0.1:{fake_port}/v1"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(url) = database_url {
            serve.args(["--database-url", url]);
        }
        let mut server = Process(
            serve
                .spawn()
                .with_context(|| format!("starting {}", kiln.display()))?,
        );
        let key = printed_key(&mut server.0).await?;
        let client = Client::new(&format!("http://127.0.0.1:{port}"), &key)?;
        let pid = server.pid()?;
        wait_for_fake(fake_port).await?;
        Ok(Served {
            fake,
            server,
            dir,
            client,
            pid,
        })
    }

    /// The fake model's process id.
    pub(crate) fn fake_pid(&self) -> anyhow::Result<u32> {
        self.fake.pid()
    }

    /// Stops both and removes the store.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        self.server.0.start_kill()?;
        self.server.0.wait().await?;
        drop(self.fake);
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

#[allow(clippy::print_stdout, reason = "the figures are the command's output")]
pub(crate) async fn long_session(args: LongSessionArgs) -> anyhow::Result<()> {
    let served = Served::start(&args.kiln, args.database_url.as_deref(), &[]).await?;
    let (client, pid) = (served.client.clone(), served.pid);

    println!(
        "long session: {} turns on one session (one code step and an answer each), kiln and the model in separate processes",
        args.turns
    );
    // The model's and this client's CPU beside the server's: a turn's
    // latency is all three on the same vCPUs.
    println!(
        "{:>12} {:>10} {:>10} {:>16} {:>16} {:>16}",
        "turns", "p50 ms", "p99 ms", "server CPU/turn", "model CPU/turn", "client CPU/turn"
    );
    let session = new_session(&client).await?;
    let (model, me) = (served.fake_pid()?, std::process::id());
    let mut done = 0;
    while done < args.turns {
        let window = args.window.min(args.turns - done);
        let mut latency = histogram();
        let before = [cpu_ms(pid)?, cpu_ms(model)?, cpu_ms(me)?];
        for _ in 0..window {
            let started = Instant::now();
            turn(&client, &session).await?;
            latency.record(started.elapsed().as_micros() as u64)?;
        }
        let after = [cpu_ms(pid)?, cpu_ms(model)?, cpu_ms(me)?];
        let per_turn = |i: usize| (after[i] - before[i]) / window as f64;
        println!(
            "{:>12} {:>10.2} {:>10.2} {:>13.2} ms {:>13.2} ms {:>13.2} ms",
            format!("{}-{}", done + 1, done + window),
            latency.value_at_quantile(0.5) as f64 / 1000.0,
            latency.value_at_quantile(0.99) as f64 / 1000.0,
            per_turn(0),
            per_turn(1),
            per_turn(2)
        );
        done += window;
    }

    if args.sessions > 0 {
        let mut sessions = Vec::new();
        for _ in 0..args.sessions {
            sessions.push(new_session(&client).await?);
        }
        let cpu_before = cpu_ms(pid)?;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for session in sessions {
            let client = client.clone();
            let turns = args.concurrent_turns;
            tasks.push(tokio::spawn(async move {
                let mut latency = histogram();
                for _ in 0..turns {
                    let at = Instant::now();
                    turn(&client, &session).await?;
                    latency.record(at.elapsed().as_micros() as u64)?;
                }
                anyhow::Ok(latency)
            }));
        }
        let mut all = histogram();
        for task in tasks {
            all.add(task.await??)?;
        }
        let seconds = started.elapsed().as_secs_f64();
        let total = (args.sessions * args.concurrent_turns) as f64;
        println!(
            "{} sessions at once, {} turns each: {:.0} turns/s, server CPU {:.2} ms/turn, latency {}",
            args.sessions,
            args.concurrent_turns,
            total / seconds,
            (cpu_ms(pid)? - cpu_before) / total,
            percentiles(&all).0
        );
    }
    served.stop().await
}

pub(crate) async fn new_session(client: &Client) -> anyhow::Result<String> {
    Ok(client
        .create_session(&CreateSession {
            model: Some("openai/bench".into()),
            ..Default::default()
        })
        .await?
        .id)
}

/// One turn: the message is the code the fake runs; it must end `done`.
async fn turn(client: &Client, session: &str) -> anyhow::Result<()> {
    let events = client.run_agent(session, "1 + 1").await?.collect_turn().await?;
    match events.last() {
        Some(last) if last.raw.kind == "done" => Ok(()),
        other => bail!("a turn did not finish: {other:?}"),
    }
}

/// The key from the first-start banner on the server's stderr.
async fn printed_key(server: &mut Child) -> anyhow::Result<String> {
    let stderr = server.stderr.take().context("the server's stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    let found = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(key) = line.split_whitespace().find(|w| w.starts_with("kiln_")) {
                return anyhow::Ok(key.to_owned());
            }
        }
        bail!("the server exited before printing its key")
    })
    .await
    .context("no key printed within 60 s")??;
    // Keep draining stderr so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(found)
}

async fn wait_for_fake(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            bail!("the fake provider did not listen within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
