//! `tim-kafka-bridge reconcile`: the messages Tencent archived that never reached the
//! topics (the bridge was unreachable, a callback was answered 503 or switched off),
//! published as the callback path would have published them.
//!
//! For each hour of the window and each chat type, `get_history` lists the hour's
//! files; each is downloaded, checked, and read as a stream. Every message becomes the
//! event its callback would have made (same id, key, topic, partition: `events.rs`);
//! the ids already in the topic for that hour are read first, and only the missing
//! events are published, with the bridge's producer settings.

pub mod archive;
pub mod events;
mod hour;
mod kafka;
mod report;
pub mod state;
mod window;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use crate::rest::client::Rest;
use crate::route::Routes;
use crate::settings::{KafkaConfig, Settings};
use events::ChatType;
use state::{HourReport, Outcome};
pub use window::Hour;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReconcileArgs {
    #[command(subcommand)]
    command: Option<ReconcileCommand>,
    /// The bridge's TOML file: its Kafka settings, topics, [[apps]] (with `admin` and
    /// `secret_key`) and [reconcile]. TIM_BRIDGE_* variables win over it.
    #[arg(long, env = "TIM_BRIDGE_CONFIG")]
    config: Option<PathBuf>,
    /// The first hour to reconcile (RFC 3339 in UTC, e.g. 2026-12-06T03:00:00Z).
    #[arg(long, value_parser = window::parse_time)]
    from: Option<SystemTime>,
    /// The end of the window (RFC 3339), exclusive.
    #[arg(long, value_parser = window::parse_time)]
    to: Option<SystemTime>,
    /// This long, ending with the newest hour Tencent should have finished
    /// (reconcile.ready_after_secs past its end), for example 24h.
    #[arg(long, value_parser = humantime::parse_duration)]
    last: Option<Duration>,
    /// Count only; publish nothing, record nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do again the hours the state topic says are done.
    #[arg(long)]
    force: bool,
    /// One JSON document on standard output instead of the table (progress lines go
    /// to standard error).
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand, Debug)]
enum ReconcileCommand {
    /// Print what the state topic holds: every hour reconciled, and how it ended.
    Status {
        #[arg(long, env = "TIM_BRIDGE_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: ReconcileArgs) -> ExitCode {
    let outcome = match args.command {
        Some(ReconcileCommand::Status { ref config, json }) => status(config.clone(), json),
        None => reconcile(args).await,
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("reconcile: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn read_settings(config: Option<&std::path::Path>) -> anyhow::Result<(Settings, KafkaConfig)> {
    let settings = Settings::read(config)?;
    let kafka = KafkaConfig::try_from(&settings)?;
    Ok((settings, kafka))
}

/// Whether every hour asked for was reconciled (or empty).
async fn reconcile(args: ReconcileArgs) -> anyhow::Result<bool> {
    let (settings, kafka) = read_settings(args.config.as_deref())?;
    let ready_after = Duration::from_secs(settings.reconcile.ready_after_secs);
    let hours = window::hours(
        args.from,
        args.to,
        args.last,
        SystemTime::now(),
        ready_after,
    )?;
    let routes = Routes::new(&kafka);
    let state_topic = settings.reconcile.state_topic.clone();
    if kafka.create_topics {
        crate::kafka::create_topics(&kafka, routes.topics()).await?;
        crate::kafka::create_compacted_topic(&kafka, &state_topic).await?;
    }
    let state = tokio::task::block_in_place(|| state::read(&kafka, &state_topic))?;
    let mut publisher = kafka::Publisher::new(
        &kafka,
        Duration::from_millis(settings.reconcile.publish_timeout_ms),
    )?;
    let progress = |line: String| {
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let mut reports = Vec::new();
    for app in &settings.apps {
        let (Some(admin), Some(key)) = (&app.admin, &app.secret_key) else {
            anyhow::bail!(
                "app {} has no `admin` and `secret_key` in [[apps]]: reconcile calls Tencent's REST API as an App admin",
                app.sdk_app_id
            );
        };
        let rest = Rest::new(
            app.rest_base(),
            app.sdk_app_id,
            admin,
            key.clone(),
            app.rest_ca_file.as_deref(),
        )?;
        let run = hour::AppRun {
            rest: &rest,
            kafka: &kafka,
            routes: &routes,
            settings: &settings.reconcile,
            sdk_app_id: app.sdk_app_id,
            dry_run: args.dry_run,
        };
        for hour in &hours {
            for chat in [ChatType::C2c, ChatType::Group] {
                let earlier = state.get(&state::key(app.sdk_app_id, chat, &hour.beijing()));
                if let Some(done) = earlier.filter(|r| r.outcome == Outcome::Done && !args.force) {
                    progress(report::line(done, true));
                    reports.push(done.clone());
                    continue;
                }
                let report = run.hour(&mut publisher, *hour, chat).await?;
                if report.outcome == Outcome::Lost {
                    tracing::error!(
                        hour = %report.hour,
                        chat = chat.as_str(),
                        app = app.sdk_app_id,
                        "LOST FOR GOOD: Tencent no longer keeps this hour's messages and it was never reconciled; any of them that did not reach the bridge will never be in the topics."
                    );
                }
                if !args.dry_run {
                    tokio::task::block_in_place(|| {
                        state::write(&mut publisher, &state_topic, &report)
                    })?;
                }
                progress(report::line(&report, false));
                reports.push(report);
            }
        }
    }
    let complete = reports.iter().all(|r| r.outcome.settled());
    if args.json {
        println!("{}", report::json(&reports, complete));
    } else {
        println!();
        report::table(&reports, &mut std::io::stdout())?;
        if !complete {
            println!(
                "NOT DONE: some hours are not reconciled (see their outcome); run again later."
            );
        }
    }
    Ok(complete)
}

/// `reconcile status`: the state topic's table. An hour not done whose files Tencent
/// has deleted since is shown LOST. Whether every hour it holds is settled.
fn status(config: Option<PathBuf>, json: bool) -> anyhow::Result<bool> {
    let (settings, kafka) = read_settings(config.as_deref())?;
    let now = SystemTime::now();
    let mut reports: Vec<HourReport> =
        tokio::task::block_in_place(|| state::read(&kafka, &settings.reconcile.state_topic))?
            .into_values()
            .collect();
    for report in &mut reports {
        let expired = window::parse_time(&report.hour)
            .map(|t| {
                Hour::starting(
                    t.duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                )
                .is_expired(now)
            })
            .unwrap_or(false);
        if expired && !report.outcome.settled() {
            report.outcome = Outcome::Lost;
        }
    }
    reports.sort_by(|a, b| {
        (&a.hour, a.sdk_app_id, a.chat_type.as_str()).cmp(&(
            &b.hour,
            b.sdk_app_id,
            b.chat_type.as_str(),
        ))
    });
    let complete = reports.iter().all(|r| r.outcome.settled());
    if json {
        println!("{}", report::json(&reports, complete));
    } else {
        report::table(&reports, &mut std::io::stdout())?;
    }
    Ok(complete)
}
