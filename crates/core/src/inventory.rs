//! The validated inventory: customers, clusters, nodes, windows, channels, routes and keys.
//!
//! Built only by [`crate::config::parse`]; every reference is resolved to an index, so
//! lookups never fail on a name that does not exist.

use jiff::SignedDuration;
use jiff::tz::TimeZone;

use crate::keys::KeyHash;
use crate::retry::RetryPolicy;
use crate::template::Templates;
use crate::window::{MaintenanceWindow, Owner};

macro_rules! id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
        impl $name {
            /// Position in the inventory's list.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}
id!(
    /// Index of a customer.
    CustomerId
);
id!(
    /// Index of a cluster.
    ClusterId
);
id!(
    /// Index of a node.
    NodeId
);

/// A tenant: owns clusters, keys and routes.
#[derive(Debug, Clone)]
pub struct Customer {
    /// Unique name.
    pub name: String,
    /// Default zone of its clusters and windows.
    pub time_zone: TimeZone,
}

/// A group of nodes that fail over to each other.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Unique name.
    pub name: String,
    /// Owning customer, if any.
    pub customer: Option<CustomerId>,
    /// Members, in the order written.
    pub nodes: Vec<NodeId>,
    /// Zone for messages and for windows that name none.
    pub time_zone: TimeZone,
    /// The node it normally runs on (`preferred`), if named: where it is expected back
    /// after a planned failover.
    pub preferred: Option<NodeId>,
    /// Every window that can make this cluster's failover planned: the cluster's, its
    /// nodes' and its customer's.
    pub windows: Vec<WindowId>,
}

/// One host of a cluster.
#[derive(Debug, Clone)]
pub struct Node {
    /// Host name as written in the inventory.
    pub name: String,
    /// Other names the host reports under.
    pub aliases: Vec<String>,
    /// The cluster it belongs to.
    pub cluster: ClusterId,
}

id!(
    /// Index of a window.
    WindowId
);

/// What an event was found to be: the verdict it is recorded, listed and counted with.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// A window explains the failover.
    Planned,
    /// No window explains it: someone should look now.
    Unplanned,
    /// The reporting host is not in the inventory.
    UnknownHost,
    /// The cluster's first report: no earlier event of it is recorded, so this is taken as
    /// the cluster starting (or failover-notify's first report from a cluster already
    /// running), not as a failover. Decided on the history, never by `classify`.
    ClusterStart,
    /// The failback that brings a cluster back to its usual node after the reminder of its
    /// planned failover was due. Decided on the history, never by `classify`.
    Back,
}

impl Verdict {
    /// All verdicts.
    pub const ALL: [Verdict; 5] = [
        Verdict::Planned,
        Verdict::Unplanned,
        Verdict::UnknownHost,
        Verdict::ClusterStart,
        Verdict::Back,
    ];

    /// The spelling used in config, JSON and templates.
    pub fn as_str(self) -> &'static str {
        MessageKind::from(self).as_str()
    }

    /// The verdict spelled `name` (as [`Verdict::as_str`] spells it).
    pub fn from_name(name: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == name)
    }
}

/// What a message is about: the kinds a route carries (`verdicts = [...]`) and a template
/// is written for. Each event verdict has its message; the other kinds are told about an
/// event without being its verdict.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum MessageKind {
    /// A planned failover ([`Verdict::Planned`]).
    Planned,
    /// An unplanned failover ([`Verdict::Unplanned`]).
    Unplanned,
    /// A report from a host not in the inventory ([`Verdict::UnknownHost`]).
    UnknownHost,
    /// A cluster's first report ([`Verdict::ClusterStart`]).
    ClusterStart,
    /// A reminder: the cluster is still away from its usual node when the window of its
    /// planned failover has ended (plus its after-grace). A route that carries it gets one
    /// reminder per such failover.
    NotBack,
    /// The late failback ([`Verdict::Back`]).
    Back,
}

impl MessageKind {
    /// All kinds, in the order the config's error message names them.
    pub const ALL: [MessageKind; 6] = [
        MessageKind::Planned,
        MessageKind::Unplanned,
        MessageKind::UnknownHost,
        MessageKind::ClusterStart,
        MessageKind::NotBack,
        MessageKind::Back,
    ];

