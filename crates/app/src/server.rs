//! The HTTP/1 server `serve` runs: accepts connections and guards them so that clients that
//! hold connections without sending requests cannot starve the service.
//!
//! - At most `[server] max_connections` connections are served at once; more wait in the
//!   kernel's backlog. When the cap is reached, idle kept-alive connections are closed at
//!   once to make room, so idle clients can never keep a reporter out.
//! - A new connection must start its first request within `header_timeout` (a connection
//!   that never sends a byte is closed), and a connection that has started a request must
//!   send its whole header within `header_timeout` (a client trickling one byte a second is
//!   cut off).
//! - A body is read whole before the request is handled, within `header_timeout` again: a
//!   declared length over [`MAX_BODY`] is answered 413 at once, a body that stops arriving
//!   408, and the connection is closed.
//! - An HTTP/1.1 request without `Host`, or any request with two, is answered 400 before
//!   anything else.
//! - A kept-alive connection with no request in progress is closed after `idle_timeout`.
//! - A request must be answered within `request_timeout` (408); a report cut off that way
//!   may have been recorded, and its retry with the same `id` gets the same answer.
//! - With `[server] tls_cert`, connections are TLS ([`crate::tls`]); the handshake must be
//!   done within `header_timeout`.
//!
//! The timeouts are checked once a second per connection; a request being handled is never
//! cut off.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use failover_core::inventory::ServerPolicy;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::{Duration, Instant};
use tower_service::Service as _;

use crate::api::ErrorCode;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::reports::MAX_BODY;
use crate::tls::Tls;

/// How often each connection's timeouts are checked.
const TICK: Duration = Duration::from_secs(1);

/// Connection limits (from the inventory's `[server]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Whole request header within this once started.
    pub header_timeout: Duration,
    /// Idle connections closed after this.
    pub idle_timeout: Duration,
    /// A request read and answered within this, or 408.
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: u32,
}

impl From<ServerPolicy> for Limits {
    /// The inventory's `[server]` (validated positive, so nothing is lost).
    fn from(p: ServerPolicy) -> Limits {
        Limits {
            header_timeout: p.header_timeout.unsigned_abs(),
            idle_timeout: p.idle_timeout.unsigned_abs(),
            request_timeout: p.request_timeout.unsigned_abs(),
            max_connections: p.max_connections,
        }
    }
}

/// Milliseconds from `epoch` to now: the connections' shared clock for their timeouts.
fn ms_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_millis() as u64
}

/// Serves `app` on `listener` until `stop` turns true; then stops accepting, lets requests
/// in flight finish and returns when every connection is closed.
///
/// # Errors
/// None so far: accept errors (out of file descriptors) are logged and retried.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    tls: Option<Tls>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let max = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max as usize));
    let full = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    loop {
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // At the cap: idle connections give way at their next tick.
                full.store(true, Ordering::Relaxed);
                tokio::select! {
                    p = Arc::clone(&permits).acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
        };
        full.store(false, Ordering::Relaxed);
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            metrics: Arc::clone(&metrics),
            limits,
            full: Arc::clone(&full),
            epoch,
            stop: stop.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => conn.run(stream, addr, false).await,
                // The handshake, like a request header, must be done within header_timeout.
                Some(tls) => {
                    let within = conn.limits.header_timeout;
                    match tokio::time::timeout(within, tls.acceptor().accept(stream)).await {
                        Ok(Ok(stream)) => conn.run(stream, addr, true).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, %addr, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%addr, "TLS handshake not done in time"),
                    }
                }
            }
            drop(permit);
        });
    }
    // Every connection holds a permit until it ends.
    let _ = permits.acquire_many(max).await;
    Ok(())
}

struct Connection {
    app: Router,
    /// Counts the reports refused here, before the router sees them.
    metrics: Arc<Metrics>,
    limits: Limits,
    full: Arc<AtomicBool>,
    epoch: Instant,
    stop: watch::Receiver<bool>,
}

/// What one connection is doing, shared by its reader, its service and its watchdog.
#[derive(Debug, Default)]
struct Activity {
    /// Requests being handled.
    busy: AtomicU32,
    /// A request has been answered on this connection (it is kept alive, not new).
    served: AtomicBool,
    /// Bytes of a request have arrived since the connection became idle.
    head: AtomicBool,
    /// When the connection became idle or a request head started, ms since `epoch`.
    since: AtomicU64,
}

