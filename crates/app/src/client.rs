//! Who is calling: the client's address and whether it came over HTTPS, as the connection
//! says, or as a trusted reverse proxy says (`[server] trusted_proxies`).
//!
//! Only a peer inside one of the trusted networks may speak for the client: from it the
//! address is taken from `Forwarded` (RFC 7239), else `X-Forwarded-For`, as the rightmost hop
//! that is not itself a trusted proxy (every proxy appends the address it saw, so everything
//! left of the last untrusted hop may be forged by the client), and the scheme from the last
//! `proto=` or `X-Forwarded-Proto`. From any other peer those headers are ignored: a forged
//! header changes neither which address is slowed down, nor what is logged, nor whether a
//! cookie is `Secure`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use failover_store::Store;
use ipnet::IpNet;

use crate::state::AppState;

/// The client of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Client {
    /// Its address; `None` when nothing tells it (an in-process test).
    pub ip: Option<IpAddr>,
    /// It reached us over HTTPS (our TLS listener, or a trusted proxy's).
    pub https: bool,
}

/// Marks a request that arrived on a TLS connection (set by [`crate::server`]).
#[derive(Debug, Clone, Copy)]
pub struct Tls;

impl Client {
    /// The client of a request that API Gateway passed on: it is the proxy, and sets
    /// `sourceIp` and `X-Forwarded-Proto` itself.
    pub fn behind_gateway(source_ip: Option<IpAddr>, headers: &HeaderMap) -> Client {
        Client {
            ip: source_ip,
            https: forwarded_proto(headers).unwrap_or(false),
        }
    }

    /// The client of a request with these extensions and headers: a [`Client`] extension set
    /// by a front that already knows it (the Lambda entry, from API Gateway's `sourceIp`);
    /// else the connection's peer, or what a trusted peer says.
    pub fn of(
        extensions: &axum::http::Extensions,
        headers: &HeaderMap,
        trusted: &[IpNet],
    ) -> Client {
        if let Some(c) = extensions.get::<Client>() {
            return *c;
        }
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| canonical(c.0.ip()));
        let tls = extensions.get::<Tls>().is_some();
        match peer {
            Some(p) if is_trusted(p, trusted) => Client {
                ip: Some(forwarded_for(headers, trusted).unwrap_or(p)),
                https: forwarded_proto(headers).unwrap_or(tls),
            },
            ip => Client { ip, https: tls },
        }
    }
}

impl<S: Store> FromRequestParts<AppState<S>> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Client, Self::Rejection> {
        Ok(Client::of(
            &parts.extensions,
            &parts.headers,
            &state.live().inventory.trusted_proxies,
        ))
    }
}

/// An IPv4 address written as IPv6 (`::ffff:192.0.2.1`, what a dual-stack socket reports)
/// as the IPv4 address, so it matches IPv4 networks and counts as one address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// The hops the proxies recorded, left (the first) to right (the nearest): from
/// `Forwarded`'s `for=` when the header is there, else `X-Forwarded-For`. A hop that is not
/// an address (`unknown`, an obfuscated `_name`, garbage) is `None`.
fn hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    if headers.contains_key("forwarded") {
        return values(headers, "forwarded")
            .flat_map(|v| v.split(','))
            .map(|element| param(element, "for").and_then(node_address))
            .collect();
    }
    values(headers, "x-forwarded-for")
        .flat_map(|v| v.split(','))
        .map(node_address)
        .collect()
}

/// Every value of header `name` that is text, in order.
fn values<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> impl DoubleEndedIterator<Item = &'a str> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok())
}

