//! Phase 2: meaning. Turns the schema into an [`Inventory`], collecting every problem.

use std::collections::HashMap;
use std::ops::Range;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, SpanRelativeTo};

use super::schema::{self, S};
use super::{ConfigError, ConfigErrorKind as K, ConfigErrors};
use crate::inventory::{
    ApiKey, Cluster, ClusterId, Customer, CustomerId, EventPolicy, HostIndex, Inventory,
    MaintenancePolicy, MessageKind, Node, NodeId, Role, Route, ServerPolicy, TlsFiles, WindowId,
};
use crate::keys::KeyHash;
use crate::retry::RetryPolicy;
use crate::template::{Part, Scope, Templates};
use crate::window::{Grace, MaintenanceWindow, Owner};

/// Default grace: a reboot a few minutes early still counts, and so do late reboots and
/// failbacks in the half hour after a window closes.
pub(super) const DEFAULT_GRACE: Grace = Grace {
    before: SignedDuration::from_mins(5),
    after: SignedDuration::from_mins(30),
};

/// Collects problems while building.
pub(super) struct Ctx {
    pub errs: Vec<ConfigError>,
}

impl Ctx {
    pub fn err(&mut self, span: Range<usize>, kind: K) {
        self.errs.push(ConfigError { span, kind });
    }

    pub fn time_zone(&mut self, s: &S<String>) -> Option<TimeZone> {
        match TimeZone::get(s.get_ref()) {
            Ok(tz) => Some(tz),
            Err(_) => {
                self.err(
                    s.span(),
                    K::UnknownTimeZone {
                        name: s.get_ref().clone(),
                    },
                );
                None
            }
        }
    }

    /// A non-negative duration; days are 24 hours.
    pub fn duration(&mut self, s: &S<String>) -> Option<SignedDuration> {
        let value = s.get_ref();
        let parsed = value
            .parse::<Span>()
            .and_then(|sp| sp.to_duration(SpanRelativeTo::days_are_24_hours()));
        match parsed {
            Ok(d) if d.is_negative() => {
                self.err(
                    s.span(),
                    K::NegativeDuration {
                        value: value.clone(),
                    },
                );
                None
            }
            Ok(d) => Some(d),
            Err(source) => {
                self.err(
                    s.span(),
                    K::Duration {
                        value: value.clone(),
                        source,
                    },
                );
                None
            }
        }
    }

    /// A duration that must be longer than zero.
    pub fn positive_duration(&mut self, s: &S<String>) -> Option<SignedDuration> {
        let d = self.duration(s)?;
        if d.is_zero() {
            self.err(
                s.span(),
                K::ZeroDuration {
                    value: s.get_ref().clone(),
                },
            );
            return None;
        }
        Some(d)
    }

    pub fn grace(&mut self, s: Option<&S<schema::GraceSection>>, inherited: Grace) -> Grace {
        let Some(g) = s else { return inherited };
        let g = g.get_ref();
        Grace {
            before: g
                .before
                .as_ref()
                .and_then(|b| self.duration(b))
                .unwrap_or(inherited.before),
            after: g
                .after
                .as_ref()
                .and_then(|a| self.duration(a))
                .unwrap_or(inherited.after),
        }
    }

    fn name(&mut self, s: &S<String>) {
        if s.get_ref().trim().is_empty() {
            self.err(s.span(), K::EmptyName);
        }
    }
}

/// Records names and reports the second definition of any.
pub(super) struct Names<'a> {
    what: &'static str,
    src_lines: &'a [usize],
    seen: HashMap<String, (usize, u32)>,
}

impl<'a> Names<'a> {
    pub fn new(what: &'static str, src_lines: &'a [usize]) -> Self {
        Names {
            what,
            src_lines,
            seen: HashMap::new(),
        }
    }

    /// Registers `name` with index `idx`; false (and an error) when it was already taken.
    pub fn add(&mut self, ctx: &mut Ctx, name: &S<String>, idx: u32) -> bool {
        ctx.name(name);
        let key = name.get_ref().to_ascii_lowercase();
        if let Some(&(first, _)) = self.seen.get(&key) {
            let first_line = self.src_lines.partition_point(|&nl| nl < first) + 1;
            ctx.err(
                name.span(),
                K::Duplicate {
                    what: self.what,
                    name: name.get_ref().clone(),
                    first_line,
                },
            );
            return false;
        }
        self.seen.insert(key, (name.span().start, idx));
        true
    }

