//! The command line: `tim-kafka-bridge serve [--config FILE] [--dev] [--log-format json]`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::dev;
use crate::settings::{BufferConfig, Config, KafkaConfig, Settings, SettingsError};
use crate::startup::Application;

#[derive(Parser)]
#[command(
    name = "tim-kafka-bridge",
    version,
    about = "Tencent Cloud IM callbacks in, normalized events on Kafka out"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Receive callbacks and publish their events to Kafka.
    Serve(ServeArgs),
    /// Check the settings (file and environment) and print them, secrets redacted,
    /// without starting anything. Exits non-zero when they are invalid.
    CheckConfig {
        /// The TOML file to check (the bridge's, or a relay's: one with subscriptions);
        /// TIM_BRIDGE_* variables win over it, as in `serve`.
        #[arg(long, env = "TIM_BRIDGE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Read the bridge's topics from an offset or a time: JSON lines, or POSTs to a URL.
    Replay(Box<crate::replay::ReplayArgs>),
    /// Deliver the topics' events to internal services over HTTP: each subscription a
    /// consumer group, its events signed, retried and dead-lettered.
    Relay(crate::relay::RelayArgs),
    /// Ask a running bridge's /healthz (for container health checks); exits 0 when healthy.
    Health {
        /// host:port of the bridge's /healthz (its `listen`, or `admin_listen`).
        #[arg(long, default_value = "127.0.0.1:8080")]
        address: String,
    },
    /// Publish the messages Tencent archived that never reached the topics (from its
    /// hourly history files), as their callbacks would have; the rest is left alone.
    Reconcile(crate::reconcile::ReconcileArgs),
    /// Look inside a spool directory, or send what it holds to Kafka without a bridge.
    #[command(subcommand)]
    Spool(SpoolCommand),
}

#[derive(Subcommand)]
enum SpoolCommand {
    /// Records waiting, bytes, segments, the oldest waiting record's age, corrupt
    /// records, dead letters by topic and reason. Read-only: safe beside a running bridge.
    Inspect {
        #[command(flatten)]
        spool: SpoolArgs,
        /// List each dead letter: time, topic, key, command, reason.
        #[arg(long)]
        dead: bool,
        /// One JSON document instead of text, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Send every waiting record to Kafka in order (taking the directory's lock), then,
    /// with --dead, every dead letter. Exits 0 only when nothing is left.
    Drain {
        #[command(flatten)]
        spool: SpoolArgs,
        /// Then send every dead letter too (once its cause is fixed): each one Kafka
        /// confirms is removed, one refused again stays a dead letter.
        #[arg(long)]
        dead: bool,
        /// Send what the spool holds even if it was written for another Kafka cluster.
        #[arg(long)]
        adopt_spool: bool,
        /// Give up after this long without a confirmation.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        patience: std::time::Duration,
    },
}

#[derive(clap::Args)]
struct SpoolArgs {
    /// The bridge's settings (TIM_BRIDGE_* variables win over it): brokers, security, spool_dir.
    #[arg(long, env = "TIM_BRIDGE_CONFIG")]
    config: Option<PathBuf>,
    /// The spool directory, instead of the settings' spool_dir.
    #[arg(long)]
    dir: Option<PathBuf>,
}

impl SpoolArgs {
    fn settings(&self) -> Result<Settings, crate::settings::SettingsError> {
        let mut settings = Settings::read(self.config.as_deref())?;
        if let Some(dir) = &self.dir {
            settings.spool_dir = dir.clone();
        }
        Ok(settings)
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML settings file; TIM_BRIDGE_* environment variables win over it.
    #[arg(long, env = "TIM_BRIDGE_CONFIG")]
    config: Option<PathBuf>,
    /// Development: without brokers, run librdkafka's in-process cluster and print a
    /// curl to try. Takes the known token `dev-token` and unsigned callbacks, and keeps
    /// its spool in a temporary directory of its own (printed), never ./spool.
    #[arg(long)]
    dev: bool,
    /// Send what the spool holds even if it was written for another Kafka cluster
    /// (a cluster migrated, a volume moved on purpose); without it such a spool is refused.
    #[arg(long)]
    adopt_spool: bool,
    /// `text` for people, `json` (one object per line) for log pipelines; RUST_LOG sets the level.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

pub async fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::CheckConfig { config } => check_config(config),
        Command::Health { address } => health(&address),
        Command::Replay(args) => {
            init_logging(LogFormat::Text);
            crate::replay::run(*args).await
        }
        Command::Spool(command) => spool(command).await,
        Command::Reconcile(args) => {
            init_logging(LogFormat::Text);
            crate::reconcile::run(args).await
        }
        Command::Relay(args) => {
            init_logging(LogFormat::Text);
            crate::relay::run(args).await
        }
    }
}

async fn spool(command: SpoolCommand) -> ExitCode {
    use crate::admin;
    match command {
        SpoolCommand::Inspect { spool, dead, json } => {
            let settings = match spool.settings() {
                Ok(s) => s,
                Err(error) => return refuse(error),
            };
            match admin::inspect(&settings.spool_dir, dead) {
                Ok(report) if json => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).expect("a report serializes")
                    );
                    ExitCode::SUCCESS
                }
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(error) => refuse(error),
            }
        }
        SpoolCommand::Drain {
            spool,
            dead,
            adopt_spool,
            patience,
        } => {
            init_logging(LogFormat::Text);
            // Only what a drain uses is checked, once: no app needs to be configured.
            let checked = spool.settings().and_then(|s| {
                let s = Settings { adopt_spool, ..s };
                Ok((KafkaConfig::try_from(&s)?, BufferConfig::try_from(&s)?))
            });
            let (kafka, buffer) = match checked {
                Ok(checked) => checked,
                Err(error) => return refuse(error),
            };
            match admin::drain(&kafka, &buffer, dead, patience).await {
                Ok(drained) => {
                    println!("{drained}");
                    if drained.complete() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(error) => refuse(format!("{error:#}")),
            }
        }
    }
}

