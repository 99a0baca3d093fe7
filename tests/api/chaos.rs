//! Faults composed as they happen in operations, made for real against the bridge as a
//! process under load: kill -9 and SIGTERM restarts, brokers hung (SIGSTOP) and killed,
//! the spool's disk filled by another writer, out of inodes, turned read-only by a
//! disk error, a topic missing until an operator creates it. Every callback's answer
//! is kept; at the end every partition is read back and compared with them: answered,
//! in Kafka, lost, duplicated (and whether each copy is the same event), out of order
//! (a recall read before its send). `scripts/chaos.sh --random` runs a seeded random
//! schedule of these steps; the fixed schedules below are the findings of issue 39.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::broker::{Kafka, Layout};
use crate::helpers::*;

const BINARY: &str = env!("CARGO_BIN_EXE_tim-kafka-bridge");
const WITHDRAWN: &str = "C2C.CallbackAfterMsgWithDraw";
const LATE: &str = "Group.CallbackAfterGroupFull";

fn run(command: &mut Command) -> std::process::Output {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The spool's own filesystem: a tmpfs, or ext4 on a loop device (which a disk error
/// can turn read-only).
pub struct Disk {
    dir: PathBuf,
    image: Option<PathBuf>,
    device: Option<PathBuf>,
    fillers: Mutex<Vec<PathBuf>>,
    keepers: Mutex<Vec<(Arc<AtomicBool>, std::thread::JoinHandle<()>)>>,
}

impl Disk {
    /// A tmpfs of `size` (`64m`) with at most `inodes` files.
    pub fn tmpfs(size: &str, inodes: u32) -> Self {
        let dir = tempfile::tempdir().unwrap().keep();
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},nr_inodes={inodes}"))
            .arg("tmpfs")
            .arg(&dir));
        Self {
            dir,
            image: None,
            device: None,
            fillers: Mutex::default(),
            keepers: Mutex::default(),
        }
    }

    /// ext4 of `megabytes` with few inodes on a loop device, made read-only by its
    /// first error (`errors=remount-ro`).
    pub fn ext4(megabytes: u64) -> Self {
        let root = tempfile::tempdir().unwrap().keep();
        let image = root.join("disk.img");
        fs::File::create(&image)
            .unwrap()
            .set_len(megabytes << 20)
            .unwrap();
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0", "-N", "128"])
            .arg(&image));
        let dir = root.join("mnt");
        fs::create_dir(&dir).unwrap();
        let output = run(Command::new("losetup").args(["-f", "--show"]).arg(&image));
        let device = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        let disk = Self {
            dir,
            device: Some(device),
            image: Some(image),
            fillers: Mutex::default(),
            keepers: Mutex::default(),
        };
        disk.mount();
        disk
    }

    /// Mounts the loop device, attached once for the disk's life: a device attached
    /// anew at each mount (`-o loop`) can find the last one not yet let go, and the
    /// disk came back read-only.
    fn mount(&self) {
        run(Command::new("mount")
            .args(["-o", "errors=remount-ro"])
            .arg(self.device())
            .arg(&self.dir));
    }

    fn device(&self) -> &Path {
        self.device.as_deref().expect("an ext4 disk")
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn spool(&self) -> PathBuf {
        self.dir.join("spool")
    }

    /// Another writer takes every free block, and keeps taking every block freed,
    /// until `free`.
    pub fn fill(&self) {
        let path = self
            .dir
            .join(format!("filler-{}", self.fillers.lock().unwrap().len()));
        let Ok(mut file) = fs::File::create(&path) else {
            return;
        };
        let running = Arc::new(AtomicBool::new(true));
        let keeper = {
            let running = Arc::clone(&running);
            std::thread::spawn(move || {
                let chunk = vec![0xa5u8; 64 * 1024];
                let mut size = chunk.len();
                while running.load(Ordering::Relaxed) {
                    match file.write(&chunk[..size]) {
                        Ok(_) => size = chunk.len(),
                        Err(_) if size > 4096 => size = 4096,
                        Err(_) => {
                            let _ = file.sync_data();
                            std::thread::sleep(Duration::from_millis(2));
                        }
                    }
                }
            })
        };
        // Full before the next step.
        let deadline = Instant::now() + Duration::from_secs(30);
        while available_bytes(&self.dir) > 64 * 1024 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.keepers.lock().unwrap().push((running, keeper));
        self.fillers.lock().unwrap().push(path);
    }

    /// Another writer takes every free inode.
    pub fn exhaust_inodes(&self) {
        let dir = self
            .dir
            .join(format!("inodes-{}", self.fillers.lock().unwrap().len()));
        if fs::create_dir(&dir).is_err() {
            return;
        }
        let mut n = 0;
        while fs::File::create(dir.join(n.to_string())).is_ok() {
            n += 1;
        }
        self.fillers.lock().unwrap().push(dir);
    }

    /// What `fill` and `exhaust_inodes` took is given back.
    pub fn free(&self) {
        for (running, keeper) in self.keepers.lock().unwrap().drain(..) {
            running.store(false, Ordering::Relaxed);
            let _ = keeper.join();
        }
        for path in self.fillers.lock().unwrap().drain(..) {
            let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
        }
    }

    /// A disk error: ext4 turns itself read-only under the running bridge.
    pub fn fail_read_only(&self) {
        let image = self.image.as_ref().expect("an ext4 disk");
        let name = self.device().file_name().unwrap().to_owned();
        let trigger = Path::new("/sys/fs/ext4")
            .join(name)
            .join("trigger_fs_error");
        fs::write(&trigger, "1").unwrap_or_else(|e| panic!("{}: {e}", trigger.display()));
        assert!(image.exists());
    }

    /// What an operator does after a disk error, the bridge stopped: unmount, check,
    /// mount again.
    pub fn repair(&self) {
        // The other writer lets go of its file for the check, and goes on after it.
        let keepers: Vec<_> = self.keepers.lock().unwrap().drain(..).collect();
        let refill = !keepers.is_empty();
        for (running, keeper) in keepers {
            running.store(false, Ordering::Relaxed);
            let _ = keeper.join();
        }
        run(Command::new("umount").arg(&self.dir));
        let status = Command::new("e2fsck")
            .args(["-f", "-y"])
            .arg(self.device())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.code().is_some_and(|c| c <= 2), "e2fsck: {status}");
        self.mount();
        if refill {
            self.fill();
        }
    }
}

