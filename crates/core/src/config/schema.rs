//! The inventory file as written: serde types that keep every value's position.
//!
//! Nothing here is checked beyond TOML syntax and field names; `validate.rs` turns these
//! types into an [`Inventory`](crate::inventory::Inventory) and reports every problem with
//! the span of the value that caused it.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use toml::Spanned;

/// A value together with its byte range in the source file.
pub type S<T> = Spanned<T>;

/// The whole inventory file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub events: Option<S<EventsSection>>,
    #[serde(default)]
    pub delivery: Option<S<DeliverySection>>,
    #[serde(default)]
    pub server: Option<S<ServerSection>>,
    #[serde(default)]
    pub maintenance: Option<S<MaintenanceSection>>,
    #[serde(default)]
    pub templates: Option<S<TemplateSet>>,
    #[serde(default)]
    pub customers: Vec<S<CustomerSection>>,
    #[serde(default)]
    pub clusters: Vec<S<ClusterSection>>,
    #[serde(default)]
    pub windows: Vec<S<WindowSection>>,
    #[serde(default)]
    pub channels: Vec<S<ChannelSection>>,
    #[serde(default)]
    pub routes: Vec<S<RouteSection>>,
    #[serde(default)]
    pub keys: Vec<S<KeySection>>,
}

impl File {
    /// Adds a later piece of the same file (see `config::pieces`): arrays are concatenated,
    /// and a table set in both is an error naming the key and the later table's span.
    pub fn absorb(&mut self, later: File) -> Result<(), (&'static str, std::ops::Range<usize>)> {
        fn once<T>(
            key: &'static str,
            slot: &mut Option<S<T>>,
            later: Option<S<T>>,
        ) -> Result<(), (&'static str, std::ops::Range<usize>)> {
            match (slot.is_some(), later) {
                (true, Some(l)) => Err((key, l.span())),
                (false, Some(l)) => {
                    *slot = Some(l);
                    Ok(())
                }
                (_, None) => Ok(()),
            }
        }
        let File {
            defaults,
            events,
            delivery,
            server,
            maintenance,
            templates,
            customers,
            clusters,
            windows,
            channels,
            routes,
            keys,
        } = later;
        once(
            "defaults.time_zone",
            &mut self.defaults.time_zone,
            defaults.time_zone,
        )?;
        once("defaults.grace", &mut self.defaults.grace, defaults.grace)?;
        once("events", &mut self.events, events)?;
        once("delivery", &mut self.delivery, delivery)?;
        once("server", &mut self.server, server)?;
        once("maintenance", &mut self.maintenance, maintenance)?;
        once("templates", &mut self.templates, templates)?;
        self.customers.extend(customers);
        self.clusters.extend(clusters);
        self.windows.extend(windows);
        self.channels.extend(channels);
        self.routes.extend(routes);
        self.keys.extend(keys);
        Ok(())
    }
}

/// `[defaults]`: values every customer, cluster and window inherits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub time_zone: Option<S<String>>,
    pub grace: Option<S<GraceSection>>,
}

/// `grace = { before = "15m", after = "1h" }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraceSection {
    pub before: Option<S<String>>,
    pub after: Option<S<String>>,
}

/// `[events]`: merging, flapping and failback detection.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    pub merge_within: Option<S<String>>,
    pub flapping_count: Option<S<i64>>,
    pub flapping_within: Option<S<String>>,
    pub failback_within: Option<S<String>>,
    pub first_report_is_start: Option<bool>,
    pub keep: Option<S<String>>,
}

/// `[delivery]`: retry timing of the outbox worker.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySection {
    pub first_retry: Option<S<String>>,
    pub max_backoff: Option<S<String>>,
    pub give_up_after: Option<S<String>>,
    pub timeout: Option<S<String>>,
}

/// `[server]`: connection limits of `serve`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub header_timeout: Option<S<String>>,
    pub idle_timeout: Option<S<String>>,
    pub request_timeout: Option<S<String>>,
    pub max_connections: Option<S<i64>>,
    pub public_url: Option<S<String>>,
    pub trusted_proxies: Option<Vec<S<String>>>,
    pub tls_cert: Option<S<String>>,
    pub tls_key: Option<S<String>>,
    pub tls_client_ca: Option<S<String>>,
}

