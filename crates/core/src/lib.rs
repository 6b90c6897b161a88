//! failover-notify's pure domain: the inventory, maintenance windows, classification of
//! failovers, event history rules and messages.
//!
//! This crate never reads a clock, a file, the environment or the network: `now` and every
//! input are parameters, so each function here answers the same way every time. It must not
//! depend on tokio, a database, an HTTP stack or an AWS SDK.
//!
//! # Layout
//! - [`body`]: JSON bodies of string fields, errors naming the field
//! - [`config`]: parse and validate the TOML inventory, errors with line and column
//! - [`inventory`]: the validated customers, clusters, nodes, channels, routes and keys
//! - [`window`]: maintenance windows and their occurrences, DST-correct via jiff
//! - [`cron`]: AWS `cron(...)` and 5-field cron via croner (the only jiff 0.2 boundary)
//! - [`classify`]: planned / unplanned / unknown-host for a host at an instant
//! - [`event`]: merging, flapping and failback from recent history
//! - [`decide`]: what a report does to a cluster's history, and what a new event is
//! - [`ad_hoc`]: ad-hoc maintenance windows, put in place through the API
//! - [`listing`]: occurrences of many windows for calendars (`windows`, ICS)
//! - [`ics`]: RFC 5545 calendar output
//! - [`message`]: the template context of a classified event
//! - [`template`]: subject and body per verdict (minijinja)
//! - [`report`]: the report body sent by cluster nodes, and its validation
//! - [`retry`]: delivery backoff and give-up
//! - [`text`]: characters refused in free text, and printing stored text safely
//! - [`keys`]: API key hashes
//! - [`limits`]: the instants and durations accepted from outside
//! - [`lambda_import`]: convert the original Python handler's configuration

pub mod ad_hoc;
pub mod body;
pub mod classify;
pub mod config;
pub mod cron;
pub mod decide;
pub mod event;
pub mod ics;
pub mod inventory;
pub mod keys;
pub mod lambda_import;
pub mod limits;
pub mod listing;
pub mod message;
pub mod report;
pub mod retry;
pub mod template;
pub mod text;
pub mod window;
