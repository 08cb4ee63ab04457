//! The HTTP API's guards, put around the finished router in one place ([`wrap`]):
//!
//! - a token bucket per caller (`[limits] requests_per_second`, `burst`): the caller is the
//!   device (`X-Device-Id`) or the bearer token when there is one (hashed, not verified here:
//!   the routes verify it; every access token is unique, so each login and each refresh has a
//!   bucket of its own), else the client IP. Over the limit: 429 with `Retry-After`, counted
//!   in `aquatwin_http_rate_limited_total`. `/health` and `/metrics` are exempt (probes and
//!   scrapers must always get through). The table of callers is bounded (see [`RateLimiter`]);
//! - a request body limit on every route but ingest, which has its own (`[http]
//!   body_limit_bytes`, counted as an ingest refusal): 413;
//! - security headers on every response (`nosniff`, no framing, no referrer, a CSP that allows
//!   nothing but what the docs page needs, `Cache-Control: no-store` on `/api/v1/*`, no
//!   `Server`);
//! - a handler's panic becomes a 500 without its message (logged here), and the server goes on;
//! - unknown routes are 404 and wrong methods 405.
//!
//! Every refusal is the API's JSON error body `{"error": "<reason>", "detail": "..."}`.

use std::any::Any;
use std::collections::HashMap;
use std::hash::{BuildHasher as _, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actors::metrics::Metrics;
use axum::body::{Body, HttpBody as _};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use tower_http::catch_panic::CatchPanicLayer;

use super::config::Limits;

/// Routes that are never rate limited: liveness probes and metric scrapers.
const EXEMPT_FROM_RATE_LIMIT: &[&str] = &["/health", "/metrics"];
/// The ingest route enforces its own body limit (and counts its refusals).
const INGEST_PATH: &str = "/api/v1/ingest";
/// The interactive API documentation: the only page that runs a script.
const DOCS_PATH: &str = "/api/v1/docs";
/// The API's routes: their answers are never cached.
const API_PREFIX: &str = "/api/v1/";
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const DOCS_CSP: &str = "default-src 'none'; frame-ancestors 'none'; \
                        script-src 'unsafe-inline'; connect-src 'self'; style-src 'unsafe-inline'";
/// Callers tracked at most: about 64 bytes each, so a few MiB whatever the number of attackers.
const MAX_CALLERS: usize = 65_536;
/// How often at most a full caller table is swept (a sweep visits every caller).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
const RATE_LIMITED_METRIC: &str = "aquatwin_http_rate_limited_total";
const RATE_LIMITED_HELP: &str = "HTTP requests refused with 429 (rate limited), since start.";

/// `router` with the API's guards around it, set by `limits`; 429s are counted in `metrics`.
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so anonymous callers are
/// told apart by IP.
pub(super) fn wrap(router: Router, limits: &Limits, metrics: Arc<Metrics>) -> Router {
    let guard = Arc::new(Guard {
        limiter: RateLimiter::new(limits.requests_per_second, limits.burst, MAX_CALLERS),
        body_limit: limits.body_limit_bytes,
        metrics,
        rate_limited: Mutex::new(0),
    });
    guard.count_rate_limited(0);
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn_with_state(guard, guarded))
}

struct Guard {
    limiter: RateLimiter,
    body_limit: usize,
    metrics: Arc<Metrics>,
    /// 429s so far; the lock keeps the published total from going back under concurrent 429s.
    rate_limited: Mutex<u64>,
}

impl Guard {
    fn count_rate_limited(&self, more: u64) {
        let mut total = self
            .rate_limited
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *total += more;
        self.metrics
            .set_gauge(RATE_LIMITED_METRIC, RATE_LIMITED_HELP, *total as f64);
    }