    /// The index registered under `name`, if any.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.seen.get(&name.to_ascii_lowercase()).map(|&(_, i)| i)
    }

    /// The index registered under `name`, or an "unknown" error.
    pub fn resolve(&self, ctx: &mut Ctx, name: &S<String>) -> Option<u32> {
        let found = self.get(name.get_ref());
        if found.is_none() {
            ctx.err(
                name.span(),
                K::Unknown {
                    what: self.what,
                    name: name.get_ref().clone(),
                },
            );
        }
        found
    }
}

/// Whether `host` is a plausible host name.
pub fn valid_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

pub(super) fn build(file: schema::File, src: &str) -> Result<Inventory, ConfigErrors> {
    let mut ctx = Ctx { errs: Vec::new() };
    // Byte offsets of the newlines, to name the line of a first definition.
    let lines: Vec<usize> = src.match_indices('\n').map(|(i, _)| i).collect();
    let default_tz = file
        .defaults
        .time_zone
        .as_ref()
        .and_then(|s| ctx.time_zone(s))
        .unwrap_or(TimeZone::UTC);
    let default_grace = ctx.grace(file.defaults.grace.as_ref(), DEFAULT_GRACE);

    let Customers {
        names: customer_names,
        list: mut customers,
        grace: customer_grace,
    } = customers(&mut ctx, &file, &lines, &default_tz, default_grace);

    let Clusters {
        names: cluster_names,
        node_names,
        list: mut clusters,
        grace: cluster_grace,
        mut nodes,
    } = clusters(
        &mut ctx,
        &file,
        &lines,
        (&customer_names, &customers, &customer_grace),
        &default_tz,
        default_grace,
    );

    let owners = super::windows::Owners {
        customers: &customer_names,
        clusters: &cluster_names,
        nodes: &node_names,
        customer_list: &customers,
        cluster_list: &clusters,
        node_list: &nodes,
        customer_grace: &customer_grace,
        cluster_grace: &cluster_grace,
        default_tz: &default_tz,
        default_grace,
        lines: &lines,
    };
    let mut windows = super::windows::build(&mut ctx, &file.windows, &owners);
    attach_windows(&mut clusters, &nodes, &windows);

    let (channels, channel_names) = super::channels::build(&mut ctx, &file.channels, &lines);
    let routes = file
        .routes
        .iter()
        .map(|r| {
            route(
                &mut ctx,
                r,
                &customer_names,
                &cluster_names,
                &channel_names,
                &clusters,
                &customers,
            )
        })
        .collect();

    let keys = keys(&mut ctx, &file, &lines, &customer_names);

    let templates = templates(&mut ctx, &file);

    let events = file.events.as_ref().map_or_else(EventPolicy::default, |e| {
        event_policy(&mut ctx, e.get_ref())
    });

    let delivery = file
        .delivery
        .as_ref()
        .map_or_else(RetryPolicy::default, |e| {
            retry_policy(&mut ctx, e.get_ref())
        });

    let (server, public_url, trusted_proxies, tls) = server_settings(&mut ctx, &file);
    let maintenance = file
        .maintenance
        .as_ref()
        .map_or_else(MaintenancePolicy::default, |e| {
            maintenance_policy(&mut ctx, e.get_ref())
        });

    if !ctx.errs.is_empty() {
        return Err(ConfigErrors(ctx.errs));
    }
    // The lists live as long as the service: no room for growth (a third of their size).
    customers.shrink_to_fit();
    clusters.shrink_to_fit();
    nodes.shrink_to_fit();
    windows.shrink_to_fit();
    Ok(Inventory {
        default_time_zone: default_tz,
        customers,
        clusters,
        windows,
        channels,
        routes,
        keys,
        events,
        delivery,
        server,
        public_url,
        trusted_proxies,
        tls,
        maintenance,
        templates,
        hosts: HostIndex::new(&nodes),
        nodes,
    })
}

/// Lists each window on the clusters it applies to: its node's, its cluster, or every cluster
/// of its customer.
fn attach_windows(clusters: &mut [Cluster], nodes: &[Node], windows: &[MaintenanceWindow]) {
    for (wi, w) in windows.iter().enumerate() {
        let id = WindowId(wi as u32);
        match w.owner {
            Owner::Node(n) => clusters[nodes[n.index()].cluster.index()].windows.push(id),
            Owner::Cluster(c) => clusters[c.index()].windows.push(id),
            Owner::Customer(cu) => clusters
                .iter_mut()
                .filter(|c| c.customer == Some(cu))
                .for_each(|c| c.windows.push(id)),
        }
    }
}