impl Connection {
    async fn run<T>(self, stream: T, addr: SocketAddr, tls: bool)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut stop = self.stop.clone();
        let activity = Arc::new(Activity::default());
        activity
            .since
            .store(ms_since(self.epoch), Ordering::Relaxed);
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: Arc::clone(&activity),
            epoch: self.epoch,
        });
        let service = {
            let (app, activity, epoch) = (self.app.clone(), Arc::clone(&activity), self.epoch);
            let metrics = Arc::clone(&self.metrics);
            let limit = self.limits.request_timeout;
            let body_limit = self.limits.header_timeout;
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(addr));
                if tls {
                    req.extensions_mut().insert(crate::client::Tls);
                }
                activity.busy.fetch_add(1, Ordering::Relaxed);
                activity.head.store(false, Ordering::Relaxed);
                let app = app.clone();
                let activity = Arc::clone(&activity);
                let metrics = Arc::clone(&metrics);
                let report = req.method() == axum::http::Method::POST
                    && matches!(req.uri().path(), "/" | "/v1/reports");
                async move {
                    let response = match read_body(req, body_limit).await {
                        Ok(req) => match tokio::time::timeout(limit, app.clone().call(req)).await {
                            Ok(r) => r,
                            Err(_) => Ok(ApiError::client(
                                StatusCode::REQUEST_TIMEOUT,
                                ErrorCode::RequestTimeout,
                                "the request was not answered in time",
                            )
                            .into_response()),
                        },
                        Err(refused) => {
                            if report {
                                metrics.rejected();
                            }
                            Ok(refused)
                        }
                    };
                    activity.since.store(ms_since(epoch), Ordering::Relaxed);
                    activity.served.store(true, Ordering::Relaxed);
                    activity.busy.fetch_sub(1, Ordering::Relaxed);
                    response
                }
            })
        };
        let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
        let mut conn = std::pin::pin!(conn);
        let mut ticks = tokio::time::interval(TICK);
        let mut stopping = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, %addr, "connection ended with an error");
                    }
                    return;
                }
                _ = stop.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = ticks.tick() => {
                    if activity.busy.load(Ordering::Relaxed) > 0 {
                        continue;
                    }
                    let waited = Duration::from_millis(
                        ms_since(self.epoch).saturating_sub(activity.since.load(Ordering::Relaxed)),
                    );
                    let head = activity.head.load(Ordering::Relaxed);
                    if head && waited >= self.limits.header_timeout {
                        tracing::debug!(%addr, "closing a connection that did not send its request header in time");
                        return;
                    }
                    // A new connection gets the header's time to start; a kept-alive one
                    // the idle time between requests.
                    let idle = if activity.served.load(Ordering::Relaxed) {
                        self.limits.idle_timeout
                    } else {
                        self.limits.header_timeout
                    };
                    if !head && (waited >= idle || self.full.load(Ordering::Relaxed)) {
                        return;
                    }
                }
            }
        }
    }
}

/// The request with its body read whole, within `within`; else the answer to send
/// instead (400 without exactly one `Host`, 413 for a body over [`MAX_BODY`], 408 for one
/// that stops arriving), which closes the connection (its unread body would otherwise be
/// taken for the next request).
async fn read_body(
    req: hyper::Request<Incoming>,
    within: Duration,
) -> Result<axum::http::Request<axum::body::Body>, Response> {
    let (parts, body) = req.into_parts();
    // RFC 9112 §3.2: an HTTP/1.1 request without `Host`, or any request with two, is a 400.
    let hosts = parts.headers.get_all(header::HOST).iter().count();
    if hosts > 1 || (hosts == 0 && parts.version == axum::http::Version::HTTP_11) {
        return Err(closing(ApiError::client(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadHost,
            "an HTTP/1.1 request must have exactly one Host header",
        )));
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        closing(ApiError::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BodyTooLarge,
            format!("the body is larger than {MAX_BODY} bytes"),
        ))
    };
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let body = axum::body::Body::new(body);
    match tokio::time::timeout(within, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(bytes)) => Ok(axum::http::Request::from_parts(
            parts,
            axum::body::Body::from(bytes),
        )),
        Ok(Err(e)) if is_length_limit(&e) => Err(too_large()),
        Ok(Err(_)) => Err(closing(ApiError::client(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidBody,
            "the body could not be read",
        ))),
        Err(_) => Err(closing(ApiError::client(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::RequestTimeout,
            "the body did not arrive in time",
        ))),
    }
}

/// Whether reading a body failed on its length limit.
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// `err`'s answer, telling the client the connection closes after it.
fn closing(err: ApiError) -> Response {
    let mut response = err.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The socket, noting when request bytes start arriving on an idle connection.
struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
    epoch: Instant,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && self.activity.busy.load(Ordering::Relaxed) == 0
            && !self.activity.head.swap(true, Ordering::Relaxed)
        {
            self.activity
                .since
                .store(ms_since(self.epoch), Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