/// Bytes free for an unprivileged writer on the filesystem of `dir`.
fn available_bytes(dir: &Path) -> u64 {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path and a zeroed struct for statvfs to fill.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return 0;
    }
    stat.f_bavail as u64 * stat.f_frsize as u64
}

impl Drop for Disk {
    fn drop(&mut self) {
        self.free();
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        if let Some(device) = &self.device {
            let _ = Command::new("losetup").arg("-d").arg(device).status();
        }
    }
}

/// The bridge as its own process, restarted on the same spool as a supervisor would.
pub struct Bridge {
    child: Option<Child>,
    pub port: u16,
    config: PathBuf,
    log: PathBuf,
}

impl Bridge {
    pub fn new(disk: &Disk, brokers: &str, topics: &Topics, extra: &str) -> Self {
        let root = tempfile::tempdir().unwrap().keep();
        let port = free_port();
        let config = root.join("bridge.toml");
        fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\nspool_dir = \"{0}\"\n{extra}\n\
                 [[apps]]\nsdk_app_id = {SIGNED_APP}\ntokens = [\"{TOKEN}\"]\n\
                 [kafka]\nbrokers = \"{brokers}\"\ntopic = \"{1}\"\nother_topic = \"{2}\"\n\
                 group_topic = \"{1}\"\nuser_topic = \"{1}\"\ngroup_events_topic = \"{1}\"\n\
                 create_topics = false\nretry_max_delay_ms = 1000\nreadiness_interval_ms = 500\n",
                disk.spool().display(),
                topics.main,
                topics.late,
            ),
        )
        .unwrap();
        Self {
            child: None,
            port,
            config,
            log: root.join("bridge.log"),
        }
    }

    /// Starts it, and starts it again until it listens (a supervisor's restarts).
    pub fn start(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .unwrap();
            let mut command = Command::new(BINARY);
            for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("TIM_BRIDGE_")) {
                command.env_remove(name);
            }
            let mut child = command
                .args(["serve", "--config"])
                .arg(&self.config)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            loop {
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    self.child = Some(child);
                    return;
                }
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the bridge did not listen within 60 s; {}",
                    self.log.display()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                Instant::now() < deadline,
                "the bridge kept exiting at start; {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(40);
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Everything it logged, over every start.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill_9();
    }
}