/// The value of parameter `name` (`for`, `proto`) in one `Forwarded` element.
fn param<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// The address in one hop: `192.0.2.1`, `"192.0.2.1:4711"`, `"[2001:db8::1]:4711"`,
/// `2001:db8::1`.
fn node_address(v: &str) -> Option<IpAddr> {
    let v = v.trim().trim_matches('"');
    if let Ok(ip) = v.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = v.strip_prefix('[') {
        let (inside, _port) = rest.split_once(']')?;
        return inside.parse::<IpAddr>().ok().map(canonical);
    }
    v.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

/// The rightmost hop that is not a trusted proxy; the leftmost when every hop is one.
/// `None` when there are no hops, or a hop on the way is not an address (nothing to the left
/// of it can be told apart from a forgery).
fn forwarded_for(headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let hops = hops(headers);
    let mut leftmost = None;
    for hop in hops.iter().rev() {
        let ip = (*hop)?;
        if !is_trusted(ip, trusted) {
            return Some(ip);
        }
        leftmost = Some(ip);
    }
    leftmost
}

/// Whether the nearest proxy says the client used HTTPS: `Forwarded`'s last `proto=`, else
/// the last `X-Forwarded-Proto`.
fn forwarded_proto(headers: &HeaderMap) -> Option<bool> {
    let proto = values(headers, "forwarded")
        .rev()
        .flat_map(|v| v.rsplit(','))
        .find_map(|element| param(element, "proto"))
        .or_else(|| {
            values(headers, "x-forwarded-proto")
                .next_back()
                .and_then(|v| v.rsplit(',').next())
                .map(str::trim)
        });
    proto.map(|p| p.eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Extensions, HeaderValue};

    fn client(peer: &str, headers: &[(&'static str, &str)], trusted: &[&str]) -> Client {
        let mut ext = Extensions::new();
        ext.insert(ConnectInfo(SocketAddr::new(
            peer.parse().expect("peer"),
            4711,
        )));
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            let name = axum::http::HeaderName::from_static(k);
            h.append(name, HeaderValue::from_str(v).expect("header"));
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|n| n.parse().expect("net")).collect();
        Client::of(&ext, &h, &trusted)
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let c = client(
            "192.0.2.9",
            &[
                ("x-forwarded-for", "203.0.113.1"),
                ("forwarded", "for=203.0.113.2;proto=https"),
                ("x-forwarded-proto", "https"),
            ],
            &["127.0.0.1/32"],
        );
        assert_eq!(
            c,
            Client {
                ip: ip("192.0.2.9"),
                https: false
            }
        );
        // No trusted proxies at all (the default).
        let c = client("127.0.0.1", &[("x-forwarded-for", "203.0.113.1")], &[]);
        assert_eq!(c.ip, ip("127.0.0.1"));
    }

    #[test]
    fn a_trusted_proxy_names_the_rightmost_untrusted_hop() {
        let trusted = &["127.0.0.1/32", "10.0.0.0/8"];
        // The client forged the first hop; 198.51.100.7 is what the outer proxy saw.
        let c = client(
            "127.0.0.1",
            &[("x-forwarded-for", "203.0.113.66, 198.51.100.7, 10.1.2.3")],
            trusted,
        );
        assert_eq!(c.ip, ip("198.51.100.7"));
        // Two headers are one list, in order.
        let c = client(
            "127.0.0.1",
            &[
                ("x-forwarded-for", "203.0.113.66"),
                ("x-forwarded-for", "198.51.100.8"),
            ],
            trusted,
        );
        assert_eq!(c.ip, ip("198.51.100.8"));
        // Only proxies on the way: the leftmost.
        let c = client(
            "127.0.0.1",
            &[("x-forwarded-for", "10.0.0.1, 10.0.0.2")],
            trusted,
        );
        assert_eq!(c.ip, ip("10.0.0.1"));
        // No header: the proxy itself.
        let c = client("10.9.9.9", &[], trusted);
        assert_eq!(
            c,
            Client {
                ip: ip("10.9.9.9"),
                https: false
            }
        );
        // A hop that is not an address: the proxy, not anything left of it.
        let c = client(
            "127.0.0.1",
            &[("x-forwarded-for", "203.0.113.1, bogus")],
            trusted,
        );
        assert_eq!(c.ip, ip("127.0.0.1"));
    }

    #[test]
    fn forwarded_is_read_as_rfc_7239_writes_it() {
        let trusted = &["127.0.0.1/32"];
        let c = client(
            "127.0.0.1",
            &[(
                "forwarded",
                "for=203.0.113.66;proto=http, For=\"[2001:db8:cafe::17]:4711\";proto=https",
            )],
            trusted,
        );
        assert_eq!(
            c,
            Client {
                ip: ip("2001:db8:cafe::17"),
                https: true
            }
        );
        let c = client(
            "127.0.0.1",
            &[("forwarded", "for=\"192.0.2.60:8080\"")],
            trusted,
        );
        assert_eq!(c.ip, ip("192.0.2.60"));
        // Forwarded wins over X-Forwarded-For when both are sent.
        let c = client(
            "127.0.0.1",
            &[
                ("forwarded", "for=192.0.2.61"),
                ("x-forwarded-for", "192.0.2.62"),
            ],
            trusted,
        );
        assert_eq!(c.ip, ip("192.0.2.61"));
        let c = client("127.0.0.1", &[("forwarded", "for=unknown")], trusted);
        assert_eq!(c.ip, ip("127.0.0.1"));
    }

    #[test]
    fn the_scheme_is_the_nearest_proxys_word() {
        let trusted = &["127.0.0.1/32"];
        let c = client(
            "127.0.0.1",
            &[("x-forwarded-proto", "http, HTTPS")],
            trusted,
        );
        assert!(c.https);
        let c = client(
            "127.0.0.1",
            &[("x-forwarded-proto", "https, http")],
            trusted,
        );
        assert!(!c.https);
    }

    #[test]
    fn an_ipv4_mapped_peer_matches_ipv4_networks() {
        let c = client(
            "::ffff:127.0.0.1",
            &[("x-forwarded-for", "192.0.2.5")],
            &["127.0.0.0/8"],
        );
        assert_eq!(c.ip, ip("192.0.2.5"));
    }
}