/// `[server]`: its policy, `public_url`, `trusted_proxies` and TLS files.
fn server_settings(
    ctx: &mut Ctx,
    file: &schema::File,
) -> (
    ServerPolicy,
    Option<String>,
    Vec<ipnet::IpNet>,
    Option<TlsFiles>,
) {
    let server = file
        .server
        .as_ref()
        .map_or_else(ServerPolicy::default, |e| server_policy(ctx, e.get_ref()));
    let public_url = file
        .server
        .as_ref()
        .and_then(|e| e.get_ref().public_url.as_ref())
        .map(|u| {
            super::channels::url(ctx, u)
                .trim_end_matches('/')
                .to_owned()
        });
    let trusted_proxies = file
        .server
        .as_ref()
        .and_then(|e| e.get_ref().trusted_proxies.as_ref())
        .map(|list| list.iter().filter_map(|n| network(ctx, n)).collect())
        .unwrap_or_default();
    let tls = file
        .server
        .as_ref()
        .and_then(|e| tls_files(ctx, e.get_ref()));
    (server, public_url, trusted_proxies, tls)
}

/// The customers, by name for references, with their graces.
struct Customers<'a> {
    names: Names<'a>,
    list: Vec<Customer>,
    grace: Vec<Grace>,
}

fn customers<'a>(
    ctx: &mut Ctx,
    file: &schema::File,
    lines: &'a [usize],
    default_tz: &TimeZone,
    default_grace: Grace,
) -> Customers<'a> {
    let mut customer_names = Names::new("customer", lines);
    let mut customers = Vec::new();
    let mut customer_grace = Vec::new();
    for c in &file.customers {
        let c = c.get_ref();
        customer_names.add(ctx, &c.name, customers.len() as u32);
        let time_zone = c
            .time_zone
            .as_ref()
            .and_then(|s| ctx.time_zone(s))
            .unwrap_or(default_tz.clone());
        customer_grace.push(ctx.grace(c.grace.as_ref(), default_grace));
        customers.push(Customer {
            name: c.name.get_ref().clone(),
            time_zone,
        });
    }
    Customers {
        names: customer_names,
        list: customers,
        grace: customer_grace,
    }
}

/// The clusters and their nodes, by name for references, with the clusters' graces.
struct Clusters<'a> {
    names: Names<'a>,
    node_names: Names<'a>,
    list: Vec<Cluster>,
    grace: Vec<Grace>,
    nodes: Vec<Node>,
}

fn clusters<'a>(
    ctx: &mut Ctx,
    file: &schema::File,
    lines: &'a [usize],
    (customer_names, customers, customer_grace): (&Names<'_>, &[Customer], &[Grace]),
    default_tz: &TimeZone,
    default_grace: Grace,
) -> Clusters<'a> {
    let mut cluster_names = Names::new("cluster", lines);
    let mut node_names = Names::new("node", lines);
    let mut clusters = Vec::new();
    let mut cluster_grace = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    for (ci, c) in file.clusters.iter().enumerate() {
        let c = c.get_ref();
        let cid = ClusterId(ci as u32);
        cluster_names.add(ctx, &c.name, cid.0);
        let customer = c
            .customer
            .as_ref()
            .and_then(|s| customer_names.resolve(ctx, s))
            .map(CustomerId);
        let inherited_tz = customer.map_or(default_tz, |cu| &customers[cu.index()].time_zone);
        let time_zone = c
            .time_zone
            .as_ref()
            .and_then(|s| ctx.time_zone(s))
            .unwrap_or(inherited_tz.clone());
        let inherited_grace = customer.map_or(default_grace, |cu| customer_grace[cu.index()]);
        cluster_grace.push(ctx.grace(c.grace.as_ref(), inherited_grace));
        let entries = c.nodes.get_ref();
        if entries.len() < 2 {
            ctx.err(
                c.nodes.span(),
                K::TooFewNodes {
                    cluster: c.name.get_ref().clone(),
                    found: entries.len(),
                },
            );
        }
        let members = cluster_nodes(ctx, c, cid, &clusters, &mut nodes, &mut node_names);
        let preferred = preferred(ctx, c, &members, &nodes);
        clusters.push(Cluster {
            name: c.name.get_ref().clone(),
            customer,
            nodes: members,
            time_zone,
            preferred,
            windows: Vec::new(),
        });
    }
    Clusters {
        names: cluster_names,
        node_names,
        list: clusters,
        grace: cluster_grace,
        nodes,
    }
}

