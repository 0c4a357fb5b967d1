//! A real Kafka-compatible broker for the Kafka tests: tansu, on a free
//! loopback port, one per test (so tests run in parallel with their own
//! topics), stopped when dropped. `scripts/test.sh` installs it; the tests
//! find it through `JIANCHA_TANSU`, the cache it installs to, or `PATH`.
use super::free_port;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tansu binary.
fn tansu() -> PathBuf {
    if let Some(p) = std::env::var_os("JIANCHA_TANSU") {
        return PathBuf::from(p);
    }
    let cached = Path::new(&std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
        .join(".cache/jiancha/tansu-0.6.0/bin/tansu");
    if cached.exists() {
        return cached;
    }
    PathBuf::from("tansu")
}

/// A running broker.
pub struct Broker {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    sqlite: bool,
}

impl Broker {
    /// A broker keeping its data in memory.
    pub fn start() -> Broker {
        Broker::launch(free_port(), tempfile::tempdir().unwrap(), false)
    }

    /// A broker keeping its data in SQLite under its own folder, so that it
    /// survives [`Broker::stop`] and [`Broker::restart`].
    pub fn start_durable() -> Broker {
        Broker::launch(free_port(), tempfile::tempdir().unwrap(), true)
    }

    fn launch(port: u16, dir: tempfile::TempDir, sqlite: bool) -> Broker {
        let mut b = Broker { port, child: None, dir, sqlite };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let storage = if self.sqlite { "sqlite://tansu.db".to_string() } else { "memory://tansu/".to_string() };
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("broker.log")).unwrap();
        let child = Command::new(tansu())
            .current_dir(self.dir.path())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", &storage])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start the test broker {} ({e}); run scripts/test.sh, which installs it",
                    tansu().display()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the test broker did not listen on {} within 30 s", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Creates a topic.
    pub fn topic(&self, name: &str, partitions: i32) {
        jiancha::kafka::client::ensure_topics(&self.addr(), &[(name, partitions)], &|| false).unwrap();
    }

    /// Publishes lines, keyed by their case id.
    pub fn publish(&self, topic: &str, lines: &[String]) {
        jiancha::kafka::publish::lines(&self.addr(), topic, 1, None, lines.iter().cloned()).unwrap();
    }

    /// Publishes one line to one partition.
    pub fn publish_to(&self, topic: &str, partition: i32, line: &str) {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let p: BaseProducer = jiancha::kafka::client::base(&self.addr()).create().unwrap();
        p.send(BaseRecord::<str, str>::to(topic).partition(partition).payload(line)).unwrap();
        p.flush(Duration::from_secs(30)).unwrap();
    }

    /// Every message of a topic, waiting until there are at least `min` (or
    /// `wait` has passed), in partition and offset order.
    pub fn read(&self, topic: &str, min: usize, wait: Duration) -> Vec<OwnedMessage> {
        let deadline = Instant::now() + wait;
        loop {
            let mut all = Vec::new();
            let _ =
                jiancha::kafka::client::read_after(&self.addr(), topic, &Default::default(), |m| all.push(m.clone()));
            if all.len() >= min || Instant::now() >= deadline {
                return all;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The offsets a consumer group has committed, by partition.
    pub fn committed(&self, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
        let c: BaseConsumer = jiancha::kafka::client::base(&self.addr()).set("group.id", group).create().unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        match c.committed_offsets(tpl, Duration::from_secs(10)) {
            Ok(t) => t
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => o,
                    _ => -1,
                })
                .collect(),
            Err(_) => vec![-1; partitions as usize],
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Payload of a message as text.
pub fn text(m: &OwnedMessage) -> String {
    String::from_utf8_lossy(m.payload().unwrap_or(b"")).to_string()
}