    /// What a route carries when it names no verdicts: every event's verdict, not the
    /// reminder kinds `not-back` and `back`, which a route carries only when it names them
    /// (a team whose clusters stay where they failed over wants no reminders).
    pub const ROUTED_BY_DEFAULT: [MessageKind; 4] = [
        MessageKind::Planned,
        MessageKind::Unplanned,
        MessageKind::UnknownHost,
        MessageKind::ClusterStart,
    ];

    /// The spelling used in config, JSON and templates.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Planned => "planned",
            MessageKind::Unplanned => "unplanned",
            MessageKind::UnknownHost => "unknown-host",
            MessageKind::ClusterStart => "cluster-start",
            MessageKind::NotBack => "not-back",
            MessageKind::Back => "back",
        }
    }

    /// The kind spelled `name` (as [`MessageKind::as_str`] spells it).
    pub fn from_name(name: &str) -> Option<MessageKind> {
        MessageKind::ALL.into_iter().find(|v| v.as_str() == name)
    }
}

impl From<Verdict> for MessageKind {
    fn from(v: Verdict) -> MessageKind {
        match v {
            Verdict::Planned => MessageKind::Planned,
            Verdict::Unplanned => MessageKind::Unplanned,
            Verdict::UnknownHost => MessageKind::UnknownHost,
            Verdict::ClusterStart => MessageKind::ClusterStart,
            Verdict::Back => MessageKind::Back,
        }
    }
}

/// How a webhook body is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// Slack incoming webhook `{"text": ...}`.
    Slack,
    /// Microsoft Teams Workflows: an Adaptive Card in an `attachments` envelope.
    Teams,
    /// A retired Office 365 connector's MessageCard (`teams-connector`).
    TeamsConnector,
    /// A Mattermost incoming webhook: a Slack-style attachment coloured by verdict.
    Mattermost,
    /// A Google Chat space's webhook: `text`, in the cluster's thread.
    GoogleChat,
    /// The same with a `cardsV2` card (`googlechat-card`).
    GoogleChatCard,
    /// The event as JSON.
    Generic,
}

/// A PagerDuty alert's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// `critical`.
    Critical,
    /// `error`.
    Error,
    /// `warning`.
    Warning,
    /// `info`.
    Info,
}

impl Severity {
    /// Its spelling in the inventory and in PagerDuty's API.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    /// The severity spelled `name`.
    pub fn from_name(name: &str) -> Option<Severity> {
        [
            Severity::Critical,
            Severity::Error,
            Severity::Warning,
            Severity::Info,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// A credential written in the inventory, or where to find it; read by the channel when it
/// is built, never printed (`Debug` shows only where it comes from).
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The value itself, in the inventory.
    Inline(String),
    /// The name of an environment variable holding it.
    Env(String),
    /// A file holding it (surrounding whitespace ignored).
    File(String),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Inline(<redacted>)"),
            Secret::Env(name) => write!(f, "Env({name:?})"),
            Secret::File(path) => write!(f, "File({path:?})"),
        }
    }
}

/// A URL safe to show: scheme and host (with port) only, since webhook URLs carry their
/// credential in the path or query (Slack's path, Teams' `sig=`). Anything unparsable is
/// shown as `<redacted>`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<redacted>".to_owned();
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // user:password@host keeps only the host.
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric()) {
        return "<redacted>".to_owned();
    }
    format!("{scheme}://{host}/<redacted>")
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Upgrade with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS (a local relay).
    None,
}