/// Cluster `c`'s nodes (at least two), each name and alias valid and in no other cluster.
fn cluster_nodes(
    ctx: &mut Ctx,
    c: &schema::ClusterSection,
    cid: ClusterId,
    clusters: &[Cluster],
    nodes: &mut Vec<Node>,
    node_names: &mut Names<'_>,
) -> Vec<NodeId> {
    let entries = c.nodes.get_ref();
    let mut members = Vec::new();
    for entry in entries {
        let span = entry.span();
        let e = entry.get_ref();
        let nid = NodeId(nodes.len() as u32);
        for name in std::iter::once(&e.name).chain(&e.aliases) {
            if !valid_host_name(name) {
                ctx.err(
                    span.clone(),
                    K::HostName {
                        value: name.clone(),
                    },
                );
                continue;
            }
            if let Some(prev) = node_names.get(name) {
                ctx.err(
                    span.clone(),
                    K::NodeInTwoClusters {
                        node: name.clone(),
                        cluster: clusters_name(clusters, nodes, NodeId(prev), &c.name),
                    },
                );
                continue;
            }
            // Registered for `window.node = "..."` references (aliases too).
            node_names.add(ctx, &S::new(span.clone(), name.clone()), nid.0);
        }
        nodes.push(Node {
            name: e.name.clone(),
            aliases: e.aliases.clone(),
            cluster: cid,
        });
        members.push(nid);
    }
    members
}

