use std::time::Duration;

use crm_config::{ConfigError, Env};

/// Broker and topic settings shared by every part.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers` (`CRM_KAFKA__BROKERS`, default `127.0.0.1:9092`).
    pub brokers: String,
    /// Prefix of every topic and consumer group (`CRM_KAFKA__TOPIC_PREFIX`, default empty).
    pub topic_prefix: String,
    /// Partitions of topics created at start-up (`CRM_KAFKA__PARTITIONS`, default 3).
    pub partitions: i32,
    /// Replication factor of topics created at start-up (`CRM_KAFKA__REPLICATION`, default 1).
    pub replication: i32,
    /// Consumer session timeout (`CRM_KAFKA__SESSION_TIMEOUT_MS`, default 10000).
    pub session_timeout: Duration,
    /// How long a produce may wait for the broker's acknowledgement
    /// (`CRM_KAFKA__DELIVERY_TIMEOUT_MS`, default 30000).
    pub delivery_timeout: Duration,
    /// How often librdkafka reports statistics, used for consumer lag
    /// (`CRM_KAFKA__STATS_INTERVAL_MS`, default 5000; 0 turns it off).
    pub stats_interval: Duration,
    /// Longest a fetch waits at the broker for new messages before answering
    /// (`CRM_KAFKA__FETCH_WAIT_MS`, default 10). It bounds the added latency of a quiet topic;
    /// librdkafka's own default (500 ms) would add up to half a second per hop.
    pub fetch_wait: Duration,
    /// Most messages of one poll applied together by a handler that batches
    /// (`CRM_KAFKA__MAX_BATCH`, default 500; 1 turns batching off).
    pub max_batch: usize,
    /// Longest the loop waits, after the first message of a poll, for more to join its batch
    /// (`CRM_KAFKA__BATCH_LINGER_MS`, default 5). Messages already fetched always join; the
    /// linger lets a backlog that librdkafka is still fetching (a loaded machine, a slow
    /// broker) form batches too, at a cost of at most this much latency on a quiet topic.
    pub batch_linger: Duration,
    /// How many transactions apply one poll at once (`CRM_KAFKA__LANES`, default 2; 1 applies
    /// a poll in one transaction). A poll's messages are split by message key, so one
    /// customer's messages stay in order in one lane; the lanes run like that many replicas,
    /// each in its own transaction, so the database's cores work while the part plans the next
    /// lane (docs/scaling.md).
    pub lanes: usize,
    /// This replica's static group membership id, `group.instance.id`
    /// (`CRM_KAFKA__INSTANCE_ID`, default the host name: the pod's name on Kubernetes; an empty
    /// value turns static membership off). A replica killed without leaving its group and
    /// restarted under the same id takes its partitions back at once, instead of waiting for
    /// the broker to expire the dead member (on tansu that wait was 5 to 11 minutes). Each
    /// replica of a part needs its own id: two live members with one id fence each other.
    pub instance_id: Option<String>,
    /// How long the record of applied message ids (`processed_messages`) is kept
    /// (`CRM_KAFKA__DEDUPE_RETENTION_HOURS`, default 336: twice Kafka's default topic
    /// retention of 7 days). A message redelivered later than this would apply again, so it
    /// must exceed the topics' `retention.ms`.
    pub dedupe_retention: Duration,
    /// How the clients reach the brokers: plaintext, TLS, SASL.
    pub security: Security,
}

/// Connection security for every client (`security.protocol` and its companions). Empty
/// fields leave librdkafka's defaults.
#[derive(Clone, Default)]
pub struct Security {
    /// `security.protocol`: `plaintext` (default), `ssl`, `sasl_plaintext` or `sasl_ssl`
    /// (`CRM_KAFKA__SECURITY_PROTOCOL`).
    pub protocol: Option<String>,
    /// `sasl.mechanism`: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`
    /// (`CRM_KAFKA__SASL_MECHANISM`).
    pub sasl_mechanism: Option<String>,
    /// `sasl.username` (`CRM_KAFKA__SASL_USERNAME`).
    pub sasl_username: Option<String>,
    /// `sasl.password` (`CRM_KAFKA__SASL_PASSWORD`; from a Secret, never logged).
    pub sasl_password: Option<String>,
    /// `ssl.ca.location`: the CA bundle that signed the brokers' certificates
    /// (`CRM_KAFKA__SSL_CA_LOCATION`).
    pub ssl_ca_location: Option<String>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("protocol", &self.protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field(
                "sasl_username",
                &self.sasl_username.as_ref().map(|_| "<set>"),
            )
            .field(
                "sasl_password",
                &self.sasl_password.as_ref().map(|_| "<set>"),
            )
            .field("ssl_ca_location", &self.ssl_ca_location)
            .finish()
    }
}

/// Protocols librdkafka accepts for `security.protocol`.
const PROTOCOLS: [&str; 4] = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"];

