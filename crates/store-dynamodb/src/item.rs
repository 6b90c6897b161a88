//! How events, their deliveries and the ad-hoc windows are written as DynamoDB items.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use failover_store::{
    DeliveryState, DeliveryStatus, Maintenance, NewEvent, NewMaintenance, StoreError, StoredEvent,
    StoredReport, numbered_event,
};
use jiff::Timestamp;

use crate::PER_EVENT;

/// One item's attributes.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// An update expression being built: `SET`, `REMOVE` and `ADD` clauses, conditions, values.
#[derive(Default)]
pub(crate) struct Expr {
    pub(crate) set: Vec<String>,
    pub(crate) remove: Vec<String>,
    pub(crate) add: Vec<String>,
    pub(crate) condition: Option<String>,
    pub(crate) values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub(crate) fn set(&mut self, clause: String) {
        self.set.push(clause);
    }
    pub(crate) fn value(&mut self, name: &str, v: AttributeValue) {
        self.values.insert(name.to_owned(), v);
    }
    pub(crate) fn require(&mut self, c: String) {
        self.condition = Some(match self.condition.take() {
            Some(old) => format!("{old} AND ({c})"),
            None => format!("({c})"),
        });
    }
    pub(crate) fn update(&self) -> String {
        let mut parts = Vec::new();
        for (word, list) in [
            ("SET", &self.set),
            ("REMOVE", &self.remove),
            ("ADD", &self.add),
        ] {
            if !list.is_empty() {
                parts.push(format!("{word} {}", list.join(", ")));
            }
        }
        parts.join(" ")
    }
}

/// The kind (`k_i`) of a delivery that is its event's `not-back` reminder.
const REMINDER: &str = "not-back";
/// The kind (`k_i`) of a delivery that resolves its event's alert.
pub(crate) const RESOLVE: &str = "resolve";

/// One delivery inside an event item.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) status: DeliveryStatus,
    pub(crate) next_at: Timestamp,
    pub(crate) claimed_until: Option<Timestamp>,
    pub(crate) claimed_by: Option<String>,
    /// When it was sent again after failing.
    pub(crate) resent: Option<Timestamp>,
}

impl Delivery {
    pub(crate) fn pending(&self) -> bool {
        self.status.status == DeliveryState::Pending
    }
}

/// An event item.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) id: i64,
    pub(crate) event: NewEvent,
    pub(crate) received_at: Timestamp,
    pub(crate) reports: u32,
    pub(crate) deliveries: Vec<Delivery>,
    /// The reports, oldest first (attribute `rl`, a list of JSON strings).
    pub(crate) received: Vec<StoredReport>,
}