/// `[maintenance]`: limits of ad-hoc windows.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSection {
    pub max_duration: Option<S<String>>,
}

/// `subject`/`body`/`sms` for one verdict.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatePair {
    pub subject: Option<S<String>>,
    pub body: Option<S<String>>,
    pub sms: Option<S<String>>,
}

/// `[templates]` (global) or `templates` inside a customer or cluster.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSet {
    pub planned: Option<TemplatePair>,
    pub unplanned: Option<TemplatePair>,
    #[serde(rename = "unknown-host")]
    pub unknown_host: Option<TemplatePair>,
    #[serde(rename = "cluster-start")]
    pub cluster_start: Option<TemplatePair>,
    #[serde(rename = "not-back")]
    pub not_back: Option<TemplatePair>,
    pub back: Option<TemplatePair>,
}

/// `[[customers]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerSection {
    pub name: S<String>,
    pub time_zone: Option<S<String>>,
    pub grace: Option<S<GraceSection>>,
    pub templates: Option<S<TemplateSet>>,
}

/// `[[clusters]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    pub name: S<String>,
    pub customer: Option<S<String>>,
    pub nodes: S<Vec<S<NodeEntry>>>,
    pub time_zone: Option<S<String>>,
    pub preferred: Option<S<String>>,
    pub grace: Option<S<GraceSection>>,
    pub templates: Option<S<TemplateSet>>,
}

/// A node: `"host"` or `{ name = "host", aliases = ["old-name"] }`.
#[derive(Debug)]
pub struct NodeEntry {
    pub name: String,
    pub aliases: Vec<String>,
}

impl<'de> Deserialize<'de> for NodeEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = NodeEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a host name or a table `{ name = \"...\", aliases = [...] }`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeEntry, E> {
                Ok(NodeEntry {
                    name: v.to_owned(),
                    aliases: Vec::new(),
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeEntry, A::Error> {
                let mut name = None;
                let mut aliases = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "name" => name = Some(map.next_value::<String>()?),
                        "aliases" => aliases = map.next_value::<Vec<String>>()?,
                        other => return Err(de::Error::unknown_field(other, &["name", "aliases"])),
                    }
                }
                let name = name.ok_or_else(|| de::Error::missing_field("name"))?;
                Ok(NodeEntry { name, aliases })
            }
        }
        deserializer.deserialize_any(NodeVisitor)
    }
}

/// A weekday as written: a name (`"wednesday"`, `"wed"`) or the original's number, Monday = 0.
#[derive(Debug, Clone)]
pub enum DayEntry {
    /// `"wednesday"`, `"Wed"`.
    Name(String),
    /// `2` (Monday = 0, as in the original handler).
    Number(i64),
}

impl<'de> Deserialize<'de> for DayEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DayVisitor;
        impl Visitor<'_> for DayVisitor {
            type Value = DayEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a weekday name such as \"wednesday\" or a number 0-6 (Monday = 0)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DayEntry, E> {
                Ok(DayEntry::Name(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DayEntry, E> {
                Ok(DayEntry::Number(v))
            }
        }
        deserializer.deserialize_any(DayVisitor)
    }
}