fn check_config(config: Option<PathBuf>) -> ExitCode {
    // A relay file is recognised by its subscriptions.
    if let Some(path) = config.as_deref().filter(|p| is_relay_file(p)) {
        return match crate::relay::read_config(path) {
            Ok(relay) => {
                println!("{}", relay.describe());
                ExitCode::SUCCESS
            }
            Err(error) => refuse(error),
        };
    }
    // Everything `serve` checks before it connects: the settings, the producer as
    // librdkafka builds it, the HTTPS certificate and key.
    let checked = Settings::read(config.as_deref()).and_then(|s| {
        let config = Config::try_from(s.clone())?;
        crate::kafka::check_producer(&config.kafka)?;
        if let Some(files) = &config.http.tls {
            use crate::http::CertificateError;
            crate::http::Certificates::load(files).map_err(|e| {
                let setting = match &e {
                    CertificateError::Unreadable { setting, .. } => setting,
                    CertificateError::NoCertificate(_) => "tls.cert_file",
                    CertificateError::KeyMismatch(_) => "tls.key_file",
                };
                SettingsError::new(setting, e.to_string())
            })?;
        }
        Ok(s)
    });
    match checked {
        Ok(settings) => {
            for warning in settings.warnings() {
                eprintln!("tim-kafka-bridge: warning: {warning}");
            }
            println!("{}", settings.to_redacted_toml());
            ExitCode::SUCCESS
        }
        Err(error) => refuse(error),
    }
}

fn is_relay_file(path: &std::path::Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .is_some_and(|table| table.contains_key("subscriptions"))
}

fn health(address: &str) -> ExitCode {
    use std::io::{Read, Write};
    let probe = || -> std::io::Result<bool> {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(address)?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut stream =
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(2)))?;
        write!(
            stream,
            "GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer.starts_with("HTTP/1.1 200"))
    };
    match probe() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("tim-kafka-bridge: {address} does not answer: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> ExitCode {
    init_logging(args.log_format);
    let mut settings = match Settings::read(args.config.as_deref()) {
        Ok(s) => s,
        Err(error) => return refuse(error),
    };
    settings.adopt_spool = args.adopt_spool;
    let dev_cluster = if args.dev {
        match dev::prepare(&mut settings) {
            Ok(cluster) => cluster,
            Err(error) => return refuse(error),
        }
    } else {
        None
    };
    let config = match Config::try_from(settings.clone()) {
        Ok(config) => config,
        Err(error) => return refuse(error),
    };
    for warning in settings.warnings() {
        tracing::warn!("{warning}");
    }
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(error) => return refuse(error),
    };
    tracing::info!(address = %app.local_addr(), callback_path = %settings.callback_path, "Listening for callbacks.");
    if let Some(admin) = app.admin_addr() {
        tracing::info!(address = %admin, "Serving /healthz, /readyz and /metrics here, not on the callback port.");
    }
    let tail = if args.dev {
        println!("{}", dev::instructions(&settings, app.local_addr().port()));
        dev::spawn_tail(&settings)
            .inspect_err(
                |error| tracing::warn!(error = %error, "Cannot print events as they land."),
            )
            .ok()
    } else {
        None
    };
    let report = app.run_until(crate::startup::shutdown_signal()).await;
    if let Some(tail) = tail {
        tail.abort();
        let _ = tail.await;
    }
    drop(dev_cluster);
    if report.unconfirmed.is_empty() && report.broken.is_none() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn refuse(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("tim-kafka-bridge: {error:#}");
    ExitCode::from(2)
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours for a terminal only: a log file or collector gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
