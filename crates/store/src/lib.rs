//! Durable state of failover-notify: events, the reports merged into them, the outbox of
//! deliveries, and ad-hoc maintenance windows.
//!
//! The [`Store`] trait and its records, and no database: each backend is a crate of its own
//! (`failover-store-sqlite`, the embedded one; `failover-store-dynamodb`, the one for Lambda),
//! so a build links only the backends it serves. A store stores and answers; it decides
//! nothing about the domain: the caller passes a [`Decide`] closure that runs inside the
//! write transaction with the cluster's recent history, so merging is decided on committed
//! state. Times are UTC instants.

#[cfg(feature = "conformance")]
pub mod conformance;

use std::future::Future;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// An event's id, unique within a store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub String);

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A report as received, before it is attached to an event.
#[derive(Debug, Clone)]
pub struct NewReport {
    /// Client id, for idempotent retries.
    pub client_id: Option<String>,
    /// Who may see it: the API key's customer, or `*` for an admin key. Client ids are
    /// unique within a scope.
    pub scope: String,
    /// Host as reported.
    pub host: String,
    /// `takeover`, `release` or `lost`.
    pub action: String,
    /// Previous active host as reported.
    pub previous: Option<String>,
    /// Resource name.
    pub resource: Option<String>,
    /// Sender.
    pub source: Option<String>,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// When the server received it.
    pub received_at: Timestamp,
    /// The cluster whose history [`Decide`] needs, and from when.
    pub history: Option<(String, Timestamp)>,
    /// The caller sends a new event's deliveries itself, within this request (the Lambda
    /// deployment): record them already claimed, so no worker or drain takes them meanwhile.
    pub claimed: bool,
    /// Also read the ad-hoc windows that end after this instant, with the history, and give
    /// them to [`Decide`]: the Lambda deployment, where other function instances may change
    /// them (`serve` keeps them in memory and leaves this `None`).
    pub maintenance_after: Option<Timestamp>,
}

/// A cluster's earlier event, as [`Decide`] sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// Its id.
    pub id: EventId,
    /// The node that became active (inventory name).
    pub active: Option<String>,
    /// The node active before, when known.
    pub previous: Option<String>,
    /// When it happened.
    pub at: Timestamp,
    /// It was flagged as flapping.
    pub flapping: bool,
}

/// A new event with its deliveries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewEvent {
    /// Cluster name, `None` for an unknown host.
    pub cluster: Option<String>,
    /// Customer name.
    pub customer: Option<String>,
    /// The node that became active (inventory name), if known.
    pub active: Option<String>,
    /// The node active before (inventory name), if known.
    pub previous: Option<String>,
    /// `planned`, `unplanned`, `unknown-host`.
    pub verdict: String,
    /// When it happened.
    pub at: Timestamp,
    /// The cluster is flapping.
    pub flapping: bool,
    /// The event this one undoes.
    pub failback_of: Option<EventId>,
    /// The classification as answered to the caller (JSON).
    pub classification: serde_json::Value,
    /// The template context of its message (JSON).
    pub context: serde_json::Value,
    /// Channel names to deliver to.
    pub channels: Vec<String>,
}

/// A cluster's history as [`Decide`] sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Its events from the instant [`NewReport::history`] names on, oldest first.
    pub events: Vec<HistoryEvent>,
    /// It has an event before that instant too (recorded at any time, also one whose event
    /// has since expired from the store).
    pub older: bool,
}

/// What to do with a report, decided on the history inside the write transaction.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Attach it to an existing event; deliver nothing new.
    Merge(EventId),
    /// Record a new event and its deliveries.
    New(Box<NewEvent>),
    /// Attach it to an existing event that has no deliveries (a release, recorded without a
    /// message), which takes these fields and deliveries: the report completes the failover
    /// that event began, under its id.
    Complete(EventId, Box<NewEvent>),
}

/// Runs inside the write transaction with the history of [`NewReport::history`] and the
/// ad-hoc windows of [`NewReport::maintenance_after`] (empty when not asked for); a backend
/// with optimistic writes runs it again on fresh history after losing a race.
pub type Decide = Box<dyn Fn(&History, &[Maintenance]) -> Decision + Send>;

/// The outcome of [`Store::record`].
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    /// The event the report belongs to.
    pub event: StoredEvent,
    /// It joined an event recorded earlier.
    pub merged: bool,
    /// It is a retry of a report already recorded (same client id): nothing was written.
    pub duplicate: bool,
}

/// One delivery of an event to a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryStatus {
    /// Delivery id.
    pub id: i64,
    /// Channel name.
    pub channel: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// The error of the last failed attempt, if any (kept after a later success: it tells
    /// why a delivery took more than one attempt).
    pub last_error: Option<String>,
    /// When it was delivered or given up.
    pub finished_at: Option<Timestamp>,
}

/// An event as stored.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    /// Its id.
    pub id: EventId,
    /// The event's fields as recorded.
    #[serde(flatten)]
    pub event: NewEvent,
    /// When the first report arrived.
    pub received_at: Timestamp,
    /// How many reports were merged into it (1 = only the first).
    pub reports: u32,
    /// Its deliveries.
    pub deliveries: Vec<DeliveryStatus>,
}

