//! The dashboard's pages against hostile input, in process (the browser test in
//! `crates/cli/tests/dashboard.rs` covers what a user does): every bad value is a page with
//! a 4xx naming it, nothing panics, nothing changes.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use failover_app::AppState;
use failover_core::keys::KeyHash;
use failover_store_sqlite::Sqlite;
use tower::ServiceExt as _;

const KEY: &str = "ui-test-key";

/// The test inventory, with its one key or without it.
fn inventory(with_key: bool) -> failover_core::inventory::Inventory {
    let key = if with_key {
        format!(
            "[[keys]]\nname = \"acme-ops\"\ncustomer = \"acme\"\nhash = \"{}\"\n",
            KeyHash::of(KEY)
        )
    } else {
        String::new()
    };
    let inventory = format!(
        r#"
[[customers]]
name = "acme"
time_zone = "Europe/Berlin"

[[clusters]]
name = "db"
customer = "acme"
nodes = ["db1", "db2"]

[[windows]]
name = "night"
cluster = "db"
days = ["sun"]
start = "02:30"
duration = "1h"

{key}"#
    );
    failover_core::config::parse(&inventory).expect("valid inventory")
}

async fn app(dir: &std::path::Path) -> (Router, AppState<Sqlite>) {
    let store = Sqlite::open(dir.join("db.sqlite")).expect("opens");
    let state = AppState::new(store, inventory(true)).await.expect("state");
    (failover_app::router(state.clone()), state)
}

async fn router(dir: &std::path::Path) -> Router {
    app(dir).await.0
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    cookies: Vec<String>,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.expect("answered");
    let status = response.status();
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .expect("body");
    Answer {
        status,
        location,
        cookies,
        headers,
        body: unescape(&String::from_utf8_lossy(&bytes)),
    }
}

/// The page's text as a reader sees it (minijinja escapes `/`, quotes and brackets).
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn get(path: &str, cookie: &str) -> Request<Body> {
    Request::get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .expect("request")
}

fn post(path: &str, cookie: &str, form: &str) -> Request<Body> {
    Request::post(path)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .expect("request")
}