    /// The answer to `request`: refused by a guard, or the router's.
    async fn admit(&self, request: Request, next: Next) -> Response {
        let path = request.uri().path();
        if !EXEMPT_FROM_RATE_LIMIT.contains(&path) {
            let caller = self.limiter.caller_key(&request);
            if let Err(wait) = self.limiter.take(caller, Instant::now()) {
                self.count_rate_limited(1);
                return rate_limited(wait, self.limiter.rate);
            }
        }
        let request = if path == INGEST_PATH {
            request
        } else {
            match limit_body(request, self.body_limit).await {
                Ok(request) => request,
                Err(refusal) => return refusal,
            }
        };
        next.run(request).await
    }
}

async fn guarded(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let docs = path == DOCS_PATH;
    let api = path.starts_with(API_PREFIX);
    let mut response = guard.admit(request, next).await;
    secure(response.headers_mut(), api, docs);
    response
}

/// The security headers of every answer (`api`: a route under `/api/v1/`; `docs`: the
/// documentation page).
fn secure(headers: &mut HeaderMap, api: bool, docs: bool) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(if docs { DOCS_CSP } else { API_CSP }),
    );
    if api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    headers.remove(header::SERVER);
}

fn error(status: StatusCode, reason: &str, detail: String) -> Response {
    (status, Json(json!({"error": reason, "detail": detail}))).into_response()
}

fn rate_limited(wait: Duration, rate: f64) -> Response {
    // Whole seconds, rounded up: retrying at `Retry-After` always finds a token.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("more than {rate} requests per second from this caller; retry in {seconds} s"),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// `request` with a body of at most `limit` bytes, or the 413 refusing it. A declared length
/// is checked at once (hyper holds the body to it); a body of unknown length is read here.
async fn limit_body(request: Request, limit: usize) -> Result<Request, Response> {
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("body over the limit of {limit} bytes"),
        )
    };
    let size = request.body().size_hint();
    if size.lower() > limit as u64 {
        return Err(too_large());
    }
    if size.upper().is_some() {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

async fn not_found(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {method} {}", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} does not take {method} (see the Allow header)",
            uri.path()
        ),
    )
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!("a request handler panicked: {message}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error".into(),
    )
}

/// Token buckets per caller. A bucket that has refilled to `burst` is the same as no bucket,
/// so when the table is full those are dropped; if it is still full (more callers active at
/// once than it holds, i.e. a flood of forged identities), new callers share one overflow
/// bucket: memory stays bounded and known callers keep their own budget.
struct RateLimiter {
    rate: f64,
    burst: f64,
    capacity: usize,
    hasher: RandomState,
    table: Mutex<CallerTable>,
}

