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
mod kafka;
mod window;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use crate::rest::client::Rest;
use crate::rest::history::History;
use crate::route::Routes;
use crate::settings::{KafkaConfig, Settings};
use events::ChatType;
pub use window::Hour;

#[derive(clap::Args, Debug)]
pub struct ReconcileArgs {
    /// The bridge's TOML file: its Kafka settings, topics and [[apps]] (with `admin`
    /// and `secret_key`). TIM_BRIDGE_* variables win over it.
    #[arg(long, env = "TIM_BRIDGE_CONFIG")]
    config: Option<PathBuf>,
    /// The first hour to reconcile (RFC 3339 in UTC, e.g. 2026-12-06T03:00:00Z).
    #[arg(long, value_parser = window::parse_time)]
    from: Option<SystemTime>,
    /// The end of the window (RFC 3339), exclusive.
    #[arg(long, value_parser = window::parse_time)]
    to: Option<SystemTime>,
    /// The window ending at the last full hour, for example 24h.
    #[arg(long, value_parser = humantime::parse_duration)]
    last: Option<std::time::Duration>,
    /// Count only; publish nothing.
    #[arg(long)]
    dry_run: bool,
}

/// What one hour of one chat type held.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HourReport {
    pub archived: u64,
    pub already: u64,
    /// Not in the topics: published, unless `--dry-run`.
    pub missing: u64,
    pub published: u64,
    pub unreadable: u64,
    /// Messages the normalizer refused.
    pub refused: u64,
    /// `None` when the hour is done; else why not.
    pub pending: Option<String>,
}

pub async fn run(args: ReconcileArgs) -> ExitCode {
    match reconcile(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("reconcile: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether every hour asked for was reconciled (or empty).
async fn reconcile(args: ReconcileArgs) -> anyhow::Result<bool> {
    let settings = Settings::read(args.config.as_deref())?;
    let kafka = KafkaConfig::try_from(&settings)?;
    let hours = window::hours(args.from, args.to, args.last, SystemTime::now())?;
    let routes = Routes::new(&kafka);
    let mut all_done = true;
    for app in &settings.apps {
        let (Some(admin), Some(key)) = (&app.admin, &app.secret_key) else {
            anyhow::bail!(
                "app {} has no `admin` and `secret_key` in [[apps]]: reconcile calls Tencent's REST API as an App admin",
                app.sdk_app_id
            );
        };
        let base = app
            .rest_url
            .as_deref()
            .unwrap_or("https://console.tim.qq.com");
        let rest = Rest::new(
            base,
            app.sdk_app_id,
            admin,
            key.clone(),
            app.rest_ca_file.as_deref(),
        )?;
        for hour in &hours {
            for chat in [ChatType::C2c, ChatType::Group] {
                let report = reconcile_hour(
                    &rest,
                    &kafka,
                    &routes,
                    app.sdk_app_id,
                    *hour,
                    chat,
                    args.dry_run,
                )
                .await?;
                all_done &= report.pending.is_none();
                println!(
                    "{} (Beijing {}) {:<5} archived {} already {} missing {} published {} unreadable {} refused {}{}",
                    hour.utc(),
                    hour.beijing(),
                    chat.as_str(),
                    report.archived,
                    report.already,
                    report.missing,
                    report.published,
                    report.unreadable,
                    report.refused,
                    report
                        .pending
                        .as_deref()
                        .map(|why| format!(" NOT DONE: {why}"))
                        .unwrap_or_default(),
                );
            }
        }
    }
    Ok(all_done)
}

async fn reconcile_hour(
    rest: &Rest,
    kafka_config: &KafkaConfig,
    routes: &Routes,
    sdk_app_id: u64,
    hour: Hour,
    chat: ChatType,
    dry_run: bool,
) -> anyhow::Result<HourReport> {
    let mut report = HourReport::default();
    let files = match rest.get_history(chat.as_str(), &hour.beijing()).await? {
        History::Files(files) => files,
        History::NotReady => {
            report.pending = Some("Tencent has not made this hour's file yet (1004), or it had no message; tried again next run".into());
            return Ok(report);
        }
        History::Expired => {
            report.pending =
                Some("older than Tencent keeps files (1005): what it held is lost for good".into());
            return Ok(report);
        }
    };
    let download = tempfile::tempdir()?;
    let mut events = Vec::new();
    for (n, file) in files.iter().enumerate() {
        let path = download.path().join(format!("{n}.gz"));
        // A file that does not match what get_history said is fetched once more.
        let mut tries = 0;
        let found = loop {
            tries += 1;
            rest.download(file, &path).await?;
            let now = SystemTime::now();
            let mut read_events = Vec::new();
            let mut refused = 0;
            let found = tokio::task::block_in_place(|| {
                archive::read_file(
                    &path,
                    (file.gzip_size, &file.gzip_md5),
                    (file.file_size, &file.file_md5),
                    |message| match events::normalize(sdk_app_id, chat, &message, now) {
                        Ok((family, normalized)) => {
                            let topic = routes.topic_for(family, chat.command()).to_owned();
                            read_events.extend(normalized.into_iter().map(|n| (topic.clone(), n)));
                        }
                        Err(why) => {
                            refused += 1;
                            tracing::warn!(reason = %why, "An archived message the normalizer refuses.");
                        }
                    },
                )
            });
            match found {
                Err(archive::FileProblem::Mismatch { .. }) if tries < 2 => {
                    tracing::warn!(
                        file = n,
                        "An archive file does not match its checksums; fetching it again."
                    );
                }
                Ok(found) => {
                    events.extend(read_events);
                    report.refused += refused;
                    break Ok(found);
                }
                Err(problem) => break Err(problem),
            }
        };
        match found {
            Ok(found) => {
                report.archived += found.messages;
                report.unreadable += found.unreadable.len() as u64;
                for line in found.unreadable.iter().take(10) {
                    tracing::warn!(
                        file = n,
                        line,
                        "An unreadable line in the archive file; the rest goes on."
                    );
                }
            }
            Err(problem) => {
                report.pending = Some(format!("file {n}: {problem}"));
                return Ok(report);
            }
        }
    }
    let topics: HashSet<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    let already = kafka::ids_since(
        kafka_config,
        &topics,
        hour.start_ms() - kafka::EARLY_MARGIN_MS,
    )?;
    let missing: Vec<_> = events
        .into_iter()
        .filter(|(_, event)| !already.contains(&event.id))
        .collect();
    report.missing = missing.len() as u64;
    // One event per message here (a sent message), so this is what the topics had.
    report.already = report
        .archived
        .saturating_sub(report.refused + report.missing);
    if !dry_run {
        report.published =
            kafka::publish(kafka_config, sdk_app_id, chat.command(), missing).await?;
    }
    Ok(report)
}
