//! The real broker the tests talk to: Apache Kafka in KRaft mode, run by
//! `scripts/kafka` from Maven Central's jars. `TIM_BRIDGE_TEST_BROKERS` names a running
//! broker instead; otherwise one node is started once per test binary, and the
//! cluster, security and refusal tests start their own. No broker, no pass: a
//! broker that does not come up fails the test, it never skips.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

static BROKERS: OnceLock<String> = OnceLock::new();

/// The shared single node's bootstrap address.
pub fn brokers() -> &'static str {
    BROKERS.get_or_init(|| match std::env::var("TIM_BRIDGE_TEST_BROKERS") {
        Ok(b) if !b.trim().is_empty() => b,
        _ => {
            let kafka = Kafka::start(Layout::default());
            let bootstrap = kafka.bootstrap();
            // Lives as long as the test binary; its nodes die with it.
            std::mem::forget(kafka);
            bootstrap
        }
    })
}

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka")
}

/// What `scripts/kafka init` is asked for.
#[derive(Clone, Default)]
pub struct Layout {
    pub nodes: usize,
    /// A directory with `broker-keystore.pem`, `ca.pem` and `users` (one "name password"
    /// per line): SASL_SSL (SCRAM-SHA-256 and -512) and SSL with client certificates
    /// required, the StandardAuthorizer, no ACL meaning no access.
    pub secure: Option<PathBuf>,
    /// Topics created on first use; off by default, as on production clusters.
    pub auto_create: bool,
}

/// A Kafka node or cluster on loopback that a test can stop, kill and start again on
/// the same storage and ports.
pub struct Kafka {
    dir: PathBuf,
    nodes: usize,
    port_base: u16,
    children: Vec<Option<Child>>,
}

/// The offset of each listener's port from a node's base port, as `scripts/kafka` lays them out.
pub enum Listener {
    Plaintext = 0,
    SaslSsl = 2,
    Ssl = 3,
}

impl Kafka {
    pub fn start(layout: Layout) -> Self {
        let nodes = layout.nodes.max(1);
        let dir = tempfile::Builder::new()
            .prefix("tim-bridge-kafka-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        let port_base = free_port_range(nodes as u16 * 10);
        let mut init = Command::new(script());
        init.arg("init")
            .arg(&dir)
            .args(["--nodes", &nodes.to_string()])
            .args(["--port-base", &port_base.to_string()]);
        if let Some(pki) = &layout.secure {
            init.arg("--secure").arg(pki);
        }
        if layout.auto_create {
            init.arg("--auto-create");
        }
        run(&mut init, "scripts/kafka init");
        let mut kafka = Kafka {
            dir,
            nodes,
            port_base,
            children: (0..nodes).map(|_| None).collect(),
        };
        for node in 1..=nodes {
            kafka.start_node(node);
        }
        kafka.wait_ready();
        kafka
    }

    pub fn bootstrap(&self) -> String {
        self.bootstrap_on(Listener::Plaintext)
    }

    pub fn bootstrap_on(&self, listener: Listener) -> String {
        let offset = listener as u16;
        (1..=self.nodes)
            .map(|n| format!("127.0.0.1:{}", self.port(n, offset)))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn port(&self, node: usize, offset: u16) -> u16 {
        self.port_base + 10 * (node as u16 - 1) + offset
    }

    /// Starts node `node` (1-based) again; returns at once (see [`Kafka::wait_ready`]).
    pub fn start_node(&mut self, node: usize) {
        assert!(self.children[node - 1].is_none(), "node {node} runs");
        let mut command = Command::new(script());
        command
            .arg("node")
            .arg(&self.dir)
            .arg(node.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        self.children[node - 1] = Some(spawn_tied_to_tests(command));
    }

    /// SIGKILL, as a crash looks to its clients.
    pub fn kill_node(&mut self, node: usize) {
        if let Some(mut child) = self.children[node - 1].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, as a rolling restart stops a node.
    pub fn stop_node(&mut self, node: usize) {
        if let Some(mut child) = self.children[node - 1].take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// SIGSTOP (`pause = true`) or SIGCONT to node `node`: a broker hung, not gone.
    pub fn pause_node(&self, node: usize, pause: bool) {
        if let Some(child) = &self.children[node - 1] {
            let signal = if pause { libc::SIGSTOP } else { libc::SIGCONT };
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }

    pub fn pause(&self, pause: bool) {
        for node in 1..=self.nodes {
            self.pause_node(node, pause);
        }
    }

    pub fn nodes(&self) -> usize {
        self.nodes
    }

    pub fn is_running(&self, node: usize) -> bool {
        self.children[node - 1].is_some()
    }

    pub fn kill(&mut self) {
        for node in 1..=self.nodes {
            self.kill_node(node);
        }
    }

    pub fn restart(&mut self) {
        for node in 1..=self.nodes {
            if self.children[node - 1].is_none() {
                self.start_node(node);
            }
        }
        self.wait_ready();
    }

    /// Until every broker is registered and unfenced and a probe record is written
    /// with acks=all (`scripts/kafka wait`).
    pub fn wait_ready(&self) {
        let started = Instant::now();
        let mut wait = Command::new(script());
        wait.arg("wait").arg(&self.dir);
        run(&mut wait, "scripts/kafka wait");
        eprintln!(
            "kafka: {} node(s) in {} ready in {:.1} s",
            self.nodes,
            self.dir.display(),
            started.elapsed().as_secs_f64()
        );
    }

    /// A Kafka tool (`acls`, `console-consumer`, `topics` or a class name) with its arguments;
    /// its standard output.
    pub fn tool(&self, class: &str, args: &[&str]) -> String {
        Self::tool_on_path(class, args)
    }

    /// [`Kafka::tool`] against any broker (the shared one has no `Kafka` handle).
    pub fn tool_on_path(class: &str, args: &[&str]) -> String {
        let mut command = Command::new(script());
        command.arg("tool").arg(class).args(args);
        run(&mut command, class)
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        self.kill();
    }
}

fn run(command: &mut Command, what: &str) -> String {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `len` consecutive free ports. Test threads start brokers at once, so each call
/// searches its own stretch. Below Linux's ephemeral range (32768-60999): a port
/// there can be taken as the source port of any outgoing connection while its broker
/// is stopped, and the restart then fails to bind (it happened in CI).
fn free_port_range(len: u16) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let spread = (std::process::id() % 200) as u16 * 100;
    for _ in 0..200 {
        let step = NEXT.fetch_add(1, Ordering::Relaxed) % 200;
        let base = 10_000 + (spread + step * 100) % 22_000;
        if (base..base + len).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!("no {len} consecutive free ports on loopback");
}

/// Spawns from one thread that lives as long as the test binary: a node's parent-death
/// signal (SIGKILL) fires when the thread that spawned it ends, and test threads end
/// before the binary does.
fn spawn_tied_to_tests(command: Command) -> Child {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::spawn(move || {
            for (mut command, answer) in rx {
                kill_with_parent(&mut command);
                answer.send(command.spawn()).ok();
            }
            loop {
                std::thread::park();
            }
        });
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, tx))
        .expect("the spawner thread lives");
    rx.recv()
        .expect("the spawner answers")
        .unwrap_or_else(|e| panic!("cannot start a Kafka node with {}: {e}", script().display()))
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
