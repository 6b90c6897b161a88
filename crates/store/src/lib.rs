//! Durable state of failover-notify: events, the reports merged into them, the outbox of
//! deliveries, and ad-hoc maintenance windows.
//!
//! The [`Store`] trait and its records, and no database: each backend is a crate of its own
//! (`failover-store-sqlite`, the embedded one; `failover-store-dynamodb`, the one for Lambda),
//! so a build links only the backends it serves. A store stores and answers; it decides
//! nothing about the domain: the caller passes a [`Decide`] closure that runs inside the
//! write transaction with the cluster's recent history, so merging is decided on committed
//! state. Times are UTC instants. The domain's records (events, history, decisions, ad-hoc
//! windows) are `failover-core`'s, re-exported here.
//!
//! # Claims
//! A delivery is sent by whoever holds its claim: a [`Lease`] with an owner (one per worker
//! or request) and an expiry. A claim is taken only of a pending delivery that nobody holds
//! or whose lease has ended, so a sender that died is replaced once its lease ends; an
//! outcome is recorded only for a delivery still pending and held by the owner that
//! reports it (or by nobody), so a sender whose lease ended and was taken over cannot
//! overwrite what the new holder records.

#[cfg(feature = "conformance")]
pub mod conformance;

use std::future::Future;

pub use failover_core::ad_hoc::{Maintenance, NewMaintenance, TargetKind};
pub use failover_core::decide::{Decision, EventId, History, HistoryEvent, NewEvent};
pub use failover_core::inventory::{MessageKind, Verdict};
pub use failover_core::report::Action;
pub use failover_core::template::MessageContext;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The number an event id holds: every backend numbers its events. [`StoreError::NotFound`]
/// when `id` holds none (it names no event).
///
/// # Errors
/// [`StoreError::NotFound`] naming `id`.
pub fn event_number(id: &EventId) -> Result<i64, StoreError> {
    id.0.parse().map_err(|_| StoreError::NotFound(id.clone()))
}

/// The id of event number `n`.
pub fn numbered_event(n: i64) -> EventId {
    EventId(n.to_string())
}

/// Who may see a report, and within which client ids are unique.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// An admin key: every customer.
    All,
    /// A customer's key.
    Customer(String),
}

impl Scope {
    /// Its spelling in a key or a column: `*` for [`Scope::All`], else the customer's name
    /// (inventory names never hold a `*`).
    pub fn key(&self) -> &str {
        match self {
            Scope::All => "*",
            Scope::Customer(c) => c,
        }
    }

    /// The scope spelled `key`.
    pub fn from_key(key: &str) -> Scope {
        match key {
            "*" => Scope::All,
            c => Scope::Customer(c.to_owned()),
        }
    }
}

/// A claim on deliveries: who holds it, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The holder (a worker or a request; unique per process and task).
    pub owner: String,
    /// When the claim ends unless its outcome is recorded first.
    pub until: Timestamp,
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not sent yet (or to be tried again).
    Pending,
    /// Sent.
    Delivered,
    /// Given up.
    Failed,
    /// Not sent, and never will be: a `not-back` reminder whose cluster had moved when it
    /// was due.
    Cancelled,
}

impl DeliveryState {
    /// All states.
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Failed,
        DeliveryState::Cancelled,
    ];

    /// Its spelling in JSON, columns and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Cancelled => "cancelled",
        }
    }

    /// The state spelled `name`.
    pub fn from_name(name: &str) -> Option<DeliveryState> {
        DeliveryState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A report as received, before it is attached to an event.
#[derive(Debug, Clone)]
pub struct NewReport {
    /// Client id, for idempotent retries.
    pub client_id: Option<String>,
    /// Who may see it. Client ids are unique within a scope.
    pub scope: Scope,
    /// Host as reported.
    pub host: String,
    /// What the host says happened.
    pub action: Action,
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
    /// The caller sends a new event's deliveries itself, within this request: record them
    /// claimed with this lease, so no worker or drain takes them meanwhile.
    pub claim: Option<Lease>,
    /// Also read the ad-hoc windows that end after this instant, with the history, and give
    /// them to [`Decide`]: the Lambda deployment, where other function instances may change
    /// them (`serve` keeps them in memory and leaves this `None`).
    pub maintenance_after: Option<Timestamp>,
}

/// Runs inside the write transaction with the history of [`NewReport::history`] and the
/// ad-hoc windows of [`NewReport::maintenance_after`] (empty when not asked for); a backend
/// with optimistic writes runs it again on fresh history after losing a race.
pub type Decide = Box<dyn Fn(&History, &[Maintenance]) -> Decision + Send>;

/// Rows one [`Store::prune`] batch deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Events, each with its reports and deliveries.
    pub events: u64,
    /// Expired sessions and calendar links.
    pub sessions: u64,
    /// Ad-hoc windows that ended long ago.
    pub windows: u64,
}