/// The value of `name="csrf" value="..."` in a page.
fn csrf(body: &str) -> String {
    body.split_once(r#"name="csrf" value=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(v, _)| v.to_owned())
        .expect("the page has a CSRF field")
}

/// Signs in; the session's cookie and the CSRF token of its forms.
async fn sign_in(router: &Router) -> (String, String) {
    let form = send(router, get("/ui/signin", "")).await;
    let token = csrf(&form.body);
    let answer = send(
        router,
        post(
            "/ui/signin",
            &format!("failover_signin={token}"),
            &format!("key={KEY}&csrf={token}&next=/ui/clusters"),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
    assert_eq!(answer.location.as_deref(), Some("/ui/clusters"));
    let session = answer
        .cookies
        .iter()
        .find(|c| c.starts_with("failover_session="))
        .expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    assert!(!session.contains(KEY), "the cookie holds no key");
    let cookie = session.split(';').next().expect("value").to_owned();
    let page = send(router, get("/ui/maintenance", &cookie)).await;
    (cookie, csrf(&page.body))
}

#[tokio::test]
async fn bad_values_are_named_pages_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = router(dir.path()).await;
    let (cookie, token) = sign_in(&router).await;

    for (path, status, says) in [
        ("/ui/windows?date=0000-01-01", 400, "`date` must be a date"),
        ("/ui/windows?date=9999-12-31", 400, "`date` must be a date"),
        ("/ui/windows?date=2026-13-01", 400, "`date` must be a date"),
        (
            "/ui/windows?view=year",
            400,
            "`view` must be `week` or `month`",
        ),
        (
            "/ui/windows?zone=Europe/Pariss",
            400,
            "unknown time zone `Europe/Pariss`",
        ),
        ("/ui/windows?cluster=nope", 400, "unknown cluster `nope`"),
        ("/ui/windows?date=1&date=2", 400, "duplicate field `date`"),
        ("/ui/windows?bogus=1", 400, "unknown field `bogus`"),
        ("/ui/now?hours=99999999999", 400, "hours"),
        ("/ui/now?customer=globex", 200, "Now"),
        ("/ui/clusters?page=0", 200, "data-cluster=\"db\""),
        ("/ui/clusters?page=4000000000", 200, "data-cluster=\"db\""),
        ("/ui/clusters?page=4294967296", 400, "page"),
        ("/ui/clusters?q=zzz", 200, "No clusters"),
        ("/ui/events/0", 404, "no event `0`"),
        ("/ui/events/notanumber", 404, "no event"),
        (
            "/ui/windows?date=2499-12-31&view=month",
            200,
            "December 2499",
        ),
        (
            "/ui/windows?date=1900-01-01&view=month",
            200,
            "January 1900",
        ),
        // The week of the change to summer time in Berlin, where 02:30 does not exist.
        (
            "/ui/windows?date=2026-03-29&zone=Europe/Berlin",
            200,
            "03:30–04:30",
        ),
        // And the change back: 02:30 happens twice; the window starts at the first.
        ("/ui/windows?date=2026-10-25&zone=UTC", 200, "00:30–01:30"),
    ] {
        let answer = send(&router, get(path, &cookie)).await;
        assert_eq!(answer.status.as_u16(), status, "{path}: {}", answer.body);
        assert!(
            answer.body.contains(says),
            "{path} says {says}: {}",
            answer.body
        );
    }
    let long = format!("/ui/events/{}", "9".repeat(5000));
    assert_eq!(send(&router, get(&long, &cookie)).await.status, 404);

    let base = format!("csrf={token}&target=cluster:db&action=add");
    for (form, status, says) in [
        (format!("{base}&preset=1h"), 400, "`reason` is missing"),
        (
            format!("{base}&preset=1h&reason=%20"),
            400,
            "`reason` is missing",
        ),
        (
            format!("{base}&preset=1h&reason={}", "x".repeat(2000)),
            400,
            "at most 1024",
        ),
        (format!("{base}&preset=1h&reason=a%00b"), 400, "U+0000"),
        (format!("{base}&preset=1h&reason=a%0D%0Ab"), 400, "U+000D"),
        (
            format!("{base}&preset=1h&reason=a%E2%80%AEb"),
            400,
            "U+202E",
        ),
        (
            format!("{base}&reason=x"),
            400,
            "choose a length or an end time",
        ),
        (
            format!("{base}&preset=1h&end=2026-12-09T22:30&reason=x"),
            400,
            "not both",
        ),
        (format!("{base}&end=0000-01-01T00:00&reason=x"), 400, "1900"),
        (format!("{base}&end=9999-12-31T23:59&reason=x"), 400, "2499"),
        (
            format!("{base}&end=tomorrow&reason=x"),
            400,
            "`end` must be a date and time",
        ),
        (
            format!("{base}&end=2030-01-01T00:00&end_zone=Mars/Base&reason=x"),
            400,
            "unknown time zone `Mars/Base`",
        ),
        (format!("{base}&preset=5y&reason=x"), 400, "`duration`"),
        (
            format!("{base}&preset=1h&reason=x&reason=y"),
            400,
            "duplicate field",
        ),
        (
            format!("csrf={token}&target=cluster:nope&preset=1h&reason=x&action=add"),
            400,
            "unknown cluster `nope`",
        ),
        (
            format!("csrf={token}&target=planet:earth&preset=1h&reason=x&action=add"),
            400,
            "unknown target",
        ),
        (
            "target=cluster:db&preset=1h&reason=x&action=add".to_owned(),
            403,
            "CSRF",
        ),
        (
            format!(
                "csrf={}&target=cluster:db&preset=1h&reason=x&action=add",
                "0".repeat(64)
            ),
            403,
            "CSRF",
        ),
    ] {
        let answer = send(&router, post("/ui/maintenance", &cookie, &form)).await;
        assert_eq!(answer.status.as_u16(), status, "{form}: {}", answer.body);
        assert!(
            answer.body.contains(says),
            "{form} says {says}: {}",
            answer.body
        );
    }
    let page = send(&router, get("/ui/maintenance", &cookie)).await;
    assert!(
        page.body.contains("No ad-hoc window is open"),
        "nothing was added: {}",
        page.body
    );
}

#[tokio::test]
async fn without_a_valid_session_pages_go_to_the_sign_in_form_and_forms_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = router(dir.path()).await;
    for cookie in [
        "",
        "failover_session=",
        "failover_session=../../etc/passwd",
        &format!("failover_session={}", "f".repeat(64)),
        &format!("failover_session={}", "x".repeat(8000)),
    ] {
        let answer = send(&router, get("/ui/now?hours=6", cookie)).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{cookie}");
        assert_eq!(
            answer.location.as_deref(),
            Some("/ui/signin?next=/ui/now%3Fhours%3D6")
        );
        let answer = send(&router, post("/ui/maintenance", cookie, "reason=x")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{cookie}");
    }
    // The sign-in form itself: no CSRF cookie, a wrong one, a wrong key, an odd `next`.
    let form = send(&router, get("/ui/signin", "")).await;
    let token = csrf(&form.body);
    for (cookie, body, status) in [
        ("".to_owned(), format!("key={KEY}&csrf={token}"), 403),
        (
            format!("failover_signin={token}"),
            format!("key={KEY}&csrf=other"),
            403,
        ),
        (
            format!("failover_signin={token}"),
            format!("key=wrong&csrf={token}"),
            401,
        ),
        (
            format!("failover_signin={token}"),
            format!("key=&csrf={token}"),
            401,
        ),
        (
            format!("failover_signin={token}"),
            format!("key={KEY}&key={KEY}&csrf={token}"),
            400,
        ),
    ] {
        let answer = send(&router, post("/ui/signin", &cookie, &body)).await;
        assert_eq!(answer.status.as_u16(), status, "{body}: {}", answer.body);
        assert!(
            !answer
                .cookies
                .iter()
                .any(|c| c.starts_with("failover_session=")),
            "no session for {body}"
        );
    }
    let answer = send(
        &router,
        post(
            "/ui/signin",
            &format!("failover_signin={token}"),
            &format!("key={KEY}&csrf={token}&next=https://evil.example/"),
        ),
    )
    .await;
    assert_eq!(
        answer.location.as_deref(),
        Some("/ui/now"),
        "never to another site"
    );
}

#[tokio::test]
async fn a_removed_key_ends_its_sessions_and_calendar_links_for_good() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (router, state) = app(dir.path()).await;
    let (cookie, token) = sign_in(&router).await;
    // A forged `Host` does not make the link point elsewhere (no `public_url` here: the
    // page gives the path and says to put the dashboard's address in front).
    let subscribe = Request::post("/ui/windows/subscribe")
        .header(header::COOKIE, &cookie)
        .header(header::HOST, "evil.example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={token}")))
        .expect("request");
    let page = send(&router, subscribe).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let link = page
        .body
        .split_once(r#"id="feed-url" class="feed-url" readonly value=""#)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(v, _)| v.to_owned())
        .expect("the calendar link");
    assert!(link.starts_with("/ui/feed.ics?token="), "{link}");
    assert!(page.body.contains("public_url"), "{}", page.body);
    assert_eq!(send(&router, get(&link, "")).await.status, StatusCode::OK);
    // The key goes, then its `[[keys]]` block is put back.
    state.reload(inventory(false)).await.expect("reloaded");
    state.reload(inventory(true)).await.expect("reloaded");
    let now = send(&router, get("/ui/now", &cookie)).await;
    assert_eq!(now.status, StatusCode::SEE_OTHER, "the old session is gone");
    assert_eq!(
        send(&router, get(&link, "")).await.status,
        StatusCode::UNAUTHORIZED,
        "the old calendar link is gone"
    );
    // Signing in again works.
    sign_in(&router).await;
}