/// Where a channel delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    /// An AWS SNS topic.
    Sns {
        /// Topic ARN.
        topic_arn: String,
        /// Region; default from the ARN.
        region: Option<String>,
        /// Endpoint override (tests, VPC endpoints).
        endpoint_url: Option<String>,
        /// Publish with `MessageStructure = json`: SMS subscribers get the short `sms` text,
        /// every other protocol the body.
        sms: bool,
    },
    /// E-mail over SMTP.
    Email {
        /// Recipients.
        to: Vec<String>,
        /// Sender.
        from: String,
        /// Server.
        smtp_host: String,
        /// Port.
        smtp_port: u16,
        /// Transport security.
        tls: SmtpTls,
        /// User for SMTP AUTH.
        username: Option<String>,
        /// Environment variable that holds the password (never the password itself).
        password_env: Option<String>,
        /// PEM file of the certificate authority that signed the server's certificate (a
        /// private relay), trusted besides the public roots.
        ca_file: Option<String>,
    },
    /// An HTTP POST.
    Webhook {
        /// Target URL (a credential: Slack and Teams put the token in it).
        url: Secret,
        /// Body shape.
        format: WebhookFormat,
        /// Extra headers; values may be credentials.
        headers: Vec<(String, Secret)>,
    },
    /// PagerDuty's Events API v2: trigger on an event, resolve on its failback.
    PagerDuty {
        /// The integration's routing key (a credential).
        routing_key: Secret,
        /// The enqueue URL (the EU service region has its own).
        url: String,
        /// The alert's severity for each verdict.
        severity: [(MessageKind, Severity); 6],
    },
    /// Alertmanager's `/api/v2/alerts`: an alert per event, resolved by its failback.
    Alertmanager {
        /// Each Alertmanager's base URL (`http://am1:9093`, no trailing `/`); all get each
        /// alert, as Prometheus sends to every member of an HA pair.
        urls: Vec<String>,
        /// Labels added to every alert (`team = "dba"`), for the Alertmanager's routing.
        labels: Vec<(String, String)>,
        /// An alert not resolved by a failback ends this long after it started.
        resolve_after: SignedDuration,
    },
    /// A line of JSON to stdout or to a file.
    Log {
        /// File to append to; `None` = stdout.
        path: Option<String>,
    },
}

impl ChannelKind {
    /// It raises alerts that a failback resolves (a paging service), so a failback is sent
    /// to it whatever verdict the route carries.
    pub fn resolves(&self) -> bool {
        matches!(
            self,
            ChannelKind::PagerDuty { .. } | ChannelKind::Alertmanager { .. }
        )
    }
}

/// One destination.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Unique name.
    pub name: String,
    /// Where and how.
    pub kind: ChannelKind,
}

/// Which events go to which channels.
#[derive(Debug, Clone)]
pub struct Route {
    /// Only this customer's events; `None` with no cluster = every event.
    pub customer: Option<CustomerId>,
    /// Only this cluster's events.
    pub cluster: Option<ClusterId>,
    /// The kinds of message carried (config: `verdicts`).
    pub verdicts: Vec<MessageKind>,
    /// Destinations, as indexes into [`Inventory::channels`].
    pub channels: Vec<usize>,
}

/// An API key, known only by its hash.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// Label for logs (the key itself is never logged).
    pub name: String,
    /// SHA-256 of the key.
    pub hash: KeyHash,
    /// `None` = admin key.
    pub customer: Option<CustomerId>,
    /// What it may do.
    pub role: Role,
}

/// What a key may do, within its customer (or everything, for an admin key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Report failovers, read, and change maintenance and deliveries (the default).
    Operator,
    /// Read only: events, windows, the dashboard (wall screens).
    Viewer,
}

impl Role {
    /// Its spelling in `[[keys]] role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }

    /// The role spelled `name`.
    pub fn from_name(name: &str) -> Option<Role> {
        [Role::Operator, Role::Viewer]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

/// Thresholds for merging, flapping and failback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPolicy {
    /// Reports for the same cluster and new active node within this are one event.
    pub merge_within: SignedDuration,
    /// More than this many events ...
    pub flapping_count: u32,
    /// ... within this long make the cluster flapping.
    pub flapping_within: SignedDuration,
    /// A failover back to the previously active node within this is a failback.
    pub failback_within: SignedDuration,
    /// A cluster's first report (no earlier event recorded) is the cluster starting
    /// ([`Verdict::ClusterStart`]), not a failover. Off for clusters that run already when
    /// failover-notify is put in front of them (a migration from the original Lambda).
    pub first_report_is_start: bool,
    /// Events (with their reports and deliveries) and ended ad-hoc windows older than this
    /// are deleted (`[events] keep`).
    pub keep: SignedDuration,
}

impl Default for EventPolicy {
    fn default() -> Self {
        EventPolicy {
            merge_within: SignedDuration::from_secs(120),
            flapping_count: 3,
            flapping_within: SignedDuration::from_mins(30),
            failback_within: SignedDuration::from_hours(24),
            first_report_is_start: true,
            keep: SignedDuration::from_hours(400 * 24),
        }
    }
}

/// `[server]`: how `serve` treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerPolicy {
    /// A connection must send a whole request head within this, or it is closed.
    pub header_timeout: SignedDuration,
    /// A kept-alive connection with no request for this long is closed.
    pub idle_timeout: SignedDuration,
    /// A request, its body included, must be read and answered within this (408).
    pub request_timeout: SignedDuration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: u32,
}