impl Pruned {
    /// All rows of the batch.
    pub fn total(&self) -> u64 {
        self.events + self.sessions + self.windows
    }
}

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryStatus {
    /// Delivery id.
    pub id: i64,
    /// Channel name.
    pub channel: String,
    /// Where it is.
    pub status: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// The error of the last failed attempt, if any (kept after a later success: it tells
    /// why a delivery took more than one attempt).
    pub last_error: Option<String>,
    /// When it was delivered, given up or cancelled.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    /// It is the event's `not-back` reminder ([`NewEvent::reminders`]), due at its
    /// [`NewEvent::back_by`], not the event's own message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reminder: bool,
    /// It resolves the alert the event raised on its channel (a pager or an Alertmanager),
    /// added when an ad-hoc window put the event inside maintenance
    /// ([`Store::add_resolves`]); never also a reminder.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resolve: bool,
}

impl DeliveryStatus {
    /// A delivery of the event's own message on `channel`, not attempted yet.
    pub fn new(id: i64, channel: String) -> DeliveryStatus {
        DeliveryStatus {
            id,
            channel,
            status: DeliveryState::Pending,
            attempts: 0,
            last_error: None,
            finished_at: None,
            reminder: false,
            resolve: false,
        }
    }

    /// A delivery on `channel` that resolves the event's alert there, not attempted yet.
    pub fn resolving(id: i64, channel: String) -> DeliveryStatus {
        DeliveryStatus {
            resolve: true,
            ..DeliveryStatus::new(id, channel)
        }
    }
}

/// An event as stored.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredEvent {
    /// Its id.
    pub id: EventId,
    /// The event's fields as recorded.
    #[serde(flatten)]
    pub event: NewEvent,
    /// When the first report arrived.
    #[schema(value_type = String, format = DateTime)]
    pub received_at: Timestamp,
    /// How many reports were merged into it (1 = only the first).
    pub reports: u32,
    /// Its deliveries.
    pub deliveries: Vec<DeliveryStatus>,
}

impl StoredEvent {
    /// One of its deliveries, with what its channel needs to send it. A reminder's give-up
    /// clock starts when it fell due.
    pub fn due(&self, delivery: &DeliveryStatus) -> DueDelivery {
        let kind = DeliveryKind::of(delivery);
        let created_at = match (kind, self.event.back_by) {
            (DeliveryKind::Reminder, Some(due)) => due.max(self.received_at),
            _ => self.received_at,
        };
        DueDelivery {
            id: delivery.id,
            channel: delivery.channel.clone(),
            attempts: delivery.attempts,
            created_at,
            event: self.id.clone(),
            verdict: self.event.verdict,
            kind,
            cluster: self.event.cluster.clone(),
            customer: self.event.customer.clone(),
            context: self.event.context.clone(),
        }
    }
}

/// A report as recorded, with the event it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredReport {
    /// Host as reported.
    pub host: String,
    /// What it said happened.
    pub action: Action,
    /// Previous active host as reported.
    pub previous: Option<String>,
    /// Resource name.
    pub resource: Option<String>,
    /// Sender.
    pub source: Option<String>,
    /// Its client id.
    pub client_id: Option<String>,
    /// When it happened.
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: Timestamp,
    /// When it was received.
    #[schema(value_type = String, format = DateTime)]
    pub received_at: Timestamp,
}