#[tokio::test]
async fn every_answer_under_ui_carries_the_security_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let router = router(dir.path()).await;
    let (cookie, token) = sign_in(&router).await;
    let answers = [
        // A path that names nothing, and a form axum cannot read: pages, not axum's text.
        send(
            &router,
            post("/ui/maintenance/abc/end", &cookie, &format!("csrf={token}")),
        )
        .await,
        send(
            &router,
            post(
                "/ui/events/x/deliveries/%3Cb%3E/resend",
                &cookie,
                &format!("csrf={token}"),
            ),
        )
        .await,
        send(&router, post("/ui/signout", &cookie, "csrf=%ZZ&csrf=2")).await,
        send(&router, get("/ui/windows.ics", &cookie)).await,
        send(&router, get("/ui/now", &cookie)).await,
    ];
    for (i, a) in answers.iter().enumerate() {
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(
                a.headers.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "answer {i} ({}): {name}",
                a.status
            );
        }
        assert!(
            a.headers.contains_key("content-security-policy"),
            "answer {i}"
        );
    }
    for a in &answers[..2] {
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.body);
        assert!(
            a.body.contains("no such page") && !a.body.contains("abc"),
            "{}",
            a.body
        );
        assert!(
            a.headers[header::CONTENT_TYPE]
                .to_str()
                .is_ok_and(|t| t.starts_with("text/html")),
            "{:?}",
            a.headers
        );
    }
    assert_eq!(
        answers[2].status,
        StatusCode::BAD_REQUEST,
        "{}",
        answers[2].body
    );
}
