//! `kiln eval`: run an agent's eval suite as a CI gate (progress case by
//! case, a table, a non-zero exit below the suite's threshold) and show a
//! run's results.

use std::time::Duration;

use clap::Subcommand;
use kiln_sdk::Client;
use kiln_sdk::api::{EvalResult, EvalRunDetail};

use crate::code::find_agent;
use crate::{RemoteArgs, print_table};

#[derive(Debug, Subcommand)]
pub(crate) enum EvalCommand {
    /// Run an agent's pinned suite and wait for it: each case as it ends,
    /// then a table; exits 1 when the run did not pass.
    Run {
        /// The agent (local id or id).
        #[arg(long)]
        agent: String,
        /// Run the draft synced by `kiln dev` instead of the live version.
        #[arg(long)]
        draft: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Show a run's results (and wait for it with --wait).
    Show {
        run: String,
        /// Wait until the run ends.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

pub(crate) async fn eval(command: EvalCommand) -> anyhow::Result<()> {
    match command {
        EvalCommand::Run { agent, draft, remote } => {
            let client = remote.client()?;
            let agent = find_agent(&client, &agent).await?;
            let run = client.start_eval_run(&agent.id, draft).await?;
            eprintln!(
                "eval run {} of `{}` ({}): {} case(s), judge {}",
                run.id,
                agent.code_first_local_id.as_deref().unwrap_or(&agent.id),
                run.target,
                run.total_cases,
                run.judge_model
            );
            let detail = follow(&client, &run.id, true).await?;
            report(&detail)
        }
        EvalCommand::Show { run, wait, remote } => {
            let client = remote.client()?;
            let detail = if wait {
                follow(&client, &run, false).await?
            } else {
                client.get_eval_run(&run).await?
            };
            report(&detail)
        }
    }
}

/// Polls the run until it ends; with `progress`, prints each case to
/// stderr as it ends.
pub(crate) async fn follow(client: &Client, id: &str, progress: bool) -> anyhow::Result<EvalRunDetail> {
    let mut shown = 0;
    loop {
        let detail = client.get_eval_run(id).await?;
        if progress {
            for result in detail.results.iter().skip(shown) {
                eprintln!("[{}/{}] {}", shown + 1, detail.run.total_cases, line(result));
                shown += 1;
            }
        }
        if !matches!(detail.run.status.as_str(), "pending" | "running") {
            return Ok(detail);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn line(r: &EvalResult) -> String {
    let verdict = if !r.error.is_empty() {
        format!("error: {}", r.error)
    } else if r.pass {
        "pass".to_owned()
    } else {
        format!("FAIL: {}", r.reasoning)
    };
    format!(
        "{}  {}/10  {}  {}",
        r.case_name,
        r.score,
        seconds(r.duration_ms),
        verdict
    )
}

fn seconds(ms: i64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

/// Prints the table and the verdict; an error unless the run passed.
pub(crate) fn report(detail: &EvalRunDetail) -> anyhow::Result<()> {
    let mut rows = vec![vec![
        "CASE".to_owned(),
        "SET".to_owned(),
        "SCORE".to_owned(),
        "PASS".to_owned(),
        "TIME".to_owned(),
        "NOTE".to_owned(),
    ]];
    for r in &detail.results {
        let note = if r.error.is_empty() {
            &r.reasoning
        } else {
            &r.error
        };
        rows.push(vec![
            r.case_name.clone(),
            r.set_name.clone(),
            r.score.to_string(),
            if r.pass { "yes" } else { "no" }.to_owned(),
            seconds(r.duration_ms),
            note.chars().take(70).collect(),
        ]);
    }
    print_table(&rows);
    let run = &detail.run;
    let share = if run.total_cases == 0 {
        1.0
    } else {
        run.passed as f64 / run.total_cases as f64
    };
    println!(
        "{}: {} of {} passed ({:.0} %, threshold {:.0} %), average score {:.1}",
        run.status,
        run.passed,
        run.total_cases,
        share * 100.0,
        run.threshold * 100.0,
        run.average_score
    );
    match run.status.as_str() {
        "passed" => Ok(()),
        "error" => anyhow::bail!("the eval run broke: {}", run.error),
        "pending" | "running" => anyhow::bail!(
            "the eval run is still {} (kiln eval show {} --wait)",
            run.status,
            run.id
        ),
        other => anyhow::bail!("the eval run {other}"),
    }
}
