//! `lambda`: the same router on AWS Lambda behind API Gateway (REST or HTTP API) or a
//! function URL, with state in DynamoDB. Deliveries happen within the request; a scheduled
//! EventBridge invocation sends whatever is still pending.
//!
//! On Lambda the binary is the `bootstrap` of a `provided.al2023` function and is started
//! with no arguments; `main` then runs this command with its settings from the environment.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::task::Poll;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body as AxumBody;
use failover_app::AppState;
use failover_app::state::{AdHoc, Delivery};
use failover_store_dynamodb::Dynamo;
use lambda_http::lambda_runtime::{Error as BoxError, LambdaInvocation};
use lambda_http::request::{LambdaRequest, RequestContext};
use lambda_http::{Adapter, LambdaEvent, RequestExt, Service, service_fn};
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::load;

/// What the Lambda runtime sets and the runtime client needs.
const RUNTIME_ENV: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Longest DynamoDB operation, retries included.
const DYNAMODB_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a scheduled invocation keeps sending (the template gives the function 60 s).
const DRAIN_BUDGET: Duration = Duration::from_secs(45);

/// Arguments of `lambda`, normally set as the function's environment variables.
#[derive(Debug, clap::Parser)]
#[command(name = "lambda")]
pub struct Args {
    /// Inventory bundled with the function. Default: `inventory.toml` in $LAMBDA_TASK_ROOT.
    #[arg(short, long, env = "FAILOVER_NOTIFY_CONFIG")]
    config: Option<PathBuf>,
    /// DynamoDB table (partition key `pk`, sort key `sk`, TTL on `expires_at`).
    #[arg(long, env = "FAILOVER_NOTIFY_TABLE")]
    table: String,
    /// DynamoDB endpoint instead of AWS's (tests: a moto server).
    #[arg(long, env = "FAILOVER_NOTIFY_DYNAMODB_ENDPOINT")]
    dynamodb_endpoint: Option<String>,
    /// Days rows are kept before DynamoDB's TTL removes them, instead of the inventory's
    /// `[events] keep` (default 400 days); 0 or unset: the inventory's.
    #[arg(long, env = "FAILOVER_NOTIFY_KEEP_DAYS")]
    keep_days: Option<u16>,
}

/// Runs the Lambda runtime loop until the runtime stops the process.
///
/// # Errors
/// A broken inventory or a missing setting: the cold start fails loudly and Lambda reports
/// an initialization error for the first invocation.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    load::init_logging();
    let missing: Vec<&str> = RUNTIME_ENV
        .into_iter()
        .filter(|v| std::env::var_os(v).is_none())
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "`lambda` runs inside AWS Lambda, which sets {}; to run a server, use `serve`",
        missing.join(", ")
    );
    let config = args.config.clone().unwrap_or_else(|| {
        std::env::var_os("LAMBDA_TASK_ROOT")
            .map_or_else(PathBuf::new, PathBuf::from)
            .join("inventory.toml")
    });
    let inventory = load::inventory(&config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let sdk = failover_channels::aws::sdk_config(
            None,
            args.dynamodb_endpoint.as_deref(),
            DYNAMODB_TIMEOUT,
        )
        .await;
        let store = Dynamo::with_config(
            &sdk,
            &args.table,
            args.keep_days
                .filter(|d| *d > 0)
                .map_or(inventory.events.keep, |d| {
                    jiff::SignedDuration::from_hours(24 * i64::from(d))
                }),
        );
        // Lambda runs nothing after the answer, and other function instances change the
        // ad-hoc windows.
        let state =
            AppState::with_modes(store, inventory, Delivery::InRequest, AdHoc::PerReport).await?;
        let router = failover_app::router(state.clone());
        let after = state.clone();
        let http = service_fn(move |req: lambda_http::Request| {
            let router = router.clone();
            async move { router.oneshot(without_stage(req)).await }
        });
        let handler = service_fn(move |event: LambdaEvent<Value>| {
            let (state, mut http) = (state.clone(), Adapter::from(http.clone()));
            async move {
                if is_schedule(&event.payload) {
                    failover_app::ui::session::end_sessions_of_gone_keys(&state).await;
                    let sent = failover_app::worker::drain(&state, DRAIN_BUDGET).await?;
                    tracing::info!(sent, "scheduled drain done");
                    return Ok::<Value, lambda_http::Error>(json!({ "attempted": sent }));
                }
                let request: LambdaRequest = serde_json::from_value(event.payload)
                    .context("the event is neither an HTTP request nor a schedule")?;
                let response = http.call(LambdaEvent::new(request, event.context)).await?;
                Ok(serde_json::to_value(response)?)
            }
        });
        lambda_http::lambda_runtime::Runtime::new(handler)
            .layer(AfterAnswer(after))
            .run()
            .await
            .map_err(|e| anyhow::anyhow!("Lambda runtime: {e}"))?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// Runs [`AppState::finish_deferred`] once an invocation's answer is posted, before the
/// runtime asks for the next event (Lambda freezes the function only then), so the outcomes
/// being recorded while the answer went out are written before the function goes idle.
#[derive(Clone)]
struct AfterAnswer(AppState<Dynamo>);

impl<S> tower::Layer<S> for AfterAnswer {
    type Service = AfterAnswerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AfterAnswerService {
            inner,
            state: self.0.clone(),
        }
    }
}

