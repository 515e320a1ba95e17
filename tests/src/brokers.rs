//! A private Kafka cluster for fault tests: one or three real brokers (KRaft), started with the
//! project's own `scripts/kafka.sh` on ports of their own and a data directory of their own, so a
//! test can stop, kill, freeze and restart them without touching the shared test broker.
//!
//! Brokers are numbered from 1, as `scripts/kafka.sh stop N` numbers them; their node ids are the
//! same numbers.
//!
//! [`Brokers::secured`] is one broker that also has a SASL_SSL listener (SCRAM-SHA-512) and an
//! SSL listener requiring client certificates, with ACLs enforced (`FRESHET_KAFKA_SECURED=1`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// Ports each broker takes: clients, KRaft controller, and one `kafka.sh` keeps for pods.
const PORTS_PER_BROKER: u16 = 3;
/// A secured broker's two more: SASL_SSL, then SSL.
const SECURED_PORTS: u16 = 2;

/// A cluster of `count` brokers, killed when dropped (its data directory removed).
pub struct Brokers {
    /// How many brokers.
    pub count: usize,
    /// The first broker's client port; broker N's is `base + 3*(N-1)`.
    base: u16,
    /// `FRESHET_RUN_DIR` for the script: configs, data, logs and pid files.
    dir: tempfile::TempDir,
    /// Whether the secured listeners are open (`FRESHET_KAFKA_SECURED=1`).
    secured: bool,
}

impl Brokers {
    /// A cluster of `count` brokers on free ports, not started yet (see [`Brokers::up`]).
    pub fn new(count: usize) -> Brokers {
        assert!(
            (1..=9).contains(&count),
            "a cluster of 1 to 9 brokers, not {count}"
        );
        Brokers {
            count,
            base: free_port_block(count as u16 * PORTS_PER_BROKER),
            dir: tempfile::Builder::new()
                .prefix("freshet-brokers-")
                .tempdir()
                .expect("a directory for the brokers"),
            secured: false,
        }
    }

    /// One broker with the secured listeners too, started and answering: SASL_SSL with the
    /// SCRAM-SHA-512 users `admin` (a super user) and `app`, and SSL requiring a client
    /// certificate (`User:app-tls`), both under the StandardAuthorizer. Certificates and
    /// passwords are made on the first start, in [`Brokers::secrets`].
    pub fn secured() -> Brokers {
        let brokers = Brokers {
            count: 1,
            base: free_port_block(PORTS_PER_BROKER + SECURED_PORTS),
            dir: tempfile::Builder::new()
                .prefix("freshet-secured-")
                .tempdir()
                .expect("a directory for the broker"),
            secured: true,
        };
        brokers.up();
        brokers
    }

    /// The SASL_SSL listener's address (SCRAM-SHA-512; the CA is `secrets()/ca.crt`).
    pub fn sasl_ssl_bootstrap(&self) -> String {
        assert!(self.secured, "not a secured broker");
        format!("127.0.0.1:{}", self.base + PORTS_PER_BROKER)
    }

    /// The SSL listener's address (mutual TLS: `secrets()/app-tls.crt` and `app-tls.key`).
    pub fn ssl_bootstrap(&self) -> String {
        assert!(self.secured, "not a secured broker");
        format!("127.0.0.1:{}", self.base + PORTS_PER_BROKER + 1)
    }

    /// The secured broker's certificates, keys and SCRAM passwords (`<user>.password`).
    pub fn secrets(&self) -> PathBuf {
        self.dir.path().join("kafka/secured")
    }

    /// Sets the SCRAM-SHA-512 password of `user` on the broker (a rotation), through the super
    /// user's PLAINTEXT listener (`kafka-configs --alter --add-config`).
    pub fn set_scram_password(&self, user: &str, password: &str) {
        self.script(&[
            "tool",
            "org.apache.kafka.tools.ConfigCommand",
            "--bootstrap-server",
            &self.bootstrap(),
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            user,
            "--add-config",
            &format!("SCRAM-SHA-512=[iterations=4096,password={password}]"),
        ]);
    }