/// `[[windows]]`: one recurring or one-off maintenance window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSection {
    pub name: S<String>,
    /// Owner: exactly one of `node`, `cluster`, `customer`.
    pub node: Option<S<String>>,
    pub cluster: Option<S<String>>,
    pub customer: Option<S<String>>,

    /// N-th weekday of the month (1..=5, or -1 for the last).
    pub week: Option<S<i64>>,
    /// Weekday for `week`.
    pub day: Option<S<DayEntry>>,
    /// `"nth-weekday"` (default) or `"monday-weeks"` (the original handler's arithmetic).
    pub calendar: Option<S<String>>,
    /// Weekly on these weekdays.
    pub days: Option<S<Vec<S<DayEntry>>>>,
    /// Monthly on this day of the month (negative counts from the end).
    pub day_of_month: Option<S<i64>>,
    /// AWS `cron(...)` or a 5-field cron expression.
    pub cron: Option<S<String>>,
    /// A one-off window on this date (`"2026-12-01"`).
    pub date: Option<S<String>>,

    /// Move each anchor by this many days (Patch Tuesday + 4 days, SSM's ScheduleOffset).
    pub offset_days: Option<S<i64>>,
    /// The first such weekday after the anchor ("the Saturday after the second Tuesday").
    pub then: Option<S<DayEntry>>,

    /// Local start time `"22:00"`; absent for whole-day windows.
    pub start: Option<S<String>>,
    /// How long: `"4h"`, `"90m"`, `"2d"`.
    pub duration: Option<S<String>>,
    /// For one-off windows: local end `"2026-12-02 06:00"` instead of a duration.
    pub end: Option<S<String>>,
    pub time_zone: Option<S<String>>,
    pub grace: Option<S<GraceSection>>,
}

/// `[[channels]]`: one destination: its `name`, its `kind`, and the settings of that kind,
/// each with its span, which the kind's file under `channels/` reads and checks.
#[derive(Debug)]
pub struct ChannelSection {
    pub name: S<String>,
    pub kind: S<String>,
    pub fields: Vec<(String, S<ChannelValue>)>,
}

impl<'de> Deserialize<'de> for ChannelSection {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ChannelSection;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a channel table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ChannelSection, A::Error> {
                let (mut name, mut kind, mut fields) = (None, None, Vec::new());
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "name" => name = Some(map.next_value()?),
                        "kind" => kind = Some(map.next_value()?),
                        _ => fields.push((key, map.next_value()?)),
                    }
                }
                Ok(ChannelSection {
                    name: name.ok_or_else(|| de::Error::missing_field("name"))?,
                    kind: kind.ok_or_else(|| de::Error::missing_field("kind"))?,
                    fields,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// A channel setting's value, with the span of each array element.
#[derive(Debug)]
pub enum ChannelValue {
    String(String),
    Integer(i64),
    /// No kind reads a float: only its type is kept, for the error.
    Float,
    Boolean(bool),
    Array(Vec<S<ChannelValue>>),
    Table(toml::Table),
}

impl ChannelValue {
    /// What it is, for an error message.
    pub fn type_name(&self) -> &'static str {
        match self {
            ChannelValue::String(_) => "a string",
            ChannelValue::Integer(_) => "an integer",
            ChannelValue::Float => "a float",
            ChannelValue::Boolean(_) => "a boolean",
            ChannelValue::Array(_) => "an array",
            ChannelValue::Table(_) => "a table",
        }
    }
}

impl<'de> Deserialize<'de> for ChannelValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ChannelValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ChannelValue, E> {
                Ok(ChannelValue::String(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<ChannelValue, E> {
                Ok(ChannelValue::String(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ChannelValue, E> {
                Ok(ChannelValue::Integer(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ChannelValue, E> {
                i64::try_from(v)
                    .map(ChannelValue::Integer)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ChannelValue, E> {
                Ok(ChannelValue::Float)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<ChannelValue, E> {
                Ok(ChannelValue::Boolean(b))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ChannelValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(ChannelValue::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ChannelValue, A::Error> {
                toml::Table::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ChannelValue::Table)
            }
        }
        d.deserialize_any(V)
    }
}

/// `[[routes]]`: where a customer's or cluster's events go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    pub customer: Option<S<String>>,
    pub cluster: Option<S<String>>,
    pub verdicts: Option<S<Vec<S<String>>>>,
    pub channels: S<Vec<S<String>>>,
}

/// `[[keys]]`: an API key, stored as its hash.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySection {
    pub name: S<String>,
    pub hash: S<String>,
    pub customer: Option<S<String>>,
    pub admin: Option<S<bool>>,
    pub role: Option<S<String>>,
}