impl StoredReport {
    /// The report as stored, from what was received.
    pub fn of(report: &NewReport) -> StoredReport {
        StoredReport {
            host: report.host.clone(),
            action: report.action,
            previous: report.previous.clone(),
            resource: report.resource.clone(),
            source: report.source.clone(),
            client_id: report.client_id.clone(),
            occurred_at: report.occurred_at,
            received_at: report.received_at,
        }
    }
}

/// An event with everything recorded about it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventDetail {
    /// The event and its deliveries.
    #[serde(flatten)]
    pub event: StoredEvent,
    /// Its reports (a retry of one client id counts once), in the order they were received.
    pub received: Vec<StoredReport>,
}

/// What a delivery sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryKind {
    /// The event's own message.
    Message,
    /// The event's `not-back` reminder ([`DeliveryStatus::reminder`]), sent only while the
    /// cluster is still away from its usual node.
    Reminder,
    /// The resolve of the alert the event raised on its channel ([`DeliveryStatus::resolve`]).
    Resolve,
}

impl DeliveryKind {
    /// The kind of `delivery`.
    pub fn of(delivery: &DeliveryStatus) -> DeliveryKind {
        DeliveryKind::from_flags(delivery.reminder, delivery.resolve)
    }

    /// The kind a row's `reminder` and `resolve` flags (never both) spell.
    pub fn from_flags(reminder: bool, resolve: bool) -> DeliveryKind {
        match (reminder, resolve) {
            (true, _) => DeliveryKind::Reminder,
            (false, true) => DeliveryKind::Resolve,
            (false, false) => DeliveryKind::Message,
        }
    }

    /// The message kind it sends for an event of `verdict`.
    pub fn message(self, verdict: Verdict) -> MessageKind {
        match self {
            DeliveryKind::Reminder => MessageKind::NotBack,
            DeliveryKind::Message | DeliveryKind::Resolve => verdict.into(),
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
    /// When the event was recorded, or a reminder fell due (the give-up clock starts
    /// there; a resolve resolves at that instant).
    pub created_at: Timestamp,
    /// The event's id.
    pub event: EventId,
    /// The event's verdict.
    pub verdict: Verdict,
    /// What it sends.
    pub kind: DeliveryKind,
    /// Cluster name (template scope).
    pub cluster: Option<String>,
    /// Customer name (template scope).
    pub customer: Option<String>,
    /// The event's message context.
    pub context: MessageContext,
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
    /// Not sent, and never to be: a reminder whose cluster has moved.
    Cancelled {
        /// Why (kept as its last error).
        reason: String,
    },
}

/// Filters for [`Store::events`].
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Only this verdict.
    pub verdict: Option<Verdict>,
    /// Only events at or after this instant.
    pub since: Option<Timestamp>,
    /// Only these customers' events (`None` = all).
    pub customers: Option<Vec<String>>,
    /// Events with an id below this (pagination, newest first).
    pub before: Option<i64>,
    /// Page size.
    pub limit: u32,
}

/// A dashboard session: who signed in, and until when. Only the SHA-256 of its token is
/// stored (the browser holds the token), so the database holds nothing that signs anyone in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Hex SHA-256 of the session token.
    pub token_hash: String,
    /// The name of the API key that signed in.
    pub key: String,
    /// A fingerprint of that key's hash: a key given a new hash under the same name ends
    /// the sessions it opened.
    pub key_check: String,
    /// When it ends.
    pub expires: Timestamp,
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
    /// with one pending delivery per channel (due now) and one reminder per reminder channel
    /// (due at its `back_by`), or completes an event without deliveries, all in one durable
    /// transaction. [`HistoryEvent::back_by`] is the event's `back_by`, and
    /// [`HistoryEvent::told`] whether it has deliveries.
    ///
    /// # Errors
    /// [`StoreError`] when nothing could be written.
    fn record(
        &self,
        report: NewReport,
        decide: Decide,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;

    /// One event with its reports and deliveries; `None` when there is no such event.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn event(
        &self,
        id: &EventId,
    ) -> impl Future<Output = Result<Option<EventDetail>, StoreError>> + Send;