impl StoredEvent {
    /// One of its deliveries, with what its channel needs to send it.
    pub fn due(&self, delivery: &DeliveryStatus) -> DueDelivery {
        DueDelivery {
            id: delivery.id,
            channel: delivery.channel.clone(),
            attempts: delivery.attempts,
            created_at: self.received_at,
            event: self.id.clone(),
            verdict: self.event.verdict.clone(),
            cluster: self.event.cluster.clone(),
            customer: self.event.customer.clone(),
            context: self.event.context.clone(),
        }
    }
}

/// A delivery due now, with what the channel needs to send it.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    /// Delivery id.
    pub id: i64,
    /// Channel name.
    pub channel: String,
    /// Attempts made before this one.
    pub attempts: u32,
    /// When the event was recorded (the give-up clock starts there).
    pub created_at: Timestamp,
    /// The event's id.
    pub event: EventId,
    /// Its verdict.
    pub verdict: String,
    /// Cluster name (template scope).
    pub cluster: Option<String>,
    /// Customer name (template scope).
    pub customer: Option<String>,
    /// The template context.
    pub context: serde_json::Value,
}

/// What happened to one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Sent.
    Delivered,
    /// Failed; try again at this instant.
    Retry {
        /// Next attempt.
        at: Timestamp,
        /// Why it failed.
        error: String,
    },
    /// Failed for good (permanent error, or too old).
    Failed {
        /// Why.
        error: String,
    },
}

/// Filters for [`Store::events`].
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Only this verdict.
    pub verdict: Option<String>,
    /// Only events at or after this instant.
    pub since: Option<Timestamp>,
    /// Only these customers' events (`None` = all).
    pub customers: Option<Vec<String>>,
    /// Events with an id below this (pagination, newest first).
    pub before: Option<i64>,
    /// Page size.
    pub limit: u32,
}

/// What an ad-hoc window applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMaintenance {
    /// `node`, `cluster` or `customer`.
    pub target_kind: String,
    /// Its inventory name.
    pub target: String,
    /// Customer of the target (for scoped keys).
    pub customer: Option<String>,
    /// Start.
    pub start: Timestamp,
    /// End.
    pub end: Timestamp,
    /// Why.
    pub reason: String,
    /// The API key's name that created it.
    pub created_by: String,
}

/// An ad-hoc window as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Maintenance {
    /// Id.
    pub id: i64,
    /// Its fields.
    #[serde(flatten)]
    pub window: NewMaintenance,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored value could not be read back.
    #[error("stored {what} `{value}` is not valid")]
    Corrupt {
        /// Which column.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// The event named by [`Decision::Merge`] or [`Decision::Complete`] does not exist
    /// (or, for the latter, has deliveries already).
    #[error("event `{0}` not found")]
    NotFound(EventId),
    /// The store's writer has stopped (shutdown or a fatal error).
    #[error("the store is closed")]
    Closed,
}

/// What the service needs from durable storage.
pub trait Store: Clone + Send + Sync + 'static {
    /// Records a report: a retry of a known client id answers as before; otherwise
    /// `decide` sees the cluster's history and the report is merged, becomes a new event
    /// with one pending delivery per channel, or completes an event without deliveries, all
    /// in one durable transaction.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be written.
    fn record(
        &self,
        report: NewReport,
        decide: Decide,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;

    /// Events, newest first.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn events(
        &self,
        query: EventQuery,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Claims up to `limit` deliveries due at `now` so no other claim returns them.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn claim_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<DueDelivery>, StoreError>> + Send;

    /// Records the outcomes of claimed deliveries and releases the claims.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn finish(
        &self,
        outcomes: Vec<(i64, Outcome)>,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Claims every pending, unclaimed delivery of one event, due or not: the Lambda
    /// deployment delivers within the request, and a reporter's retry tries again at once.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn claim_event(
        &self,
        event: &EventId,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<DueDelivery>, StoreError>> + Send;

    /// Pending deliveries of one channel (for the log channel's restart check).
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn pending_of(
        &self,
        channel: &str,
    ) -> impl Future<Output = Result<Vec<i64>, StoreError>> + Send;

    /// The next instant a pending, unclaimed delivery is due, if any.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn next_due(&self) -> impl Future<Output = Result<Option<Timestamp>, StoreError>> + Send;

    /// Counts of deliveries by status: `pending` always; `delivered` and `failed` where the
    /// backend can count them without reading every event (SQLite does, DynamoDB does not).
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn delivery_counts(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, u64)>, StoreError>> + Send;

    /// Adds an ad-hoc window.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn add_maintenance(
        &self,
        window: NewMaintenance,
    ) -> impl Future<Output = Result<Maintenance, StoreError>> + Send;

    /// Ad-hoc windows that end after `after`.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn maintenance(
        &self,
        after: Timestamp,
    ) -> impl Future<Output = Result<Vec<Maintenance>, StoreError>> + Send;

    /// Ends an ad-hoc window at `now` (or removes it if it has not started); `false` when
    /// no such window is active.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn end_maintenance(
        &self,
        id: i64,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
