//! The HTTP/1 server `serve` runs: accepts connections and guards them so that clients that
//! hold connections without sending requests cannot starve the service.
//!
//! - At most `[server] max_connections` connections are served at once; more wait in the
//!   kernel's backlog. When the cap is reached, idle kept-alive connections are closed at
//!   once to make room, so idle clients can never keep a reporter out.
//! - A connection that has started a request must send its whole header within
//!   `header_timeout` (a client trickling one byte a second is cut off).
//! - A connection with no request in progress is closed after `idle_timeout`.
//! - A request, its body included, must be read and answered within `request_timeout`
//!   (a client trickling its body is answered 408); a report cut off that way may have been
//!   recorded, and its retry with the same `id` gets the same answer.
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
use axum::response::IntoResponse as _;
use failover_core::inventory::ServerPolicy;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Duration, Instant};
use tower_service::Service as _;

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
            limits,
            full: Arc::clone(&full),
            epoch,
            stop: stop.clone(),
        };
        tokio::spawn(async move {
            conn.run(stream, addr).await;
            drop(permit);
        });
    }
    // Every connection holds a permit until it ends.
    let _ = permits.acquire_many(max).await;
    Ok(())
}

struct Connection {
    app: Router,
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
    /// Bytes of a request have arrived since the connection became idle.
    head: AtomicBool,
    /// When the connection became idle or a request head started, ms since `epoch`.
    since: AtomicU64,
}

impl Connection {
    async fn run(self, stream: TcpStream, addr: SocketAddr) {
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
            let limit = self.limits.request_timeout;
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(addr));
                activity.busy.fetch_add(1, Ordering::Relaxed);
                activity.head.store(false, Ordering::Relaxed);
                let answer = app.clone().call(req.map(axum::body::Body::new));
                let activity = Arc::clone(&activity);
                async move {
                    let response = match tokio::time::timeout(limit, answer).await {
                        Ok(r) => r,
                        Err(_) => Ok(crate::error::ApiError::client(
                            axum::http::StatusCode::REQUEST_TIMEOUT,
                            "request_timeout",
                            "the request was not read and answered in time",
                        )
                        .into_response()),
                    };
                    activity.since.store(ms_since(epoch), Ordering::Relaxed);
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
                    if !head
                        && (waited >= self.limits.idle_timeout || self.full.load(Ordering::Relaxed))
                    {
                        return;
                    }
                }
            }
        }
    }
}

/// The socket, noting when request bytes start arriving on an idle connection.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
    epoch: Instant,
}

impl AsyncRead for Watched {
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

impl AsyncWrite for Watched {
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
