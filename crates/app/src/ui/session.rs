//! Signing in and out of the dashboard, and the [`Signed`] extractor every page starts with.
//!
//! - Sign-in posts an API key in a form. It is checked as `x-api-key` is (constant time,
//!   wrong keys counted and slowed down per address), then a random 256-bit token goes to
//!   the browser in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` when the request
//!   came over HTTPS, as a TLS proxy says with `X-Forwarded-Proto`), and only the token's
//!   SHA-256 is stored, with the key's name and a fingerprint of its hash: removing the key
//!   or giving it a new hash ends its sessions.
//! - Sessions last [`OPERATOR_SESSION`] ([`VIEWER_SESSION`] for a viewer key, made for wall
//!   screens); sign-out deletes the stored session, so a copied cookie stops working too.
//! - Every form carries a CSRF token: for a session, the SHA-256 of its token with a fixed
//!   prefix (the server recomputes it; another site can neither read nor guess it); for
//!   the sign-in form, a random value that must equal the one in its own short cookie.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use failover_core::inventory::{ApiKey, Inventory, Role};
use failover_store::{Session, Store};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{PageError, page};
use crate::api::ErrorCode;
use crate::auth::{Caller, authenticate};
use crate::client::Client;
use crate::clock;
use crate::error::ApiError;
use crate::state::AppState;

/// How long an operator's session lasts.
pub const OPERATOR_SESSION: SignedDuration = SignedDuration::from_hours(12);
/// How long a viewer's session lasts (wall screens stay signed in for a month).
pub const VIEWER_SESSION: SignedDuration = SignedDuration::from_hours(30 * 24);

const SESSION_COOKIE: &str = "failover_session";
const SIGNIN_COOKIE: &str = "failover_signin";

/// A signed-in dashboard user.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The key they signed in with, in the inventory in force.
    pub caller: Caller,
    /// The CSRF token of their forms.
    pub csrf: String,
    token_hash: String,
}

impl Signed {
    /// 403 unless `presented` is this session's CSRF token.
    ///
    /// # Errors
    /// [`PageError`] 403 that tells to reload the page.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), PageError> {
        if presented.is_some_and(|p| same(p, &self.csrf)) {
            return Ok(());
        }
        Err(ApiError::client(
            StatusCode::FORBIDDEN,
            ErrorCode::Csrf,
            "this form's CSRF token is missing or wrong: reload the page and try again",
        )
        .into())
    }

    /// What every template needs about the user.
    pub fn context(&self) -> serde_json::Value {
        let key = self.caller.key();
        serde_json::json!({
            "key": key.name,
            "customer": self.caller.customer_name(),
            "viewer": key.role == Role::Viewer,
            "csrf": self.csrf,
        })
    }
}

/// Why a request has no session: where a page goes instead.
#[derive(Debug)]
pub enum NotSigned {
    /// To the sign-in form, and back here afterwards.
    SignIn(String),
    /// A form posted without a session.
    Refused,
    /// The store failed.
    Error(PageError),
}

impl IntoResponse for NotSigned {
    fn into_response(self) -> Response {
        match self {
            NotSigned::SignIn(next) => {
                Redirect::to(&format!("/ui/signin?next={}", encode(&next))).into_response()
            }
            NotSigned::Refused => PageError(ApiError::client(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "you are not signed in (or your session ended): sign in again",
            ))
            .into_response(),
            NotSigned::Error(e) => e.into_response(),
        }
    }
}

impl<S: Store> FromRequestParts<AppState<S>> for Signed {
    type Rejection = NotSigned;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Signed, NotSigned> {
        let refuse = || {
            if parts.method == axum::http::Method::GET {
                // Within the nest, the path has lost its `/ui`.
                let here = parts.uri.path_and_query().map_or("/now", |p| p.as_str());
                NotSigned::SignIn(format!("/ui{here}"))
            } else {
                NotSigned::Refused
            }
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(refuse());
        };
        let token_hash = hex(&Sha256::digest(token.as_bytes()));
        let found = state
            .store
            .session(&token_hash, clock::now())
            .await
            .map_err(|e| NotSigned::Error(e.into()))?;
        let Some(caller) = holder(state, found, key_check) else {
            return Err(refuse());
        };
        Ok(Signed {
            caller,
            csrf: csrf_of(token),
            token_hash,
        })
    }
}

