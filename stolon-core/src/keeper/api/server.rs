//! The HTTP server around the verdicts: HTTP/1.1 (hyper), optional TLS and basic authentication, GET, HEAD
//! and OPTIONS; `/metrics` too when the keeper shares one listener between the API and its metrics.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::auth::BasicAuth;
use super::endpoint::{ApiError, Endpoint, Method, Request, parse_request};
use super::sample::PgSampler;
use super::verdict::{Answer, Inputs, check, status};
use super::view::KeeperView;
use crate::ctl::status::{gather_status, render_json};
use crate::store::ClusterStore;

/// Renders the Prometheus text exposition of the daemon's registry.
pub type MetricsRender = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;
/// Bound of a TLS handshake and of reading a request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest life of one connection (keep-alive included).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// How the API is served.
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// TLS (`--api-tls-cert-file`, `--api-tls-key-file`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Basic authentication of every request (`--api-basic-auth-file`).
    pub auth: Option<BasicAuth>,
    /// `/metrics`, when the listener is shared with `--metrics-listen-address`.
    pub metrics: Option<MetricsRender>,
}

/// The API's listener, bound before the keeper starts (a bad address fails the start).
pub struct ApiListener {
    listener: TcpListener,
    options: ServeOptions,
}

impl ApiListener {
    /// Binds `addr`; an error names the address.
    pub async fn bind(addr: SocketAddr, options: ServeOptions) -> std::io::Result<ApiListener> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("keeper API listener on {addr}: {e}")))?;
        Ok(ApiListener { listener, options })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// What the handlers read: the keeper's view, PostgreSQL, and the store for `/cluster`.
pub struct ApiState {
    /// This keeper's UID.
    pub keeper_uid: String,
    /// Shared with the keeper's loops.
    pub view: Arc<KeeperView>,
    /// Observes PostgreSQL.
    pub sampler: PgSampler,
    /// For `/cluster`.
    pub store: ClusterStore,
    /// Failsafe mode's confirmations (`/failsafe/*`).
    pub failsafe: Arc<crate::failsafe::FailsafeKeeper>,
}

struct Ctx {
    state: Arc<ApiState>,
    auth: Option<BasicAuth>,
    metrics: Option<MetricsRender>,
}

/// Serves the API on `api` until the returned task is aborted.
pub fn spawn(api: ApiListener, state: Arc<ApiState>) -> JoinHandle<()> {
    let ApiListener { listener, options } = api;
    let tls = options.tls.map(TlsAcceptor::from);
    let ctx = Arc::new(Ctx { state, auth: options.auth, metrics: options.metrics });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "keeper API: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!("keeper API: too many connections, closing a new one");
                continue;
            };
            let (ctx, tls) = (ctx.clone(), tls.clone());
            tokio::spawn(async move {
                let _slot = slot;
                let serve = async {
                    match tls {
                        None => serve_connection(tcp, ctx).await,
                        Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => serve_connection(stream, ctx).await,
                            Ok(Err(e)) => tracing::debug!(error = %e, "keeper API: TLS handshake failed"),
                            Err(_) => tracing::debug!("keeper API: TLS handshake timed out"),
                        },
                    }
                };
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, serve).await;
            });
        }
    })
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(stream: S, ctx: Arc<Ctx>) {
    let service = service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(handle(&ctx, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "keeper API: connection error");
    }
}

async fn handle(ctx: &Ctx, req: hyper::Request<Incoming>) -> Response<Full<Bytes>> {
    let method = Method::parse(req.method().as_str());
    if let Some(auth) = &ctx.auth {
        if !auth.allows(req.headers().get(AUTHORIZATION).map(|v| v.as_bytes())) {
            let e = ApiError { status: 401, message: "authentication required (HTTP basic)".into() };
            let mut resp = error(&e, method);
            resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"stolon-keeper\""));
            return resp;
        }
    }
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    match parse_request(req.method().as_str(), &target) {
        Ok(r) => answer(ctx, r).await,
        Err(e) => error(&e, method),
    }
}