    /// The SCRAM password of `user` (`admin` or `app`) as the broker was first started with.
    pub fn password(&self, user: &str) -> String {
        let path = self.secrets().join(format!("{user}.password"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    /// A cluster of `count` brokers, started and answering.
    pub fn start(count: usize) -> Brokers {
        let brokers = Brokers::new(count);
        brokers.up();
        brokers
    }

    /// Every broker's client address, comma-separated: a client's `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        (1..=self.count)
            .map(|n| format!("127.0.0.1:{}", self.port(n)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Broker `n`'s client port.
    pub fn port(&self, n: usize) -> u16 {
        self.base + (n as u16 - 1) * PORTS_PER_BROKER
    }

    /// `make kafka-up`: starts every broker (keeping the data of an earlier `down`) and waits
    /// until they answer.
    pub fn up(&self) {
        self.script(&["up"]);
    }

    /// `make kafka-down`: stops every broker (SIGTERM, then SIGKILL after 20 s); data is kept.
    pub fn down(&self) {
        self.script(&["down"]);
    }

    /// Stops broker `n` with SIGTERM (a clean shutdown) and waits until it is gone.
    pub fn stop(&self, n: usize) {
        self.script(&["stop", &n.to_string()]);
    }

    /// Kills broker `n` with SIGKILL (a crash).
    pub fn kill(&self, n: usize) {
        self.script(&["kill", &n.to_string()]);
    }

    /// Freezes broker `n` with SIGSTOP: its connections stay open but nothing answers, as in a
    /// network partition.
    pub fn freeze(&self, n: usize) {
        self.script(&["freeze", &n.to_string()]);
    }

    /// Thaws a frozen broker `n` (SIGCONT).
    pub fn thaw(&self, n: usize) {
        self.script(&["thaw", &n.to_string()]);
    }

    /// Starts broker `n` again after [`Brokers::stop`] or [`Brokers::kill`].
    pub fn restart(&self, n: usize) {
        self.script(&["start", &n.to_string()]);
    }

    /// The node id leading `topic`'s `partition`, from the metadata of any broker that
    /// answers; `None` while it has no leader.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("metadata client");
        let metadata = client
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .ok()?;
        let t = metadata.topics().first()?;
        let p = t.partitions().iter().find(|p| p.id() == partition)?;
        (p.leader() >= 0).then_some(p.leader())
    }

    /// Creates topics (name, partitions), replicated on every broker, and waits for their
    /// leaders.
    pub fn create_topics(&self, topics: &[(&str, i32)]) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("admin client");
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(self.count as i32)))
            .collect();
        let results = runtime
            .block_on(admin.create_topics(
                &new,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            ))
            .expect("create_topics");
        for r in results {
            r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for (topic, partitions) in topics {
            while (0..*partitions).any(|p| self.leader(topic, p).is_none()) {
                assert!(
                    Instant::now() < deadline,
                    "topic {topic} has no leaders after 30 s"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// Broker `n`'s log, for a failing test's message.
    pub fn log_path(&self, n: usize) -> PathBuf {
        if self.count == 1 {
            self.dir.path().join("kafka/server.log")
        } else {
            self.dir
                .path()
                .join(format!("kafka-{}/node-{n}/server.log", self.count))
        }
    }

    /// `scripts/kafka.sh ARGS` for this cluster: its run directory, ports and broker count.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(crate::repo_root().join("scripts/kafka.sh"));
        cmd.args(args)
            .env("FRESHET_RUN_DIR", self.dir.path())
            .env("FRESHET_KAFKA_PORT", self.base.to_string())
            .env("FRESHET_KAFKA_BROKERS", self.count.to_string())
            .env(
                "FRESHET_KAFKA_SECURED",
                if self.secured { "1" } else { "0" },
            )
            // Three brokers and the engines under test share two cores and the machine's memory.
            .env("FRESHET_KAFKA_HEAP", "384m");
        cmd
    }

    fn script(&self, args: &[&str]) {
        let output = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("running scripts/kafka.sh: {e}"));
        assert!(
            output.status.success(),
            "scripts/kafka.sh {} failed ({}):\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The data directory (to inspect after a failure).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Brokers {
    fn drop(&mut self) {
        // Never leave brokers behind a failed test; errors here would hide the test's own (a
        // broker a test stopped is "not running" to `kill`). SIGKILL, not `down`: the data goes
        // with the directory, and a clean shutdown of the last brokers of a quorum waits out
        // its 20 s timeout each, for nothing.
        for n in 1..=self.count {
            let _ = self.command(&["kill", &n.to_string()]).output();
        }
    }
}

/// The first of `len` consecutive free ports, below both the ephemeral range (where outgoing
/// connections take ports) and the range [`crate::engine::free_port`] hands out.
fn free_port_block(len: u16) -> u16 {
    const FIRST: u32 = 14_000;
    const SPAN: u32 = 5_900;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(104_729) % SPAN;
    for _ in 0..SPAN / 16 {
        let offset = (start + NEXT.fetch_add(16, Ordering::Relaxed)) % (SPAN - 16);
        let base = (FIRST + offset) as u16;
        if (base..base + len).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return base;
        }
    }
    panic!(
        "no {len} consecutive free ports in {FIRST}..{}",
        FIRST + SPAN
    )
}