/// The caller a stored session (or feed) stands for: its key, if that is still in the
/// inventory with the same hash (`check` tells sessions from feeds).
fn holder<S: Store>(
    state: &AppState<S>,
    found: Option<Session>,
    check: fn(&ApiKey) -> String,
) -> Option<Caller> {
    let live = state.live();
    let found = found?;
    let key = live
        .inventory
        .keys
        .iter()
        .position(|k| k.name == found.key && check(k) == found.key_check)?;
    Some(Caller::of(live, key))
}

/// How long a calendar subscription link works.
pub const FEED_LIFETIME: SignedDuration = SignedDuration::from_hours(365 * 24);

/// A new calendar subscription token for the signed-in key: stored like a session, with a
/// fingerprint of its own, so a feed token opens no session and a session token is no feed.
///
/// # Errors
/// [`PageError`] 503 when the store fails or the system has no randomness.
pub(crate) async fn new_feed<S: Store>(
    state: &AppState<S>,
    signed: &Signed,
) -> Result<String, PageError> {
    let token = random_token().ok_or_else(no_token)?;
    let key = signed.caller.key();
    let now = clock::now();
    let feed = Session {
        token_hash: hex(&Sha256::digest(token.as_bytes())),
        key: key.name.clone(),
        key_check: feed_check(key),
        expires: now.saturating_add(FEED_LIFETIME).unwrap_or(Timestamp::MAX),
    };
    state.store.add_session(feed, now).await?;
    tracing::info!(key = %key.name, "calendar subscription link made");
    Ok(token)
}

/// The caller a calendar subscription token stands for, if it is one.
///
/// # Errors
/// [`PageError`] 503 when the store fails.
pub(crate) async fn feed_caller<S: Store>(
    state: &AppState<S>,
    token: &str,
) -> Result<Option<Caller>, PageError> {
    if token.len() != 64 {
        return Ok(None);
    }
    let hash = hex(&Sha256::digest(token.as_bytes()));
    let found = state.store.session(&hash, clock::now()).await?;
    Ok(holder(state, found, feed_check))
}

/// Query of the sign-in form.
#[derive(Debug, Deserialize)]
pub struct SigninQuery {
    next: Option<String>,
}

/// `GET /ui/signin`: the form, with a fresh CSRF cookie.
pub async fn signin_form<S: Store>(
    State(state): State<AppState<S>>,
    client: Client,
    query: Result<Query<SigninQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let next = query.ok().and_then(|Query(q)| q.next);
    signin_page(&state, client, StatusCode::OK, next.as_deref(), None)
}