/// Cluster `c`'s `preferred` node, which must be one of its `members`.
fn preferred(
    ctx: &mut Ctx,
    c: &schema::ClusterSection,
    members: &[NodeId],
    nodes: &[Node],
) -> Option<NodeId> {
    let entries = c.nodes.get_ref();
    c.preferred.as_ref().and_then(|p| {
        let found = members.iter().copied().find(|&n| {
            let node = &nodes[n.index()];
            node.name == *p.get_ref() || node.aliases.contains(p.get_ref())
        });
        if found.is_none() {
            ctx.err(
                p.span(),
                K::PreferredNotANode {
                    cluster: c.name.get_ref().clone(),
                    node: p.get_ref().clone(),
                    nodes: entries
                        .iter()
                        .map(|e| e.get_ref().name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                },
            );
        }
        found
    })
}

/// The API keys: a valid hash, an admin or one customer, a known role.
fn keys(
    ctx: &mut Ctx,
    file: &schema::File,
    lines: &[usize],
    customer_names: &Names<'_>,
) -> Vec<ApiKey> {
    let mut key_names = Names::new("key", lines);
    let mut keys = Vec::new();
    for k in &file.keys {
        let k = k.get_ref();
        key_names.add(ctx, &k.name, keys.len() as u32);
        let hash = KeyHash::parse(k.hash.get_ref())
            .map_err(|e| ctx.err(k.hash.span(), e.into()))
            .ok();
        let admin = k.admin.as_ref().is_some_and(|a| *a.get_ref());
        let customer = k
            .customer
            .as_ref()
            .and_then(|s| customer_names.resolve(ctx, s))
            .map(CustomerId);
        if admin == k.customer.is_some() {
            ctx.err(
                k.name.span(),
                K::KeyOwner {
                    name: k.name.get_ref().clone(),
                },
            );
        }
        let role = match k.role.as_ref() {
            None => Some(Role::Operator),
            Some(r) => Role::from_name(r.get_ref()).or_else(|| {
                ctx.err(
                    r.span(),
                    K::KeyRole {
                        value: r.get_ref().clone(),
                    },
                );
                None
            }),
        };
        if let (Some(hash), Some(role)) = (hash, role) {
            keys.push(ApiKey {
                name: k.name.get_ref().clone(),
                hash,
                customer,
                role,
            });
        }
    }
    keys
}

/// The templates: global, then each customer's, then each cluster's.
fn templates(ctx: &mut Ctx, file: &schema::File) -> Templates {
    let mut templates = Templates::default();
    add_templates(ctx, &mut templates, Scope::Global, file.templates.as_ref());
    for (i, c) in file.customers.iter().enumerate() {
        add_templates(
            ctx,
            &mut templates,
            Scope::Customer(CustomerId(i as u32)),
            c.get_ref().templates.as_ref(),
        );
    }
    for (i, c) in file.clusters.iter().enumerate() {
        add_templates(
            ctx,
            &mut templates,
            Scope::Cluster(ClusterId(i as u32)),
            c.get_ref().templates.as_ref(),
        );
    }
    templates
}

fn clusters_name(clusters: &[Cluster], nodes: &[Node], id: NodeId, current: &S<String>) -> String {
    nodes
        .get(id.index())
        .and_then(|n| clusters.get(n.cluster.index()))
        .map_or_else(|| current.get_ref().clone(), |c| c.name.clone())
}

fn route(
    ctx: &mut Ctx,
    r: &S<schema::RouteSection>,
    customer_names: &Names,
    cluster_names: &Names,
    channel_names: &Names,
    clusters: &[Cluster],
    customers: &[Customer],
) -> Route {
    let r = r.get_ref();
    let customer = r
        .customer
        .as_ref()
        .and_then(|s| customer_names.resolve(ctx, s))
        .map(CustomerId);
    let cluster = r
        .cluster
        .as_ref()
        .and_then(|s| cluster_names.resolve(ctx, s))
        .map(ClusterId);
    if let (Some(cu), Some(cl), Some(cl_span)) = (customer, cluster, r.cluster.as_ref()) {
        let owner = clusters[cl.index()].customer;
        if owner != Some(cu) {
            ctx.err(
                cl_span.span(),
                K::RouteMismatch {
                    cluster: clusters[cl.index()].name.clone(),
                    owner: owner.map_or_else(
                        || "(none)".to_owned(),
                        |o| customers[o.index()].name.clone(),
                    ),
                    customer: customers[cu.index()].name.clone(),
                },
            );
        }
    }
    let verdicts = match &r.verdicts {
        None => MessageKind::ROUTED_BY_DEFAULT.to_vec(),
        Some(list) => list
            .get_ref()
            .iter()
            .filter_map(|v| {
                let found = MessageKind::from_name(v.get_ref());
                if found.is_none() {
                    ctx.err(
                        v.span(),
                        K::Verdict {
                            value: v.get_ref().clone(),
                        },
                    );
                }
                found
            })
            .collect(),
    };
    if r.channels.get_ref().is_empty() {
        ctx.err(r.channels.span(), K::NoChannels);
    }
    let channels = r
        .channels
        .get_ref()
        .iter()
        .filter_map(|c| channel_names.resolve(ctx, c).map(|i| i as usize))
        .collect();
    Route {
        customer,
        cluster,
        verdicts,
        channels,
    }
}

fn add_templates(
    ctx: &mut Ctx,
    templates: &mut Templates,
    scope: Scope,
    set: Option<&S<schema::TemplateSet>>,
) {
    let Some(set) = set else { return };
    let set = set.get_ref();
    for (verdict, pair) in [
        (MessageKind::Planned, &set.planned),
        (MessageKind::Unplanned, &set.unplanned),
        (MessageKind::UnknownHost, &set.unknown_host),
        (MessageKind::ClusterStart, &set.cluster_start),
        (MessageKind::NotBack, &set.not_back),
        (MessageKind::Back, &set.back),
    ] {
        let Some(pair) = pair else { continue };
        for (part, src) in [
            (Part::Subject, &pair.subject),
            (Part::Body, &pair.body),
            (Part::Sms, &pair.sms),
        ] {
            if let Some(src) = src
                && let Err(e) = templates.add(scope, verdict, part, src.get_ref().clone())
            {
                ctx.err(src.span(), e.into());
            }
        }
    }
}

/// A positive duration when given (an error is recorded when it is not), else `default`.
fn duration_or(ctx: &mut Ctx, s: &Option<S<String>>, default: SignedDuration) -> SignedDuration {
    s.as_ref()
        .and_then(|s| ctx.positive_duration(s))
        .unwrap_or(default)
}

fn retry_policy(ctx: &mut Ctx, e: &schema::DeliverySection) -> RetryPolicy {
    let d = RetryPolicy::default();
    RetryPolicy {
        first_retry: duration_or(ctx, &e.first_retry, d.first_retry),
        max_backoff: duration_or(ctx, &e.max_backoff, d.max_backoff),
        give_up_after: duration_or(ctx, &e.give_up_after, d.give_up_after),
        timeout: duration_or(ctx, &e.timeout, d.timeout),
    }
}

fn server_policy(ctx: &mut Ctx, e: &schema::ServerSection) -> ServerPolicy {
    let d = ServerPolicy::default();
    ServerPolicy {
        header_timeout: duration_or(ctx, &e.header_timeout, d.header_timeout),
        idle_timeout: duration_or(ctx, &e.idle_timeout, d.idle_timeout),
        request_timeout: duration_or(ctx, &e.request_timeout, d.request_timeout),
        max_connections: count_or(
            ctx,
            "max_connections",
            &e.max_connections,
            d.max_connections,
        ),
    }
}

/// A network in CIDR notation, or one address (a network of one).
fn network(ctx: &mut Ctx, s: &S<String>) -> Option<ipnet::IpNet> {
    let v = s.get_ref().trim();
    let parsed = v
        .parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| v.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from));
    if parsed.is_none() {
        ctx.err(
            s.span(),
            K::Network {
                value: s.get_ref().clone(),
            },
        );
    }
    parsed.map(|n| n.trunc())
}