impl Security {
    /// Reads `CRM_KAFKA__SECURITY_PROTOCOL`, `CRM_KAFKA__SASL_*` and `CRM_KAFKA__SSL_CA_LOCATION`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let get = |k: &str| env.raw(k).map(str::to_owned);
        let protocol = get("CRM_KAFKA__SECURITY_PROTOCOL").map(|p| p.to_ascii_lowercase());
        if let Some(p) = &protocol {
            if !PROTOCOLS.contains(&p.as_str()) {
                return Err(ConfigError {
                    key: "CRM_KAFKA__SECURITY_PROTOCOL".into(),
                    problem: format!("expected one of {}, got {p:?}", PROTOCOLS.join(", ")),
                });
            }
        }
        let security = Self {
            protocol,
            sasl_mechanism: get("CRM_KAFKA__SASL_MECHANISM"),
            sasl_username: get("CRM_KAFKA__SASL_USERNAME"),
            sasl_password: get("CRM_KAFKA__SASL_PASSWORD"),
            ssl_ca_location: get("CRM_KAFKA__SSL_CA_LOCATION"),
        };
        let sasl = security
            .protocol
            .as_deref()
            .is_some_and(|p| p.starts_with("sasl"));
        if sasl && (security.sasl_username.is_none() || security.sasl_password.is_none()) {
            return Err(ConfigError {
                key: "CRM_KAFKA__SASL_USERNAME".into(),
                problem: "a sasl_* security protocol needs CRM_KAFKA__SASL_USERNAME and \
                          CRM_KAFKA__SASL_PASSWORD"
                    .into(),
            });
        }
        Ok(security)
    }

    /// Sets these options on a client's configuration.
    pub fn apply(&self, client: &mut rdkafka::ClientConfig) {
        let options = [
            ("security.protocol", &self.protocol),
            ("sasl.mechanism", &self.sasl_mechanism),
            ("sasl.username", &self.sasl_username),
            ("sasl.password", &self.sasl_password),
            ("ssl.ca.location", &self.ssl_ca_location),
        ];
        for (key, value) in options {
            if let Some(v) = value {
                client.set(key, v);
            }
        }
    }
}

impl KafkaConfig {
    /// Reads `CRM_KAFKA__*`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            brokers: env.string_or("CRM_KAFKA__BROKERS", "127.0.0.1:9092"),
            topic_prefix: env.string_or("CRM_KAFKA__TOPIC_PREFIX", ""),
            partitions: env.ranged_or("CRM_KAFKA__PARTITIONS", 3, 1..=1024)?,
            replication: env.ranged_or("CRM_KAFKA__REPLICATION", 1, 1..=7)?,
            session_timeout: env.millis_or("CRM_KAFKA__SESSION_TIMEOUT_MS", 10_000)?,
            delivery_timeout: env.millis_or("CRM_KAFKA__DELIVERY_TIMEOUT_MS", 30_000)?,
            stats_interval: env.millis_or("CRM_KAFKA__STATS_INTERVAL_MS", 5_000)?,
            fetch_wait: env.millis_or("CRM_KAFKA__FETCH_WAIT_MS", 10)?,
            max_batch: env.ranged_or("CRM_KAFKA__MAX_BATCH", 500, 1..=10_000)?,
            batch_linger: env.millis_or("CRM_KAFKA__BATCH_LINGER_MS", 5)?,
            lanes: env.ranged_or("CRM_KAFKA__LANES", 2, 1..=64)?,
            instance_id: instance_id(env),
            dedupe_retention: Duration::from_secs(
                3600 * env.ranged_or("CRM_KAFKA__DEDUPE_RETENTION_HOURS", 336u64, 1..=87_600)?,
            ),
            security: Security::from_env(env)?,
        })
    }

    /// A client configuration with the brokers and the connection security set; each client
    /// (consumer, producer, admin, replay) adds its own options.
    pub fn client(&self) -> rdkafka::ClientConfig {
        let mut client = rdkafka::ClientConfig::new();
        client.set("bootstrap.servers", &self.brokers);
        self.security.apply(&mut client);
        client
    }

    /// Settings for a local broker with a given prefix (tests, tools).
    pub fn local(brokers: &str, topic_prefix: &str) -> Self {
        Self {
            brokers: brokers.to_owned(),
            topic_prefix: topic_prefix.to_owned(),
            partitions: 2,
            replication: 1,
            session_timeout: Duration::from_secs(10),
            delivery_timeout: Duration::from_secs(30),
            stats_interval: Duration::from_secs(1),
            fetch_wait: Duration::from_millis(10),
            max_batch: 500,
            batch_linger: Duration::from_millis(5),
            lanes: 2,
            instance_id: None,
            dedupe_retention: Duration::from_secs(336 * 3600),
            security: Security::default(),
        }
    }
}

/// `CRM_KAFKA__INSTANCE_ID`, else `HOSTNAME`; `None` when empty.
fn instance_id(env: &Env) -> Option<String> {
    let id = env.string_or("CRM_KAFKA__INSTANCE_ID", &env.string_or("HOSTNAME", ""));
    let id = id.trim();
    (!id.is_empty()).then(|| id.to_owned())
}