fn signin_page<S: Store>(
    state: &AppState<S>,
    client: Client,
    status: StatusCode,
    next: Option<&str>,
    error: Option<&str>,
) -> Response {
    let Some(nonce) = random_token() else {
        return no_token().into_response();
    };
    let csrf = format!("{nonce}.{}", signin_mac(&state.live().inventory, &nonce));
    let mut response = page(
        status,
        "signin.html",
        serde_json::json!({
            "title": "Sign in",
            "csrf": csrf,
            "next": safe_next(next),
            "problem": error,
        }),
    );
    let cookie = format!(
        "{SIGNIN_COOKIE}={csrf}; Path=/ui/signin; HttpOnly; SameSite=Strict; Max-Age=3600{}",
        secure(client)
    );
    if let Ok(v) = cookie.parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigninForm {
    key: Option<String>,
    csrf: Option<String>,
    next: Option<String>,
}

/// `POST /ui/signin`: checks the key and opens a session.
pub async fn signin<S: Store>(
    State(state): State<AppState<S>>,
    client: Client,
    headers: HeaderMap,
    form: Result<Form<SigninForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return signin_page(
            &state,
            client,
            StatusCode::BAD_REQUEST,
            None,
            Some("the form could not be read: send it again"),
        );
    };
    let next = safe_next(form.next.as_deref());
    let sent = cookie(&headers, SIGNIN_COOKIE);
    if !signin_csrf_ok(&state.live().inventory, form.csrf.as_deref(), sent) {
        return signin_page(
            &state,
            client,
            StatusCode::FORBIDDEN,
            Some(&next),
            Some("this form's CSRF token is missing or wrong: send the form again"),
        );
    }
    let presented = form.key.as_deref().map(str::trim).filter(|k| !k.is_empty());
    let caller = match authenticate(&state, client.ip, presented, "/ui/signin") {
        Ok(c) => c,
        Err(ApiError::Throttled { retry_after }) => {
            return signin_page(
                &state,
                client,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&next),
                Some(&format!(
                    "too many wrong keys from this address: try again in {retry_after} s"
                )),
            );
        }
        Err(_) => {
            return signin_page(
                &state,
                client,
                StatusCode::UNAUTHORIZED,
                Some(&next),
                Some("that key is not valid"),
            );
        }
    };
    let key = caller.key();
    let Some(token) = random_token() else {
        return no_token().into_response();
    };
    let now = clock::now();
    let lifetime = match key.role {
        Role::Operator => OPERATOR_SESSION,
        Role::Viewer => VIEWER_SESSION,
    };
    let session = Session {
        token_hash: hex(&Sha256::digest(token.as_bytes())),
        key: key.name.clone(),
        key_check: key_check(key),
        expires: now.saturating_add(lifetime).unwrap_or(Timestamp::MAX),
    };
    if let Err(e) = state.store.add_session(session, now).await {
        return PageError::from(e).into_response();
    }
    tracing::info!(key = %key.name, "signed in to the dashboard");
    let mut response = Redirect::to(&next).into_response();
    let cookies = [
        format!(
            "{SESSION_COOKIE}={token}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{}",
            lifetime.as_secs(),
            secure(client)
        ),
        format!("{SIGNIN_COOKIE}=; Path=/ui/signin; HttpOnly; SameSite=Strict; Max-Age=0"),
    ];
    for c in cookies {
        if let Ok(v) = c.parse() {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The sign-out form's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfForm {
    csrf: Option<String>,
}

impl CsrfForm {
    /// The token sent.
    pub fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// `POST /ui/signout`: deletes the session and its cookie.
///
/// # Errors
/// [`PageError`] 403 without the CSRF token, 503 when the store fails.
pub async fn signout<S: Store>(
    State(state): State<AppState<S>>,
    signed: Signed,
    client: Client,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, PageError> {
    let form = super::form(form)?;
    signed.check_csrf(form.csrf.as_deref())?;
    state.store.end_session(&signed.token_hash).await?;
    tracing::info!(key = %signed.caller.key().name, "signed out of the dashboard");
    let mut response = Redirect::to("/ui/signin").into_response();
    let gone = format!(
        "{SESSION_COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{}",
        secure(client)
    );
    if let Ok(v) = gone.parse() {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// Where to go after signing in: a dashboard path, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/ui/")
                && !n.starts_with("/ui//")
                && !n.contains('\\')
                && n.len() <= 2048
                && !n.chars().any(char::is_control) =>
        {
            n.to_owned()
        }
        _ => "/ui/now".to_owned(),
    }
}

/// `; Secure` for a cookie sent to a client that came over HTTPS.
fn secure(client: Client) -> &'static str {
    if client.https { "; Secure" } else { "" }
}

/// The value of cookie `name`, if sent once.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v);
    let first = found.next()?;
    // Two cookies of one name (one set for another path): trust neither.
    found.next().is_none().then_some(first)
}

/// The sign-in form's CSRF check: the form and its cookie carry the same `NONCE.MAC`, and
/// the MAC is this server's for that nonce, so a client cannot choose the pair (a cookie
/// planted from a sibling domain with a made-up value is refused).
fn signin_csrf_ok(inv: &Inventory, form: Option<&str>, cookie: Option<&str>) -> bool {
    let (Some(form), Some(cookie)) = (form, cookie) else {
        return false;
    };
    let Some((nonce, mac)) = form.split_once('.') else {
        return false;
    };
    same(form, cookie) && nonce.len() == 64 && same(mac, &signin_mac(inv, nonce))
}

/// The MAC of a sign-in form's nonce: HMAC-SHA-256 under a secret derived from every key's
/// hash, which every replica and Lambda instance has and no client ever sees.
fn signin_mac(inv: &Inventory, nonce: &str) -> String {
    let mut secret = Sha256::new();
    secret.update(b"failover-notify signin secret\0");
    for k in &inv.keys {
        secret.update(k.hash.to_string().as_bytes());
        secret.update(b"\0");
    }
    hex(&hmac_sha256(&secret.finalize().into(), nonce.as_bytes()))
}

/// HMAC-SHA-256 (RFC 2104) with a 32-byte key.
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The CSRF token of the session whose token is `token`.
fn csrf_of(token: &str) -> String {
    hex(&Sha256::digest(format!("failover-notify csrf\0{token}")))
}

/// Ends the sessions and calendar links of keys no longer in the inventory (or given a new
/// hash): run at start, after each reload and by the Lambda's schedule, so that putting a
/// removed `[[keys]]` block back revives none of them. A failure is logged; the holder check
/// refuses them meanwhile.
pub async fn end_sessions_of_gone_keys<S: Store>(state: &AppState<S>) {
    let keep: Vec<(String, String)> = state
        .live()
        .inventory
        .keys
        .iter()
        .flat_map(|k| {
            [
                (k.name.clone(), key_check(k)),
                (k.name.clone(), feed_check(k)),
            ]
        })
        .collect();
    match state.store.end_sessions_except(&keep).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            ended = n,
            "ended the dashboard sessions and calendar links of removed or rehashed keys"
        ),
        Err(e) => tracing::error!(error = ?e, "cannot end the sessions of removed keys"),
    }
}