impl Row {
    pub(crate) fn from_item(item: &Item) -> Result<Row, StoreError> {
        let corrupt = |what| StoreError::Corrupt {
            what,
            value: str_of(item, "sk").unwrap_or_default().to_owned(),
        };
        let id: i64 = str_of(item, "sk")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt("id"))?;
        let event = str_of(item, "event")
            .and_then(|e| serde_json::from_str(e).ok())
            .ok_or_else(|| corrupt("event"))?;
        let mut deliveries = Vec::new();
        for i in 0.. {
            let Some(channel) = str_of(item, &format!("ch_{i}")) else {
                break;
            };
            let ms =
                |name: String| num(item, &name).and_then(|v| Timestamp::from_millisecond(v).ok());
            let status = match str_of(item, &format!("st_{i}")) {
                None => DeliveryState::Pending,
                Some(st) => DeliveryState::from_name(st).ok_or_else(|| corrupt("status"))?,
            };
            deliveries.push(Delivery {
                status: DeliveryStatus {
                    id: id * PER_EVENT + i,
                    channel: channel.to_owned(),
                    status,
                    attempts: num(item, &format!("a_{i}"))
                        .and_then(|a| u32::try_from(a).ok())
                        .unwrap_or(0),
                    last_error: str_of(item, &format!("e_{i}")).map(str::to_owned),
                    finished_at: ms(format!("f_{i}")),
                    reminder: str_of(item, &format!("k_{i}")) == Some(REMINDER),
                    resolve: str_of(item, &format!("k_{i}")) == Some(RESOLVE),
                },
                next_at: ms(format!("n_{i}")).unwrap_or_default(),
                claimed_until: ms(format!("c_{i}")),
                claimed_by: str_of(item, &format!("o_{i}")).map(str::to_owned),
                resent: ms(format!("r_{i}")),
            });
        }
        let received = match item.get("rl") {
            Some(AttributeValue::L(list)) => list
                .iter()
                .map(|v| {
                    v.as_s()
                        .ok()
                        .and_then(|j| serde_json::from_str(j).ok())
                        .ok_or_else(|| corrupt("reports"))
                })
                .collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        Ok(Row {
            id,
            event,
            received_at: str_of(item, "received_at")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| corrupt("received_at"))?,
            reports: num(item, "reports")
                .and_then(|r| u32::try_from(r).ok())
                .ok_or_else(|| corrupt("reports"))?,
            deliveries,
            received,
        })
    }

    /// The item without per-delivery state other than each channel.
    pub(crate) fn to_item(&self) -> Item {
        let mut item = Item::from([
            ("pk".to_owned(), s("EVENT")),
            ("sk".to_owned(), s(&pad(self.id))),
            (
                "event".to_owned(),
                s(&serde_json::to_string(&self.event).unwrap_or_default()),
            ),
            ("received_at".to_owned(), s(&self.received_at.to_string())),
            ("reports".to_owned(), n(i64::from(self.reports))),
            (
                "rl".to_owned(),
                AttributeValue::L(self.received.iter().map(report_value).collect()),
            ),
        ]);
        // The keys of the listing indexes (an unknown host's event is in neither).
        if let Some(c) = &self.event.cluster {
            item.insert(crate::CLUSTER_KEY.to_owned(), s(c));
        }
        if let Some(c) = &self.event.customer {
            item.insert(crate::CUSTOMER_KEY.to_owned(), s(c));
        }
        for (i, d) in self.deliveries.iter().enumerate() {
            item.insert(format!("ch_{i}"), s(&d.status.channel));
            item.insert(format!("a_{i}"), n(0));
            if d.status.reminder {
                item.insert(format!("k_{i}"), s(REMINDER));
            }
        }
        item
    }

    pub(crate) fn stored(&self) -> StoredEvent {
        StoredEvent {
            id: numbered_event(self.id),
            event: self.event.clone(),
            received_at: self.received_at,
            reports: self.reports,
            deliveries: self.deliveries.iter().map(|d| d.status.clone()).collect(),
        }
    }
}

/// A report as an element of `rl`.
pub(crate) fn report_value(r: &StoredReport) -> AttributeValue {
    s(&serde_json::to_string(r).unwrap_or_default())
}

pub(crate) fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

pub(crate) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn str_of<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

pub(crate) fn num(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

pub(crate) fn bool_of(item: &Item, name: &str) -> bool {
    item.get(name)
        .and_then(|v| v.as_bool().ok())
        .copied()
        .unwrap_or(false)
}

pub(crate) fn pad(id: i64) -> String {
    format!("{id:019}")
}

pub(crate) fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// A new event id: the millisecond of receipt and two random digits.
pub(crate) fn new_event_id(now: Timestamp) -> i64 {
    now.as_millisecond().max(0) * 100 + i64::from(fastrand::u8(..100))
}

/// The ad-hoc windows of the windows item (if there is one) that end after `after`, by start.
pub(crate) fn windows_ending_after(item: Option<&Item>, after: Timestamp) -> Vec<Maintenance> {
    let mut found: Vec<Maintenance> = item
        .map(windows_of)
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.window.end > after)
        .collect();
    found.sort_by_key(|m| (m.window.start, m.id));
    found
}

/// The ad-hoc windows in the windows item; an entry that does not parse is skipped, with a
/// warning.
fn windows_of(item: &Item) -> Vec<Maintenance> {
    let Some(AttributeValue::M(w)) = item.get("w") else {
        return Vec::new();
    };
    w.iter()
        .filter_map(|(id, v)| {
            let parsed = id.parse().ok().zip(stored_window(v));
            if parsed.is_none() {
                tracing::warn!(id, "an ad-hoc window in DynamoDB does not parse; skipped");
            }
            parsed.map(|(id, window)| Maintenance { id, window })
        })
        .collect()
}

/// An ad-hoc window as the windows item stores it (JSON), or `None` if it does not parse.
pub(crate) fn stored_window(v: &AttributeValue) -> Option<NewMaintenance> {
    serde_json::from_str(v.as_s().ok()?).ok()
}