impl Default for ServerPolicy {
    fn default() -> Self {
        ServerPolicy {
            header_timeout: SignedDuration::from_secs(10),
            idle_timeout: SignedDuration::from_secs(60),
            request_timeout: SignedDuration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// `[server]`'s PEM files for HTTPS (absolute paths; read by `serve`, not here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: std::path::PathBuf,
    /// Its private key.
    pub key: std::path::PathBuf,
    /// When set, clients must present a certificate signed by one of these CAs.
    pub client_ca: Option<std::path::PathBuf>,
}

/// `[maintenance]`: what an ad-hoc window may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintenancePolicy {
    /// Longest ad-hoc window.
    pub max_duration: SignedDuration,
}

impl Default for MaintenancePolicy {
    fn default() -> Self {
        MaintenancePolicy {
            max_duration: SignedDuration::from_hours(7 * 24),
        }
    }
}

/// The whole validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Zone for anything that names none.
    pub default_time_zone: TimeZone,
    /// Customers.
    pub customers: Vec<Customer>,
    /// Clusters.
    pub clusters: Vec<Cluster>,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Windows.
    pub windows: Vec<MaintenanceWindow>,
    /// Channels.
    pub channels: Vec<Channel>,
    /// Routes.
    pub routes: Vec<Route>,
    /// API keys.
    pub keys: Vec<ApiKey>,
    /// Merging, flapping and failback thresholds.
    pub events: EventPolicy,
    /// Delivery retry timing.
    pub delivery: RetryPolicy,
    /// Connection limits of `serve`.
    pub server: ServerPolicy,
    /// Where people reach the service (`[server] public_url`, no trailing `/`): messages
    /// link to the dashboard's event page under it.
    pub public_url: Option<String>,
    /// Peers whose `Forwarded`/`X-Forwarded-For`/`X-Forwarded-Proto` are believed
    /// (`[server] trusted_proxies`); empty: none, the peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `serve`'s certificate files (`[server] tls_cert`, `tls_key`, `tls_client_ca`): HTTPS
    /// when set.
    pub tls: Option<TlsFiles>,
    /// Limits of ad-hoc windows.
    pub maintenance: MaintenancePolicy,
    /// Message templates.
    pub templates: Templates,
    /// Host names → nodes.
    pub(crate) hosts: HostIndex,
}

impl Inventory {
    /// The channel named `channel` raises alerts that a resolve ends ([`ChannelKind::resolves`]).
    pub fn resolves_on(&self, channel: &str) -> bool {
        self.channels
            .iter()
            .any(|c| c.name == channel && c.kind.resolves())
    }

    /// The node a reported host name means: case-insensitive, the full name or an alias
    /// first, then the short name (`db1` for `db1.example.com` and the other way round) when
    /// exactly one node matches it. With `customer`, only that customer's nodes count.
    pub fn find_node(&self, host: &str, customer: Option<CustomerId>) -> Option<NodeId> {
        let host = host.trim_end_matches('.');
        let short = short_name(host);
        let full_matches = self.hosts.full(host).filter(|&n| {
            self.names(n)
                .any(|name| name.trim_end_matches('.').eq_ignore_ascii_case(host))
        });
        let short_matches = self.hosts.short(short).filter(|&n| {
            self.names(n)
                .any(|name| short_name(name).eq_ignore_ascii_case(short))
        });
        self.only_one(full_matches, customer)
            .or_else(|| self.only_one(short_matches, customer))
    }

    /// A node's name and aliases.
    fn names(&self, id: NodeId) -> impl Iterator<Item = &String> {
        let node = &self.nodes[id.index()];
        std::iter::once(&node.name).chain(&node.aliases)
    }