/// A fingerprint of `key`'s hash: a new hash under the same name ends its sessions.
fn key_check(key: &ApiKey) -> String {
    hex(&Sha256::digest(format!(
        "failover-notify session\0{}",
        key.hash
    )))[..32]
        .to_owned()
}

/// A fingerprint of `key`'s hash for its calendar feeds.
fn feed_check(key: &ApiKey) -> String {
    hex(&Sha256::digest(format!(
        "failover-notify feed\0{}",
        key.hash
    )))[..32]
        .to_owned()
}

/// 256 random bits from the operating system, as hex; `None` (logged) when the system has
/// no randomness to give, and then nothing is handed out.
fn random_token() -> Option<String> {
    let mut bytes = [0u8; 32];
    match getrandom::fill(&mut bytes) {
        Ok(()) => Some(hex(&bytes)),
        Err(e) => {
            tracing::error!(error = %e, "the system has no randomness for a dashboard token");
            None
        }
    }
}

/// The error for a token that could not be drawn.
fn no_token() -> PageError {
    PageError(ApiError::client(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::NoRandomness,
        "the server cannot draw a random token just now: try again",
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time comparison of two tokens.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `s` for a query string.
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_paths_are_followed_after_signing_in() {
        for (next, to) in [
            (Some("/ui/events/12?x=1"), "/ui/events/12?x=1"),
            (Some("https://evil.example/ui/"), "/ui/now"),
            (Some("//evil.example"), "/ui/now"),
            (Some("/ui//evil.example"), "/ui/now"),
            (Some("/ui/\\evil"), "/ui/now"),
            (Some("/ui/\r\nSet-Cookie: x=y"), "/ui/now"),
            (Some("/v1/events"), "/ui/now"),
            (None, "/ui/now"),
        ] {
            assert_eq!(safe_next(next), to, "{next:?}");
        }
    }

    #[test]
    fn a_cookie_sent_twice_is_not_trusted() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            "a=1; failover_session=abc".parse().expect("header"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        h.append(
            header::COOKIE,
            "failover_session=def".parse().expect("header"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), None);
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2's message and HMAC-SHA-256, with its key zero-padded to 32
        // bytes (HMAC pads keys to the block size, so the result is the same).
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        assert_eq!(
            hex(&hmac_sha256(&key, b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_signin_csrf_pair_must_be_the_servers() {
        let inv = failover_core::config::parse(
            "[[keys]]\nname = \"k\"\nadmin = true\nhash = \"sha256:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b\"\n",
        )
        .expect("inventory");
        let nonce = "a".repeat(64);
        let good = format!("{nonce}.{}", signin_mac(&inv, &nonce));
        assert!(signin_csrf_ok(&inv, Some(&good), Some(&good)));
        // A value the client chose, sent as both cookie and form (the old double-submit).
        let chosen = format!("{nonce}.{}", "0".repeat(64));
        assert!(!signin_csrf_ok(&inv, Some(&chosen), Some(&chosen)));
        assert!(!signin_csrf_ok(&inv, Some("x"), Some("x")));
        assert!(!signin_csrf_ok(&inv, Some(&good), None));
        let other = format!("{}.{}", "b".repeat(64), signin_mac(&inv, &"b".repeat(64)));
        assert!(!signin_csrf_ok(&inv, Some(&good), Some(&other)));
    }
}