    /// Events, newest first.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn events(
        &self,
        query: EventQuery,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Claims with `lease` up to `limit` deliveries due at `now` that nobody holds (or whose
    /// lease has ended), so no other claim returns them before the lease ends.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn claim_due(
        &self,
        lease: &Lease,
        now: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<DueDelivery>, StoreError>> + Send;

    /// Records the outcomes of deliveries `owner` claimed and releases the claims. An
    /// outcome of a delivery that is no longer pending, or that another owner holds now (the
    /// lease ended and it was claimed again), is not recorded; one held by nobody is.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn finish(
        &self,
        owner: &str,
        outcomes: Vec<(i64, Outcome)>,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Claims with `lease` every pending delivery of one event that nobody holds (or whose
    /// lease has ended), due or not, except its reminders: delivery within the request,
    /// where a reporter's retry tries again at once. None for an id that names no event
    /// (malformed or unknown), as in every backend.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn claim_event(
        &self,
        event: &EventId,
        lease: &Lease,
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

    /// Ends the leases `owner` holds on pending deliveries, so they are claimed again at
    /// once: a process that starts under the name of one that died (a `serve` replica keeps
    /// its name across restarts) takes back what it left, after it has checked what it had
    /// already sent. Returns how many were released. Backends whose holders never reuse a
    /// name (SQLite ends every lease when it opens; Lambda instances name themselves at
    /// random) keep this default, which releases nothing: their leases end by time.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn release(&self, owner: &str) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let _ = owner;
        std::future::ready(Ok(0))
    }

    /// The next instant a pending delivery is due, if any: its next attempt, or the end of
    /// the lease that holds it.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn next_due(&self) -> impl Future<Output = Result<Option<Timestamp>, StoreError>> + Send;

    /// Counts of deliveries by state: pending always; delivered and failed where the backend
    /// can count them without reading every event (SQLite does; PostgreSQL and DynamoDB count
    /// pending only).
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn delivery_counts(
        &self,
    ) -> impl Future<Output = Result<Vec<(DeliveryState, u64)>, StoreError>> + Send;

    /// Sends a failed delivery of `event` again: it becomes pending, due at `now`, with its
    /// give-up clock started again at `now` (its attempts and last error stay). `false` when
    /// the event has no such delivery or it has not failed.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn resend(
        &self,
        event: &EventId,
        delivery: i64,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores a new dashboard session, and forgets those that ended before `now`.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn add_session(
        &self,
        session: Session,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The session whose token hashes to `token_hash`, if it exists and has not ended by
    /// `now`.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;

    /// Ends a session (signing out); nothing happens when it does not exist.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn end_session(&self, token_hash: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Ends every session and calendar link whose `(key, key_check)` is not in `keep`: those
    /// of keys removed from the inventory or given a new hash, so that putting the key back
    /// does not revive them. Returns how many were ended.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn end_sessions_except(
        &self,
        keep: &[(String, String)],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes one small batch of old rows (at most `batch` of each kind, in one short
    /// transaction): events that happened before `before` and have no pending delivery, with
    /// their reports and deliveries; sessions and calendar links expired at `now`; ad-hoc
    /// windows that ended before `before`. Called again until it deletes nothing. On a shared
    /// database one replica prunes at a time (the others' calls delete nothing); DynamoDB
    /// expires rows itself (its TTL) and deletes nothing here.
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn prune(
        &self,
        before: Timestamp,
        now: Timestamp,
        batch: u32,
    ) -> impl Future<Output = Result<Pruned, StoreError>> + Send;

    /// Adds to `event` one pending delivery per channel of `channels`, due at `now`, that
    /// resolves the alert the event raised there ([`DeliveryStatus::resolve`]), except on a
    /// channel where it has one already. Returns the deliveries added (none for an unknown
    /// event).
    ///
    /// # Errors
    /// [`StoreError`] on a database failure.
    fn add_resolves(
        &self,
        event: &EventId,
        channels: &[String],
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<DeliveryStatus>, StoreError>> + Send;

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