/// The service of [`AfterAnswer`].
struct AfterAnswerService<S> {
    inner: S,
    state: AppState<Dynamo>,
}

impl<S> Service<LambdaInvocation> for AfterAnswerService<S>
where
    S: Service<LambdaInvocation, Response = (), Error = BoxError>,
    S::Future: 'static,
{
    type Response = ();
    type Error = BoxError;
    // Not `Send`: the runtime polls it on its one thread (axum's body is not `Sync`).
    type Future = Pin<Box<dyn Future<Output = Result<(), BoxError>>>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
        let (answered, state) = (self.inner.call(invocation), self.state.clone());
        Box::pin(async move {
            let result = answered.await;
            state.finish_deferred().await;
            result
        })
    }
}

/// An EventBridge schedule's event.
fn is_schedule(payload: &Value) -> bool {
    payload.get("source").and_then(Value::as_str) == Some("aws.events")
}

/// The request with a REST API stage (`/prod/v1/reports`) taken off the path, so the routes
/// match under any stage name; the caller's address (API Gateway's `sourceIp`) where `serve`
/// has the connection's, so wrong keys are counted per address; the body as axum's.
fn without_stage(req: lambda_http::Request) -> axum::http::Request<AxumBody> {
    let (stage, source) = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(c)) => (c.stage.clone(), c.identity.source_ip.clone()),
        Some(RequestContext::ApiGatewayV2(c)) => (c.stage.clone(), c.http.source_ip.clone()),
        _ => (None, None),
    };
    let (mut parts, body) = req.into_parts();
    let client = failover_app::client::Client::behind_gateway(
        source.and_then(|s| s.parse::<std::net::IpAddr>().ok()),
        &parts.headers,
    );
    parts.extensions.insert(client);
    if let Some(stage) = stage.filter(|s| s != "$default") {
        let prefix = format!("/{stage}");
        let path = parts.uri.path();
        if let Some(rest) = path
            .strip_prefix(&prefix)
            .filter(|r| r.is_empty() || r.starts_with('/'))
        {
            let rest = if rest.is_empty() { "/" } else { rest };
            let query = parts
                .uri
                .query()
                .map(|q| format!("?{q}"))
                .unwrap_or_default();
            if let Ok(uri) = format!("{rest}{query}").parse() {
                parts.uri = uri;
            }
        }
    }
    axum::http::Request::from_parts(parts, AxumBody::from(body.to_vec()))
}