    /// The one node of `ids` in `customer`'s scope, if exactly one is.
    fn only_one(
        &self,
        ids: impl Iterator<Item = NodeId>,
        customer: Option<CustomerId>,
    ) -> Option<NodeId> {
        let mut in_scope = ids.filter(|n| {
            customer.is_none()
                || self.clusters[self.nodes[n.index()].cluster.index()].customer == customer
        });
        match (in_scope.next(), in_scope.next()) {
            (Some(id), None) => Some(id),
            _ => None,
        }
    }

    /// The cluster with this name (case-insensitive).
    pub fn find_cluster(&self, name: &str) -> Option<ClusterId> {
        self.clusters
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
            .map(|i| ClusterId(i as u32))
    }

    /// The node's record.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    /// The cluster's record.
    pub fn cluster(&self, id: ClusterId) -> &Cluster {
        &self.clusters[id.index()]
    }

    /// The node `cluster` usually runs on, by name: its `preferred` node, else `otherwise`
    /// (for a failover, the node active before it; for the cluster list, its first node).
    pub fn usual_node<'a>(
        &'a self,
        cluster: ClusterId,
        otherwise: Option<&'a str>,
    ) -> Option<&'a str> {
        match self.cluster(cluster).preferred {
            Some(n) => Some(self.node(n).name.as_str()),
            None => otherwise,
        }
    }

    /// The window's record.
    pub fn window(&self, id: WindowId) -> &MaintenanceWindow {
        &self.windows[id.index()]
    }

    /// Name of a window's owner (node, cluster or customer).
    pub fn owner_name(&self, owner: Owner) -> &str {
        match owner {
            Owner::Node(n) => &self.nodes[n.index()].name,
            Owner::Cluster(c) => &self.clusters[c.index()].name,
            Owner::Customer(c) => &self.customers[c.index()].name,
        }
    }

    /// The clusters a window applies to.
    pub fn clusters_of(&self, owner: Owner) -> Vec<ClusterId> {
        match owner {
            Owner::Node(n) => vec![self.nodes[n.index()].cluster],
            Owner::Cluster(c) => vec![c],
            Owner::Customer(cu) => (0..self.clusters.len() as u32)
                .map(ClusterId)
                .filter(|c| self.clusters[c.index()].customer == Some(cu))
                .collect(),
        }
    }
}

/// The part of a host name before the first dot.
pub fn short_name(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// Host names → nodes, compact because inventories reach tens of thousands of nodes: each
/// name is 8 bytes, a hash of the lower-cased name and the node, sorted by hash. A hash only
/// names candidates; [`Inventory::find_node`] compares the names themselves.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostIndex {
    /// Full names and aliases, without a trailing dot.
    full: Box<[(u32, NodeId)]>,
    /// Short names (before the first dot).
    short: Box<[(u32, NodeId)]>,
}

impl HostIndex {
    /// Indexes every node's name and aliases.
    pub(crate) fn new(nodes: &[Node]) -> HostIndex {
        let mut full = Vec::with_capacity(nodes.len());
        let mut short = Vec::with_capacity(nodes.len());
        for (i, node) in nodes.iter().enumerate() {
            let id = NodeId(i as u32);
            for name in std::iter::once(&node.name).chain(&node.aliases) {
                full.push((name_hash(name.trim_end_matches('.')), id));
                short.push((name_hash(short_name(name)), id));
            }
        }
        let sorted = |mut v: Vec<(u32, NodeId)>| {
            v.sort_unstable();
            v.dedup();
            v.into_boxed_slice()
        };
        HostIndex {
            full: sorted(full),
            short: sorted(short),
        }
    }

    /// Nodes that may have this full name or alias.
    fn full(&self, name: &str) -> impl Iterator<Item = NodeId> + '_ {
        candidates(&self.full, name_hash(name))
    }

    /// Nodes that may have this short name.
    fn short(&self, name: &str) -> impl Iterator<Item = NodeId> + '_ {
        candidates(&self.short, name_hash(name))
    }
}

fn candidates(list: &[(u32, NodeId)], hash: u32) -> impl Iterator<Item = NodeId> + '_ {
    let from = list.partition_point(|&(h, _)| h < hash);
    list[from..]
        .iter()
        .take_while(move |&&(h, _)| h == hash)
        .map(|&(_, id)| id)
}

/// FNV-1a of the ASCII-lower-cased name: stable, and needs no lower-cased copy.
fn name_hash(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(b.to_ascii_lowercase())).wrapping_mul(0x0100_0193)
    })
}