struct CallerTable {
    buckets: HashMap<u64, Bucket>,
    overflow: Bucket,
    last_sweep: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.updated = now;
    }

    /// Takes one token, or says how long until there is one.
    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> Result<(), Duration> {
        self.refill(now, rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// Who a request counts against.
#[derive(Hash)]
enum Caller<'r> {
    Device(&'r [u8]),
    Token(&'r [u8]),
    Address(Option<IpAddr>),
}

impl RateLimiter {
    fn new(rate: f64, burst: u32, capacity: usize) -> Self {
        Self {
            rate,
            burst: f64::from(burst),
            capacity,
            hasher: RandomState::new(),
            table: Mutex::new(CallerTable {
                buckets: HashMap::new(),
                overflow: Bucket {
                    tokens: f64::from(burst),
                    updated: Instant::now(),
                },
                last_sweep: None,
            }),
        }
    }

    /// The caller of `request`, hashed with a per-process key (forged identities cannot aim
    /// at another caller's bucket).
    fn caller_key(&self, request: &Request) -> u64 {
        let headers = request.headers();
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
        let caller = match (headers.get("x-device-id"), bearer) {
            (Some(device), _) => Caller::Device(device.as_bytes()),
            (None, Some(token)) => Caller::Token(token.trim_ascii()),
            (None, None) => Caller::Address(
                request
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ConnectInfo(peer)| peer.ip()),
            ),
        };
        self.hasher.hash_one(caller)
    }

    /// Takes a token from `caller`'s bucket at `now`, or says how long until there is one.
    fn take(&self, caller: u64, now: Instant) -> Result<(), Duration> {
        let (rate, burst) = (self.rate, self.burst);
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(bucket) = table.buckets.get_mut(&caller) {
            return bucket.take(now, rate, burst);
        }
        if table.buckets.len() >= self.capacity {
            table.sweep(now, rate, burst);
        }
        if table.buckets.len() >= self.capacity {
            return table.overflow.take(now, rate, burst);
        }
        let mut bucket = Bucket {
            tokens: burst,
            updated: now,
        };
        let taken = bucket.take(now, rate, burst);
        table.buckets.insert(caller, bucket);
        taken
    }
}

impl CallerTable {
    /// Drops the callers whose bucket is full again (at most once per [`SWEEP_INTERVAL`]).
    fn sweep(&mut self, now: Instant, rate: f64, burst: f64) {
        if self
            .last_sweep
            .is_some_and(|last| now.saturating_duration_since(last) < SWEEP_INTERVAL)
        {
            return;
        }
        self.last_sweep = Some(now);
        self.buckets.retain(|_, bucket| {
            bucket.refill(now, rate, burst);
            bucket.tokens < burst
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn callers(limiter: &RateLimiter) -> usize {
        limiter.table.lock().unwrap().buckets.len()
    }

    #[test]
    fn a_bucket_allows_the_burst_then_the_rate() {
        let limiter = RateLimiter::new(10.0, 3, 16);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(1, start).is_ok());
        }
        let wait = limiter.take(1, start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // Another caller has its own budget.
        assert!(limiter.take(2, start).is_ok());
        // One token per 1/rate seconds, never more than the burst.
        assert!(limiter.take(1, start + Duration::from_millis(100)).is_ok());
        assert!(limiter.take(1, start + Duration::from_millis(100)).is_err());
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.take(1, later).is_ok());
        }
        assert!(limiter.take(1, later).is_err());
    }

    #[test]
    fn the_caller_table_stays_bounded() {
        let capacity = 100;
        let limiter = RateLimiter::new(1.0, 2, capacity);
        let start = Instant::now();
        // A flood of distinct callers at one instant: the table fills, then they share the
        // overflow bucket (burst 2), while a known caller keeps its own.
        assert!(limiter.take(u64::MAX, start).is_ok());
        let admitted = (0..10_000u64)
            .filter(|caller| limiter.take(*caller, start).is_ok())
            .count();
        assert_eq!(callers(&limiter), capacity);
        assert_eq!(admitted, capacity - 1 + 2);
        assert!(limiter.take(u64::MAX, start).is_ok());
        // Once their buckets are full again, the old callers are forgotten for new ones.
        let later = start + Duration::from_secs(10);
        assert!(limiter.take(20_000, later).is_ok());
        assert_eq!(callers(&limiter), 1);
    }

    /// Sends a raw HTTP/1.1 request to `address`; returns the whole answer.
    async fn exchange(address: SocketAddr, request: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    async fn explode() -> &'static str {
        panic!("the secret detail of the panic")
    }

    #[tokio::test]
    async fn a_panic_is_a_500_without_its_message_and_the_server_goes_on() {
        let router = Router::new()
            .route("/api/v1/explode", get(explode))
            .route("/api/v1/fine", get(|| async { "fine" }));
        let guarded = wrap(router, &Limits::default(), Arc::new(Metrics::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                guarded.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        let request =
            |path: &str| format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let answer = exchange(address, &request("/api/v1/explode")).await;
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        assert!(!answer.contains("secret detail"), "{answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            body,
            json!({"error": "internal", "detail": "internal error"})
        );
        assert!(answer
            .to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"));
        let answer = exchange(address, &request("/api/v1/fine")).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("fine"), "{answer}");
        server.abort();
    }
}