pub struct Topics {
    pub main: String,
    /// Missing until a step (or the end) creates it.
    pub late: String,
}

/// One callback answered 200: its key and what it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Sent,
    Withdrawn,
    Late,
}

impl Kind {
    fn event_type(self) -> &'static str {
        match self {
            Kind::Sent => "tim.c2c.message.sent",
            Kind::Withdrawn => "tim.c2c.message.withdrawn",
            Kind::Late => "tim.callback",
        }
    }
}

/// Clients sending each message, then its recall (and now and then a callback for the
/// late topic), each answer recorded; a callback not answered 200 is not sent again.
pub struct Load {
    running: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub acked: Arc<Mutex<Vec<(String, Kind)>>>,
    pub refused: Arc<AtomicUsize>,
}

impl Load {
    pub fn start(port: u16, clients: usize, pause: Duration, run: &str) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let tasks = (0..clients)
            .map(|c| {
                let (running, acked, refused, client) = (
                    Arc::clone(&running),
                    Arc::clone(&acked),
                    Arc::clone(&refused),
                    client.clone(),
                );
                let run = run.to_owned();
                tokio::spawn(async move {
                    let mut n = 0u64;
                    while running.load(Ordering::Relaxed) {
                        let key = format!("{run}-{c}-{n}");
                        n += 1;
                        let mut calls = vec![
                            (SENT, text_message(&key, "故障测试"), Kind::Sent),
                            (WITHDRAWN, withdrawn_message(&key), Kind::Withdrawn),
                        ];
                        if n.is_multiple_of(8) {
                            let body = format!(
                                r#"{{"CallbackCommand":"{LATE}","GroupId":"g","MsgKey":"{key}"}}"#
                            );
                            calls.push((LATE, body, Kind::Late));
                        }
                        for (command, body, kind) in calls {
                            let request = Request::post(format!(
                                "http://127.0.0.1:{port}/callback?{}",
                                signed_query(command)
                            ))
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap();
                            let answer = tokio::time::timeout(
                                Duration::from_secs(10),
                                client.request(request),
                            )
                            .await;
                            match answer {
                                Ok(Ok(r)) if r.status() == 200 => {
                                    acked.lock().unwrap().push((key.clone(), kind));
                                }
                                _ => {
                                    refused.fetch_add(1, Ordering::Relaxed);
                                    // A send not taken is not recalled.
                                    break;
                                }
                            }
                        }
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Self {
            running,
            tasks,
            acked,
            refused,
        }
    }

    pub async fn stop(self) -> (Vec<(String, Kind)>, usize) {
        self.running.store(false, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let acked = std::mem::take(&mut *self.acked.lock().unwrap());
        (acked, self.refused.load(Ordering::Relaxed))
    }
}

pub async fn create_topic_replicated(brokers: &str, name: &str, replicas: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let min_insync = if replicas >= 3 { "2" } else { "1" };
    let topic = NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(replicas))
        .set("min.insync.replicas", min_insync);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let result = admin
            .create_topics([&topic], &AdminOptions::new())
            .await
            .map(|r| r.into_iter().next().unwrap());
        match result {
            Ok(Ok(_)) => return,
            Ok(Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))) => return,
            other if Instant::now() > deadline => panic!("cannot create {name}: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// What a run ends with.
#[derive(Debug, Default)]
pub struct Outcome {
    pub answered: usize,
    pub in_kafka: usize,
    pub lost: usize,
    pub duplicated: usize,
    /// Copies of one answered callback that are not the same event (another `id`).
    pub unexplained_copies: usize,
    pub out_of_order: usize,
    pub refused: usize,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "answered={} in_kafka={} lost={} duplicated={} unexplained_copies={} out_of_order={} not_answered_200={}",
            self.answered,
            self.in_kafka,
            self.lost,
            self.duplicated,
            self.unexplained_copies,
            self.out_of_order,
            self.refused
        )
    }
}

/// Reads both topics back once Kafka holds everything answered 200, and compares.
pub async fn read_back(brokers: &str, topics: &Topics, acked: &[(String, Kind)]) -> Outcome {
    let mut records = Vec::new();
    for (topic, late) in [(&topics.main, false), (&topics.late, true)] {
        let expected: HashSet<&(String, Kind)> = acked
            .iter()
            .filter(|(_, k)| (*k == Kind::Late) == late)
            .collect();
        let count = settle(brokers, topic, expected.len()).await;
        // A long run's topic holds millions: a minute, and a second per 10,000 more.
        let within = Duration::from_secs(60 + count as u64 / 10_000);
        let read = read_records_until(brokers, topic, within, move |r| r.len() >= count).await;
        assert_eq!(
            read.len(),
            count,
            "read {} of {count} records of {topic}",
            read.len()
        );
        records.extend(read);
    }
    compare(acked, &records)
}

/// How many records `topic` holds once it holds `expected` and stops growing, or
/// once it has not grown for 30 s (what is missing is then counted as lost).
async fn settle(brokers: &str, topic: &str, expected: usize) -> usize {
    let (mut last, mut since) = (-1, Instant::now());
    loop {
        let now = record_count_on(brokers, topic).await;
        if now != last {
            (last, since) = (now, Instant::now());
        } else if now >= expected as i64 || since.elapsed() > Duration::from_secs(30) {
            return now as usize;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

pub fn compare(acked: &[(String, Kind)], records: &[Record]) -> Outcome {
    // (key, type) -> every (partition, offset, id) read.
    type Copies<'a> = Vec<(i32, i64, &'a str)>;
    let mut read: HashMap<(&str, &str), Copies> = HashMap::new();
    for r in records {
        read.entry((
            r.key.as_deref().unwrap_or(""),
            r.value["type"].as_str().unwrap_or(""),
        ))
        .or_default()
        .push((r.partition, r.offset, r.value["id"].as_str().unwrap_or("")));
    }
    let mut outcome = Outcome {
        answered: acked.len(),
        ..Outcome::default()
    };
    let kinds: HashMap<&str, HashSet<Kind>> =
        acked.iter().fold(HashMap::new(), |mut m, (key, kind)| {
            m.entry(key.as_str()).or_default().insert(*kind);
            m
        });
    for (key, kind) in acked {
        match read.get(&(key.as_str(), kind.event_type())) {
            None => outcome.lost += 1,
            Some(copies) => {
                outcome.in_kafka += 1;
                outcome.duplicated += copies.len() - 1;
                let ids: HashSet<&str> = copies.iter().map(|c| c.2).collect();
                outcome.unexplained_copies += ids.len() - 1;
            }
        }
    }
    for (key, kinds) in &kinds {
        if !(kinds.contains(&Kind::Sent) && kinds.contains(&Kind::Withdrawn)) {
            continue;
        }
        let first = |kind: Kind| {
            read.get(&(*key, kind.event_type()))
                .and_then(|c| c.iter().map(|c| (c.0, c.1)).min_by_key(|c| c.1))
        };
        if let (Some(sent), Some(recall)) = (first(Kind::Sent), first(Kind::Withdrawn)) {
            if sent.0 != recall.0 || recall.1 < sent.1 {
                outcome.out_of_order += 1;
            }
        }
    }
    outcome
}

/// One step of a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Load goes on this many seconds.
    Load(u64),
    Kill9,
    Terminate,
    Start,
    /// Every broker node (0) or one (1..=3) hung with SIGSTOP, or woken with SIGCONT.
    Hang(usize),
    Wake(usize),
    KillBroker(usize),
    StartBroker(usize),
    FillDisk,
    ExhaustInodes,
    FreeDisk,
    /// ext4 turned read-only by an error; `Repair` stops the bridge, checks, remounts.
    ReadOnly,
    Repair,
    CreateLateTopic,
}

/// Everything a run needs, and what state its faults left.
pub struct Rig {
    pub kafka: Kafka,
    pub disk: Disk,
    pub bridge: Bridge,
    pub topics: Topics,
    pub brokers: String,
    replicas: i32,
    late_created: bool,
    hung: HashSet<usize>,
    read_only: bool,
}

impl Rig {
    pub async fn new(nodes: usize, disk: Disk, bridge_settings: &str) -> Self {
        let kafka = tokio::task::block_in_place(|| {
            Kafka::start(Layout {
                nodes,
                ..Layout::default()
            })
        });
        let brokers = kafka.bootstrap();
        let topics = Topics {
            main: unique_topic("tim.chaos"),
            late: unique_topic("tim.chaos.late"),
        };
        let replicas = nodes.min(3) as i32;
        create_topic_replicated(&brokers, &topics.main, replicas).await;
        let mut bridge = Bridge::new(&disk, &brokers, &topics, bridge_settings);
        tokio::task::block_in_place(|| bridge.start());
        Self {
            kafka,
            disk,
            bridge,
            topics,
            brokers,
            replicas,
            late_created: false,
            hung: HashSet::new(),
            read_only: false,
        }
    }

    fn nodes_of(&self, which: usize) -> Vec<usize> {
        match which {
            0 => (1..=self.kafka.nodes()).collect(),
            n => vec![n],
        }
    }

    pub async fn step(&mut self, step: Step) {
        let at = chrono_now();
        println!("chaos-step: {at} {step:?}");
        match step {
            Step::Load(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            Step::Kill9 => self.bridge.kill_9(),
            Step::Terminate => tokio::task::block_in_place(|| self.bridge.terminate()),
            Step::Start => {
                if !self.bridge.is_running() {
                    tokio::task::block_in_place(|| self.bridge.start());
                }
            }
            Step::Hang(which) => {
                for node in self.nodes_of(which) {
                    self.kafka.pause_node(node, true);
                    self.hung.insert(node);
                }
            }
            Step::Wake(which) => {
                for node in self.nodes_of(which) {
                    self.kafka.pause_node(node, false);
                    self.hung.remove(&node);
                }
            }
            Step::KillBroker(which) => {
                for node in self.nodes_of(which) {
                    self.kafka.kill_node(node);
                    self.hung.remove(&node);
                }
            }
            Step::StartBroker(which) => {
                for node in self.nodes_of(which) {
                    if !self.kafka.is_running(node) {
                        self.kafka.start_node(node);
                    }
                }
            }
            Step::FillDisk => tokio::task::block_in_place(|| self.disk.fill()),
            Step::ExhaustInodes => tokio::task::block_in_place(|| self.disk.exhaust_inodes()),
            Step::FreeDisk => tokio::task::block_in_place(|| self.disk.free()),
            Step::ReadOnly => {
                tokio::task::block_in_place(|| self.disk.fail_read_only());
                self.read_only = true;
            }
            Step::Repair => {
                tokio::task::block_in_place(|| {
                    self.bridge.kill_9();
                    self.disk.repair();
                    self.bridge.start();
                });
                self.read_only = false;
            }
            Step::CreateLateTopic => {
                let all_up = (1..=self.kafka.nodes()).all(|n| self.kafka.is_running(n));
                if !self.late_created && self.hung.is_empty() && all_up {
                    create_topic_replicated(&self.brokers, &self.topics.late, self.replicas).await;
                    self.late_created = true;
                }
            }
        }
    }

    /// Every fault undone, the bridge running and the late topic made.
    pub async fn heal(&mut self) {
        if self.read_only {
            self.step(Step::Repair).await;
        }
        self.step(Step::Wake(0)).await;
        self.step(Step::FreeDisk).await;
        for node in 1..=self.kafka.nodes() {
            if !self.kafka.is_running(node) {
                self.kafka.start_node(node);
            }
        }
        tokio::task::block_in_place(|| self.kafka.wait_ready());
        self.step(Step::CreateLateTopic).await;
        self.step(Step::Start).await;
    }
}

fn chrono_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}

/// Runs `steps` under load, heals, lets the bridge drain, reads everything back.
pub async fn run_schedule(rig: &mut Rig, steps: &[Step], clients: usize, pause_ms: u64) -> Outcome {
    let run = unique_topic("k");
    let load = Load::start(
        rig.bridge.port,
        clients,
        Duration::from_millis(pause_ms),
        &run,
    );
    for step in steps {
        rig.step(*step).await;
    }
    let (acked, refused) = load.stop().await;
    rig.heal().await;
    let mut outcome = read_back(&rig.brokers, &rig.topics, &acked).await;
    outcome.refused = refused;
    outcome
}

/// A seeded random schedule of about `minutes`: each fault is undone later in the
/// schedule (or by the heal at its end); a read-only disk only with `ext4`, and while
/// it lasts the bridge is not started again but for the repair (a supervisor's
/// restarts would fail until then).
pub fn random_schedule(seed: u64, minutes: u64, nodes: usize, ext4: bool) -> Vec<Step> {
    let mut rng = SplitMix(seed);
    let mut steps = Vec::new();
    let mut elapsed = 0;
    let (mut hung, mut killed) = (None::<usize>, None::<usize>);
    let (mut disk_taken, mut read_only, mut bridge_down) = (false, false, false);
    let late_at = rng.below(minutes * 30) + 10;
    let mut late_done = false;
    while elapsed < minutes * 60 {
        let load = 2 + rng.below(7);
        steps.push(Step::Load(load));
        elapsed += load;
        if !late_done && elapsed >= late_at && hung.is_none() && killed.is_none() {
            steps.push(Step::CreateLateTopic);
            late_done = true;
        }
        let node = if nodes > 1 {
            1 + rng.below(nodes as u64) as usize
        } else {
            0
        };
        let step = match rng.below(12) {
            0 | 1 if !bridge_down => {
                bridge_down = true;
                Step::Kill9
            }
            2 if !bridge_down => {
                bridge_down = true;
                Step::Terminate
            }
            0..=2 if bridge_down && !read_only => {
                bridge_down = false;
                Step::Start
            }
            3 if hung.is_none() && killed.is_none() => {
                hung = Some(node);
                Step::Hang(node)
            }
            3 | 4 if hung.is_some() => Step::Wake(hung.take().unwrap()),
            5 if killed.is_none() && hung.is_none() => {
                killed = Some(node);
                Step::KillBroker(node)
            }
            5 | 6 if killed.is_some() => Step::StartBroker(killed.take().unwrap()),
            7 if !disk_taken && !read_only => {
                disk_taken = true;
                Step::FillDisk
            }
            8 if !disk_taken && !read_only => {
                disk_taken = true;
                Step::ExhaustInodes
            }
            7..=9 if disk_taken && !read_only => {
                disk_taken = false;
                Step::FreeDisk
            }
            10 if ext4 && !read_only && !bridge_down => {
                read_only = true;
                Step::ReadOnly
            }
            10 | 11 if read_only => {
                read_only = false;
                bridge_down = false;
                Step::Repair
            }
            _ => Step::Load(1),
        };
        steps.push(step);
        // Most restarts come soon, as a supervisor's would.
        if bridge_down && !read_only && rng.below(3) > 0 {
            steps.push(Step::Load(rng.below(3)));
            steps.push(Step::Start);
            bridge_down = false;
        }
    }
    steps
}

/// A small, reproducible generator (SplitMix64): a seed gives the same schedule.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn assert_kept_its_promise(scenario: &str, outcome: &Outcome) {
    println!("chaos: scenario={scenario} {outcome}");
    assert!(outcome.answered > 0, "{scenario}: nothing was answered 200");
    assert_eq!(outcome.lost, 0, "{scenario}: callbacks answered 200 lost");
    assert_eq!(
        outcome.out_of_order, 0,
        "{scenario}: recalls before their sends"
    );
    assert_eq!(
        outcome.unexplained_copies, 0,
        "{scenario}: copies that are not the same event"
    );
}

/// `scripts/chaos.sh --random --minutes N --seed S [--nodes 3]`; in CI a short fixed seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_schedule_of_composed_faults_loses_nothing_and_keeps_each_key_in_order() {
    let nodes = setting("TIM_BRIDGE_CHAOS_NODES", 1) as usize;
    random_run(setting("TIM_BRIDGE_CHAOS_SEED", 39), nodes).await;
}

/// The same on a three-node cluster (replication factor 3, `min.insync.replicas=2`),
/// where one node at a time is hung or killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_schedule_on_three_nodes_loses_nothing_and_keeps_each_key_in_order() {
    random_run(setting("TIM_BRIDGE_CHAOS_SEED", 39) + 1, 3).await;
}

async fn random_run(seed: u64, nodes: usize) {
    let minutes = setting("TIM_BRIDGE_CHAOS_MINUTES", 2);
    let steps = random_schedule(seed, minutes, nodes, true);
    println!("chaos-schedule: seed={seed} minutes={minutes} nodes={nodes} {steps:?}");
    let mut rig = Rig::new(nodes, Disk::ext4(256), "spool_max_bytes = 134217728").await;
    let outcome = run_schedule(&mut rig, &steps, 16, 5).await;
    assert_kept_its_promise(&format!("random seed={seed} nodes={nodes}"), &outcome);
}