/// `tls_cert` and `tls_key` together (absolute paths), `tls_client_ca` only with them.
fn tls_files(ctx: &mut Ctx, e: &schema::ServerSection) -> Option<TlsFiles> {
    let mut path = |field: &'static str, s: &Option<S<String>>| {
        let s = s.as_ref()?;
        let p = std::path::PathBuf::from(s.get_ref());
        if p.is_absolute() {
            Some(p)
        } else {
            ctx.err(
                s.span(),
                K::NotAbsolute {
                    field,
                    value: s.get_ref().clone(),
                },
            );
            None
        }
    };
    let cert = path("tls_cert", &e.tls_cert);
    let key = path("tls_key", &e.tls_key);
    let client_ca = path("tls_client_ca", &e.tls_client_ca);
    let lone = [
        (&e.tls_cert, e.tls_key.is_none(), "tls_cert", "tls_key"),
        (&e.tls_key, e.tls_cert.is_none(), "tls_key", "tls_cert"),
        (
            &e.tls_client_ca,
            e.tls_cert.is_none(),
            "tls_client_ca",
            "tls_cert",
        ),
    ];
    for (given, missing, field, needs) in lone {
        if let (Some(s), true) = (given, missing) {
            ctx.err(
                s.span(),
                K::Requires {
                    field,
                    needs,
                    hint: " (HTTPS needs the certificate and its key)",
                },
            );
        }
    }
    Some(TlsFiles {
        cert: cert?,
        key: key?,
        client_ca,
    })
}

fn maintenance_policy(ctx: &mut Ctx, e: &schema::MaintenanceSection) -> MaintenancePolicy {
    let d = MaintenancePolicy::default();
    let max_duration = duration_or(ctx, &e.max_duration, d.max_duration);
    if max_duration > crate::limits::MAX_SPAN
        && let Some(s) = &e.max_duration
    {
        ctx.err(
            s.span(),
            K::TooLong {
                field: "max_duration",
                value: s.get_ref().clone(),
                max: "400d",
            },
        );
    }
    MaintenancePolicy { max_duration }
}

/// A count from 1 to `u32::MAX`.
fn count_or(ctx: &mut Ctx, field: &'static str, s: &Option<S<i64>>, default: u32) -> u32 {
    match s {
        Some(c) => u32::try_from(*c.get_ref())
            .ok()
            .filter(|&n| n >= 1)
            .unwrap_or_else(|| {
                ctx.err(
                    c.span(),
                    K::Count {
                        field,
                        value: *c.get_ref(),
                    },
                );
                default
            }),
        None => default,
    }
}

fn event_policy(ctx: &mut Ctx, e: &schema::EventsSection) -> EventPolicy {
    let d = EventPolicy::default();
    let merge_within = duration_or(ctx, &e.merge_within, d.merge_within);
    let flapping_within = duration_or(ctx, &e.flapping_within, d.flapping_within);
    let failback_within = duration_or(ctx, &e.failback_within, d.failback_within);
    let flapping_count = count_or(ctx, "flapping_count", &e.flapping_count, d.flapping_count);
    let keep = duration_or(ctx, &e.keep, d.keep);
    if keep < SignedDuration::from_hours(24)
        && let Some(s) = &e.keep
    {
        ctx.err(
            s.span(),
            K::TooShort {
                field: "keep",
                value: s.get_ref().clone(),
                min: "1d",
            },
        );
    }
    EventPolicy {
        keep,
        merge_within,
        flapping_count,
        flapping_within,
        failback_within,
        first_report_is_start: e.first_report_is_start.unwrap_or(d.first_report_is_start),
    }
}
