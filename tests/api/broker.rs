//! The real Kafka-protocol broker the tests talk to: `TIM_BRIDGE_TEST_BROKERS` when it
//! names one, otherwise a tansu broker started once per test binary on a free port,
//! with sqlite storage in a temporary directory. No broker, no pass: it never skips.

use std::fs::OpenOptions;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static BROKERS: OnceLock<String> = OnceLock::new();

pub fn brokers() -> &'static str {
    BROKERS.get_or_init(|| match std::env::var("TIM_BRIDGE_TEST_BROKERS") {
        Ok(b) if !b.trim().is_empty() => b,
        _ => start_tansu(),
    })
}

fn tansu_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("TANSU_BIN") {
        return bin.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file());
    let in_cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map(|home| home.join("bin/tansu"))
        .filter(|p| p.is_file());
    on_path.or(in_cargo_home).unwrap_or_else(|| {
        panic!(
            "no tansu broker: install it with `cargo install tansu --version 0.6.0 --locked \
             --features dynostore,libsql` (scripts/test does), or set TIM_BRIDGE_TEST_BROKERS"
        )
    })
}

fn start_tansu() -> String {
    // The broker dies with the thread that started it, so that thread lives as long as the tests.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let broker = Tansu::start_new();
        tx.send(broker.address()).ok();
        let _keep = broker;
        loop {
            std::thread::park();
        }
    });
    rx.recv().expect("the broker thread answers")
}

/// A tansu broker a test can stop and start again on the same storage and port.
pub struct Tansu {
    port: u16,
    /// The port clients are told to use: another than `port` behind a proxy.
    advertised_port: u16,
    authentication: bool,
    dir: PathBuf,
    child: Option<Child>,
}

impl Tansu {
    pub fn start_new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("tim-bridge-tansu-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut broker = Tansu {
            port,
            advertised_port: port,
            authentication: false,
            dir,
            child: None,
        };
        broker.start();
        broker
    }

    /// A broker that tells clients to connect to `advertised_port` (a TLS proxy in
    /// front of it) and, with `users`, requires SASL: each user gets SCRAM-SHA-256 and
    /// -512 credentials, made before authentication is switched on (tansu asks for it
    /// even to create users).
    pub fn start_behind(advertised_port: u16, users: &[(&str, &str)]) -> Self {
        let mut broker = Self::start_new();
        for (user, password) in users {
            for mechanism in ["scram256", "scram512"] {
                let url = format!("tcp://{}", broker.address());
                let status = Command::new(tansu_binary())
                    .args(["user", "create", "--broker", &url, user, password])
                    .args(["--mechanism", mechanism])
                    .stdout(Stdio::null())
                    .status()
                    .expect("tansu user create runs");
                assert!(status.success(), "tansu could not create user {user}");
            }
        }
        broker.stop();
        broker.advertised_port = advertised_port;
        broker.authentication = !users.is_empty();
        broker.start();
        broker
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        let bin = tansu_binary();
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = format!("tcp://127.0.0.1:{}", self.advertised_port);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("tansu.log"))
            .expect("a broker log file");
        let mut command = Command::new(&bin);
        command
            .current_dir(&self.dir)
            .args(["broker", "--storage-engine", "sqlite://tansu.db"])
            .args([
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
            ])
            .args(self.authentication.then_some("--authentication"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        kill_with_parent(&mut command);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("tansu.log")).unwrap_or_default();
                panic!(
                    "tansu did not listen on port {} within 60 s; its log:\n{log}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        index_headers(&self.dir.join("tansu.db"));
    }

    /// Kills the broker, as a crash or a network cut would look to its clients.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}

/// tansu's sqlite schema has no index on `header(topition, offset_id)`: reading back
/// records with headers is quadratic without it.
fn index_headers(db: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let result = rusqlite::Connection::open(db).and_then(|c| {
            c.busy_timeout(Duration::from_secs(5))?;
            c.execute_batch(
                "CREATE INDEX IF NOT EXISTS header_topition_offset ON header(topition, offset_id)",
            )
        });
        match result {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("cannot index tansu's header table: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[cfg(target_os = "linux")]
fn kill_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches nothing of the parent's.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn kill_with_parent(_: &mut Command) {}