async fn answer(ctx: &Ctx, r: Request) -> Response<Full<Bytes>> {
    let state = &ctx.state;
    match r.endpoint {
        Endpoint::Metrics => match &ctx.metrics {
            None => error(
                &ApiError {
                    status: 404,
                    message: "/metrics is served on --metrics-listen-address, not on this listener".into(),
                },
                Some(r.method),
            ),
            Some(render) => match render() {
                Ok(text) => respond(200, "application/openmetrics-text; version=1.0.0; charset=utf-8", text, r.method),
                Err(e) => error(&ApiError { status: 500, message: format!("encoding metrics: {e}") }, Some(r.method)),
            },
        },
        Endpoint::Cluster => match gather_status(&state.store).await {
            Ok(report) => respond(200, "application/json", render_json(&report.status), r.method),
            Err(e) => {
                let body = json!({ "error": format!("cannot read the cluster status from the store: {e}") });
                respond(503, "application/json", body.to_string(), r.method)
            }
        },
        Endpoint::FailsafeFollower | Endpoint::FailsafeMaster => {
            let (status, body) = failsafe_answer(state, r.endpoint).await;
            respond(status, "application/json", body.to_string(), r.method)
        }
        Endpoint::Check(c) => {
            let liveness = c == super::endpoint::Check::Liveness;
            let a = with_inputs(state, !liveness, |i| check(c, r.max_lag, i)).await;
            respond(a.status, "application/json", a.body.to_string(), r.method)
        }
        Endpoint::Status => {
            let a = with_inputs(state, true, status).await;
            respond(a.status, "application/json", a.body.to_string(), r.method)
        }
    }
}

/// The failsafe endpoints: 200 with the confirmation, 503 with why not.
async fn failsafe_answer(state: &ApiState, endpoint: Endpoint) -> (u16, serde_json::Value) {
    let pg = state.sampler.observe().await;
    let snapshot = state.view.cluster();
    let cd = snapshot.as_ref().map(|s| &*s.cd);
    let sample = pg.up().ok();
    let answer = if endpoint == Endpoint::FailsafeFollower {
        let receiver = sample
            .and_then(|s| s.receiver.as_ref())
            .map(|r| crate::failsafe::decide::Streaming { status: &r.status, sender_host: r.sender_host.as_deref() });
        let keeper = &state.keeper_uid;
        let confirmed = state.failsafe.confirm(cd, receiver);
        confirmed.map(|(m, w)| json!({ "keeper": keeper, "following": m, "windowMs": w.as_millis() as u64 }))
    } else {
        let primary = sample.is_some_and(|s| !s.in_recovery);
        state
            .failsafe
            .master_answer(cd, primary)
            .map(|(m, v)| json!({ "master": m, "validForMs": v.as_millis() as u64 }))
    };
    match answer {
        Ok(body) => (200, body),
        Err(e) => (503, json!({ "error": e })),
    }
}

/// Gathers the inputs of a verdict: the view, and PostgreSQL observed now (`observe`) or as last observed.
async fn with_inputs(state: &ApiState, observe: bool, f: impl FnOnce(&Inputs) -> Answer) -> Answer {
    let pg = if observe { state.sampler.observe().await } else { state.sampler.last() };
    let snapshot = state.view.cluster();
    let local_db = state.view.local_db();
    let now = Instant::now();
    let loops = state.view.loops(now);
    let inputs = Inputs {
        keeper_uid: &state.keeper_uid,
        cluster: snapshot.as_ref().map(|s| (&*s.cd, now.saturating_duration_since(s.read_at))),
        local_db: &local_db,
        pg: &pg,
        loops: &loops,
    };
    f(&inputs)
}

fn error(e: &ApiError, method: Option<Method>) -> Response<Full<Bytes>> {
    let body = json!({ "error": e.message }).to_string();
    let mut resp = respond(e.status, "application/json", body, method.unwrap_or(Method::Get));
    if e.status == 405 {
        resp.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD, OPTIONS"));
    }
    resp
}

fn respond(status: u16, content_type: &'static str, body: String, method: Method) -> Response<Full<Bytes>> {
    let body = if method.has_body() { Bytes::from(body) } else { Bytes::new() };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
