//! [`GuardedFetch`]: the sandbox's `fetch()`, behind kiln-core's
//! `WebFetch` port.
//!
//! The agent's code chooses the URL, so every request is checked against a
//! [`FetchPolicy`]: only `http` and `https`; the host deny list, then the
//! allowlist (`*.example.com` matches subdomains); and, unless the
//! operator allows private networks, no private, loopback or link-local
//! address, neither as an IP literal (checked before sending) nor after
//! DNS resolution ([`crate::guard::public_only`] on the client). Redirects are
//! followed by a custom policy that re-applies the host lists and the
//! literal check on every hop, up to `max_redirects`. The body is read as
//! a stream and cut at `max_response_bytes`; the whole request is bounded
//! by `timeout`. Proxies from the environment are not used while the guard
//! is on (a proxy would resolve names where the guard cannot see them).
//!
//! Errors are short messages for the model's code (`fetch refused: host
//! example.org is not in the allowlist`, `fetch timed out after 30s`) and
//! never echo the URL, which may carry credentials.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use kiln_core::runtime::fetch::{FetchRequest, FetchResponse, WebFetch};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};

use crate::guard::{PrivateHostRefused, check_url};

/// What the sandbox's `fetch()` may reach and how much it may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Reach private, loopback and link-local addresses (default false).
    pub allow_private_network: bool,
    /// Hosts that may be fetched; empty: any host. Entries are host names
    /// (or IP literals); `*.example.com` matches every subdomain of
    /// `example.com` (not `example.com` itself).
    pub allow_hosts: Vec<String>,
    /// Hosts that may not be fetched, checked before the allowlist; same
    /// syntax.
    pub deny_hosts: Vec<String>,
    /// The body is cut after this many bytes (default 5 MiB).
    pub max_response_bytes: usize,
    /// The whole request, body included (default 30 s).
    pub timeout: Duration,
    /// Redirects followed before giving up (default 5).
    pub max_redirects: usize,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow_private_network: false,
            allow_hosts: Vec::new(),
            deny_hosts: Vec::new(),
            max_response_bytes: 5 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            max_redirects: 5,
        }
    }
}

/// Sent as `User-Agent` unless the code sets one.
pub const USER_AGENT: &str = concat!("kiln-agent/", env!("CARGO_PKG_VERSION"));

const PRIVATE_HINT: &str = "(the operator can allow private networks with --allow-private-network)";

/// Request headers the code may not set: `Host` (the URL decides it),
/// hop-by-hop headers, and `Content-Length` (the body decides it).
const DROPPED_HEADERS: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// A refusal raised inside the redirect policy, found again in the
/// error's source chain.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The `WebFetch` implementation: a reqwest client configured by a
/// [`FetchPolicy`].
#[derive(Debug, Clone)]
pub struct GuardedFetch {
    policy: Arc<FetchPolicy>,
    client: reqwest::Client,
}

impl GuardedFetch {
    pub fn new(policy: FetchPolicy) -> GuardedFetch {
        let policy = Arc::new(policy);
        let client = build_client(policy.clone());
        GuardedFetch { policy, client }
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    async fn send(&self, request: FetchRequest) -> Result<FetchResponse, String> {
        let url = Url::parse(request.url.trim()).map_err(|e| format!("fetch refused: invalid URL ({e})"))?;
        check_target(&self.policy, &url)?;
        let method = parse_method(&request.method)?;
        let headers = request_headers(&request.headers)?;
        let max_bytes = request.max_bytes.map_or(self.policy.max_response_bytes, |m| {
            m.min(self.policy.max_response_bytes)
        });
        let mut builder = self.client.request(method, url).headers(headers);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| describe_error(&self.policy, &e))?;
        let status = response.status().as_u16();
        let final_url = response.url().to_string();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let (body, truncated) = read_limited(response, max_bytes)
            .await
            .map_err(|e| describe_error(&self.policy, &e))?;
        Ok(FetchResponse {
            status,
            url: final_url,
            headers,
            body,
            truncated,
        })
    }
}

#[async_trait]
impl WebFetch for GuardedFetch {
    async fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, String> {
        let limit = self.policy.timeout;
        match tokio::time::timeout(limit, self.send(request)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(timed_out(limit)),
        }
    }
}

fn build_client(policy: Arc<FetchPolicy>) -> reqwest::Client {
    let guarded = !policy.allow_private_network;
    let redirects = policy.clone();
    let redirect = reqwest::redirect::Policy::custom(move |attempt| {
        // `previous` holds the first URL and every hop before this one.
        if attempt.previous().len() > redirects.max_redirects {
            let message = format!(
                "fetch refused: too many redirects (more than {})",
                redirects.max_redirects
            );
            return attempt.error(Refused(message));
        }
        match check_target(&redirects, attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(message) => attempt.error(Refused(format!("{message} (redirect)"))),
        }
    });
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(redirect)
        .referer(false)
        .connect_timeout(policy.timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(90));
    if guarded {
        builder = crate::guard::public_only(builder);
    }
    builder.build().expect("the HTTP client builds")
}

/// Whether `url` may be fetched under `policy`: scheme, deny list,
/// allowlist, and (unless private networks are allowed) private IP
/// literals and `localhost`.
fn check_target(policy: &FetchPolicy, url: &Url) -> Result<(), String> {
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "fetch refused: only http and https URLs can be fetched, not {scheme}:"
        ));
    }
    let Some(host) = url.host_str().map(normalise_host) else {
        return Err("fetch refused: the URL has no host".to_owned());
    };
    if policy
        .deny_hosts
        .iter()
        .any(|pattern| host_matches(pattern, &host))
    {
        return Err(format!("fetch refused: host {host} is in the denylist"));
    }
    if !policy.allow_hosts.is_empty()
        && !policy
            .allow_hosts
            .iter()
            .any(|pattern| host_matches(pattern, &host))
    {
        return Err(format!("fetch refused: host {host} is not in the allowlist"));
    }
    if !policy.allow_private_network {
        let local_name = host == "localhost" || host.ends_with(".localhost");
        if local_name || check_url(url.as_str()).is_err() {
            return Err(format!(
                "fetch refused: {host} is a private address {PRIVATE_HINT}"
            ));
        }
    }
    Ok(())
}

/// Lower case, without IPv6 brackets or a trailing dot.
fn normalise_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// `pattern` is a host name (exact match) or `*.domain` (any subdomain of
/// `domain`); `host` is normalised.
fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = normalise_host(pattern.trim());
    match pattern.strip_prefix("*.") {
        Some(domain) => {
            host.len() > domain.len() + 1 && host.ends_with(domain) && {
                let dot = host.len() - domain.len() - 1;
                host.as_bytes()[dot] == b'.'
            }
        }
        None => !pattern.is_empty() && pattern == host,
    }
}

fn parse_method(method: &str) -> Result<Method, String> {
    let method = method.trim();
    if method.is_empty() {
        return Ok(Method::GET);
    }
    match method.to_ascii_uppercase().as_str() {
        "GET" => Ok(Method::GET),
        "HEAD" => Ok(Method::HEAD),
        "POST" => Ok(Method::POST),
        "PUT" => Ok(Method::PUT),
        "PATCH" => Ok(Method::PATCH),
        "DELETE" => Ok(Method::DELETE),
        "OPTIONS" => Ok(Method::OPTIONS),
        _ => {
            let shown: String = method.chars().take(32).collect();
            Err(format!("fetch refused: unsupported method {shown}"))
        }
    }
}

fn request_headers(headers: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = name.trim();
        if DROPPED_HEADERS
            .iter()
            .any(|dropped| name.eq_ignore_ascii_case(dropped))
        {
            continue;
        }
        let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            let shown: String = name.chars().take(64).collect();
            format!("fetch refused: invalid header name {shown:?}")
        })?;
        // The value is not echoed: it may be a credential.
        let header_value = HeaderValue::from_str(value)
            .map_err(|_| format!("fetch refused: invalid value for header {header_name}"))?;
        map.append(header_name, header_value);
    }
    Ok(map)
}

/// The body as lossy UTF-8, cut after `limit` bytes (then `true`). Reading
/// stops at the limit; dropping the response aborts the transfer.
async fn read_limited(response: reqwest::Response, limit: usize) -> Result<(String, bool), reqwest::Error> {
    let mut body: Vec<u8> = Vec::new();
    let mut truncated = false;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    if truncated {
        let keep = complete_utf8_prefix(&body);
        body.truncate(keep);
    }
    Ok((String::from_utf8_lossy(&body).into_owned(), truncated))
}

/// The length of `bytes` without a UTF-8 sequence cut off at its end (so a
/// cut in the middle of a character does not leave a replacement
/// character).
fn complete_utf8_prefix(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(4) {
        let byte = bytes[len - back];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: keep looking for the lead
        }
        let needed = match byte {
            b if b & 0x80 == 0 => 1,
            b if b & 0xE0 == 0xC0 => 2,
            b if b & 0xF0 == 0xE0 => 3,
            b if b & 0xF8 == 0xF0 => 4,
            _ => return len, // not UTF-8 anyway
        };
        return if back < needed { len - back } else { len };
    }
    len
}

fn timed_out(limit: Duration) -> String {
    let shown = if limit.subsec_nanos() == 0 {
        format!("{}s", limit.as_secs())
    } else {
        format!("{}ms", limit.as_millis())
    };
    format!("fetch timed out after {shown}")
}

/// A short message for a failed request: refusals raised by the redirect
/// policy or the resolver, timeouts, then connection failures with their
/// innermost cause. Never the URL (it may carry credentials).
fn describe_error(policy: &FetchPolicy, error: &reqwest::Error) -> String {
    let mut innermost: Option<String> = None;
    let mut source = std::error::Error::source(error);
    while let Some(inner) = source {
        if let Some(refused) = inner.downcast_ref::<Refused>() {
            return refused.0.clone();
        }
        if let Some(private) = inner.downcast_ref::<PrivateHostRefused>() {
            return format!(
                "fetch refused: {} resolves only to private addresses {PRIVATE_HINT}",
                private.host
            );
        }
        innermost = Some(inner.to_string());
        source = inner.source();
    }
    let host = error
        .url()
        .and_then(Url::host_str)
        .map(normalise_host)
        .unwrap_or_else(|| "the host".to_owned());
    if error.is_timeout() && error.is_connect() {
        return format!("fetch timed out connecting to {host}");
    }
    if error.is_timeout() {
        return timed_out(policy.timeout);
    }
    let cause = innermost.map(|cause| match error.url() {
        Some(url) => cause.replace(url.as_str(), "<url>"),
        None => cause,
    });
    let what = if error.is_connect() {
        format!("could not connect to {host}")
    } else if error.is_body() || error.is_decode() {
        format!("reading the response from {host} failed")
    } else if error.is_redirect() {
        format!("a redirect from {host} could not be followed")
    } else {
        format!("the request to {host} failed")
    };
    match cause {
        Some(cause) => format!("fetch failed: {what}: {cause}"),
        None => format!("fetch failed: {what}"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::Query;
    use axum::http::{HeaderMap as AxumHeaders, StatusCode, header};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{any, get};

    use super::*;

    struct Server {
        addr: SocketAddr,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Server {
        fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }
    }

    #[derive(serde::Deserialize)]
    struct To {
        to: String,
    }

    async fn hello() -> Response {
        (
            [("x-test", "yes"), ("content-type", "text/plain")],
            "hello, world",
        )
            .into_response()
    }

    async fn echo(method: axum::http::Method, headers: AxumHeaders, body: String) -> Response {
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let custom = headers
            .get("x-custom")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        format!("{method} {agent} {custom} {body}").into_response()
    }

    async fn big() -> Response {
        // 100 000 bytes in chunks, so the limit cuts a stream.
        let chunks = (0..100).map(|_| Ok::<_, std::convert::Infallible>("é".repeat(500)));
        Body::from_stream(futures::stream::iter(chunks)).into_response()
    }

    async fn slow() -> Response {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "late".into_response()
    }

    async fn redirect(Query(to): Query<To>) -> Response {
        (StatusCode::FOUND, [(header::LOCATION, to.to)]).into_response()
    }

    async fn looping() -> Response {
        (StatusCode::FOUND, [(header::LOCATION, "/loop")]).into_response()
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "a stand-in web site for fetch(), not Kiln's API: it has no OpenAPI document to keep in step"
    )]
    async fn start() -> Server {
        let router = Router::new()
            .route("/hello", get(hello))
            .route("/echo", any(echo))
            .route("/big", get(big))
            .route("/slow", get(slow))
            .route("/redirect", get(redirect))
            .route("/loop", get(looping));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the test site binds");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router.into_make_service()).await;
        });
        Server { addr, task }
    }

    fn private_ok() -> FetchPolicy {
        FetchPolicy {
            allow_private_network: true,
            ..FetchPolicy::default()
        }
    }

    fn get_request(url: impl Into<String>) -> FetchRequest {
        FetchRequest {
            url: url.into(),
            method: String::new(),
            headers: Vec::new(),
            body: None,
            max_bytes: None,
        }
    }

    #[tokio::test]
    async fn private_addresses_are_refused_by_default() {
        let server = start().await;
        let fetch = GuardedFetch::new(FetchPolicy::default());
        let error = fetch.fetch(get_request(server.url("/hello"))).await.unwrap_err();
        assert_eq!(
            error,
            "fetch refused: 127.0.0.1 is a private address (the operator can allow private networks with \
             --allow-private-network)"
        );
        let by_name = format!("http://localhost:{}/hello", server.addr.port());
        let error = fetch.fetch(get_request(by_name)).await.unwrap_err();
        assert!(
            error.starts_with("fetch refused: localhost is a private address"),
            "{error}"
        );
        let error = fetch.fetch(get_request("http://[::1]/")).await.unwrap_err();
        assert!(
            error.starts_with("fetch refused: ::1 is a private address"),
            "{error}"
        );
        let error = fetch
            .fetch(get_request("http://169.254.169.254/latest/meta-data"))
            .await
            .unwrap_err();
        assert!(error.starts_with("fetch refused: 169.254.169.254"), "{error}");
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused_by_the_resolver() {
        // The literal check would stop `localhost` first; send through the
        // guarded client directly to exercise the resolver.
        let server = start().await;
        let policy = Arc::new(FetchPolicy::default());
        let client = build_client(policy.clone());
        let url = format!("http://localhost:{}/hello", server.addr.port());
        let error = client.get(url).send().await.unwrap_err();
        assert_eq!(
            describe_error(&policy, &error),
            "fetch refused: localhost resolves only to private addresses (the operator can allow private \
             networks with --allow-private-network)"
        );
    }

    #[tokio::test]
    async fn allowed_private_fetch_returns_status_headers_and_body() {
        let server = start().await;
        let fetch = GuardedFetch::new(private_ok());
        let response = fetch.fetch(get_request(server.url("/hello"))).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.url, server.url("/hello"));
        assert_eq!(response.body, "hello, world");
        assert!(!response.truncated);
        assert!(
            response
                .headers
                .contains(&("x-test".to_owned(), "yes".to_owned()))
        );

        let by_name = format!("http://localhost:{}/hello", server.addr.port());
        assert_eq!(
            fetch.fetch(get_request(by_name)).await.unwrap().body,
            "hello, world"
        );

        let missing = fetch.fetch(get_request(server.url("/nope"))).await.unwrap();
        assert_eq!(missing.status, 404);
    }

    #[tokio::test]
    async fn method_headers_and_body_are_sent() {
        let server = start().await;
        let fetch = GuardedFetch::new(private_ok());
        let request = FetchRequest {
            url: server.url("/echo"),
            method: "post".into(),
            headers: vec![
                ("X-Custom".into(), "custom-value".into()),
                ("Host".into(), "evil.example".into()),
                ("Connection".into(), "close".into()),
            ],
            body: Some("payload".into()),
            max_bytes: None,
        };
        let response = fetch.fetch(request).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, format!("POST {USER_AGENT} custom-value payload"));

        let mut request = get_request(server.url("/echo"));
        request.method = "BREW".into();
        assert_eq!(
            fetch.fetch(request).await.unwrap_err(),
            "fetch refused: unsupported method BREW"
        );
    }

    #[tokio::test]
    async fn the_size_limit_truncates_the_body() {
        let server = start().await;
        let fetch = GuardedFetch::new(FetchPolicy {
            max_response_bytes: 1001,
            ..private_ok()
        });
        let response = fetch.fetch(get_request(server.url("/big"))).await.unwrap();
        assert!(response.truncated);
        // 1001 bytes cut the 501st two-byte `é`: the half is dropped.
        assert_eq!(response.body, "é".repeat(500));

        let whole = GuardedFetch::new(private_ok())
            .fetch(get_request(server.url("/big")))
            .await
            .unwrap();
        assert!(!whole.truncated);
        assert_eq!(whole.body.len(), 100_000);
    }

    #[tokio::test]
    async fn the_deny_list_and_the_allowlist_refuse() {
        let server = start().await;
        let denied = GuardedFetch::new(FetchPolicy {
            deny_hosts: vec!["127.0.0.1".into()],
            allow_hosts: vec!["127.0.0.1".into()],
            ..private_ok()
        });
        assert_eq!(
            denied.fetch(get_request(server.url("/hello"))).await.unwrap_err(),
            "fetch refused: host 127.0.0.1 is in the denylist"
        );
        let not_allowed = GuardedFetch::new(FetchPolicy {
            allow_hosts: vec!["example.org".into(), "*.example.com".into()],
            ..private_ok()
        });
        assert_eq!(
            not_allowed
                .fetch(get_request(server.url("/hello")))
                .await
                .unwrap_err(),
            "fetch refused: host 127.0.0.1 is not in the allowlist"
        );
        let allowed = GuardedFetch::new(FetchPolicy {
            allow_hosts: vec!["localhost".into()],
            ..private_ok()
        });
        let by_name = format!("http://LOCALHOST:{}/hello", server.addr.port());
        assert_eq!(allowed.fetch(get_request(by_name)).await.unwrap().status, 200);
    }

    #[tokio::test]
    async fn redirects_are_checked_on_every_hop() {
        let server = start().await;
        let to_localhost = format!("http://localhost:{}/hello", server.addr.port());
        let fetch = GuardedFetch::new(FetchPolicy {
            deny_hosts: vec!["localhost".into()],
            ..private_ok()
        });
        let url = server.url(&format!("/redirect?to={to_localhost}"));
        assert_eq!(
            fetch.fetch(get_request(url.clone())).await.unwrap_err(),
            "fetch refused: host localhost is in the denylist (redirect)"
        );

        let open = GuardedFetch::new(private_ok());
        let followed = open.fetch(get_request(url)).await.unwrap();
        assert_eq!(followed.status, 200);
        assert_eq!(followed.url, to_localhost);

        let limited = GuardedFetch::new(FetchPolicy {
            max_redirects: 2,
            ..private_ok()
        });
        assert_eq!(
            limited.fetch(get_request(server.url("/loop"))).await.unwrap_err(),
            "fetch refused: too many redirects (more than 2)"
        );

        let to_ftp = server.url("/redirect?to=ftp://example.org/x");
        let error = open.fetch(get_request(to_ftp)).await.unwrap_err();
        assert!(error.starts_with("fetch refused: only http and https"), "{error}");
        // A location that is not an http URI at all is not followed: the
        // redirect itself comes back.
        let to_file = server.url("/redirect?to=file:///etc/passwd");
        let unfollowed = open.fetch(get_request(to_file.clone())).await.unwrap();
        assert_eq!((unfollowed.status, unfollowed.url), (302, to_file));
    }

    #[test]
    fn every_hop_gets_the_literal_check() {
        let policy = FetchPolicy::default();
        for private in [
            "http://10.0.0.1/",
            "http://127.0.0.1:8080/",
            "http://[fe80::1]/",
            "http://localhost/",
            "http://app.localhost/",
            "http://localhost./",
        ] {
            let error = check_target(&policy, &Url::parse(private).unwrap()).unwrap_err();
            assert!(error.contains("is a private address"), "{private}: {error}");
        }
        assert_eq!(
            check_target(&policy, &Url::parse("http://10.0.0.1/x").unwrap()).unwrap_err(),
            "fetch refused: 10.0.0.1 is a private address (the operator can allow private networks with \
             --allow-private-network)"
        );
        assert!(check_target(&policy, &Url::parse("https://example.org/").unwrap()).is_ok());
        assert!(check_target(&policy, &Url::parse("http://8.8.8.8/").unwrap()).is_ok());
    }

    #[test]
    fn host_patterns() {
        assert!(host_matches("example.com", "example.com"));
        assert!(host_matches("Example.COM.", "example.com"));
        assert!(!host_matches("example.com", "api.example.com"));
        assert!(host_matches("*.example.com", "api.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "badexample.com"));
        assert!(!host_matches("", "example.com"));
        assert!(host_matches("[::1]", "::1"));
    }

    #[tokio::test]
    async fn slow_endpoints_time_out() {
        let server = start().await;
        let fetch = GuardedFetch::new(FetchPolicy {
            timeout: Duration::from_millis(200),
            ..private_ok()
        });
        let started = std::time::Instant::now();
        let error = fetch.fetch(get_request(server.url("/slow"))).await.unwrap_err();
        assert_eq!(error, "fetch timed out after 200ms");
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(timed_out(Duration::from_secs(30)), "fetch timed out after 30s");
    }

    #[tokio::test]
    async fn other_schemes_and_bad_urls_are_refused() {
        let fetch = GuardedFetch::new(private_ok());
        for url in ["file:///etc/passwd", "ftp://example.org/x", "data:text/plain,hi"] {
            let error = fetch.fetch(get_request(url)).await.unwrap_err();
            assert!(
                error.starts_with("fetch refused: only http and https URLs can be fetched"),
                "{url}: {error}"
            );
        }
        let error = fetch.fetch(get_request("not a url")).await.unwrap_err();
        assert!(error.starts_with("fetch refused: invalid URL"), "{error}");
    }

    #[tokio::test]
    async fn connection_failures_do_not_echo_credentials() {
        // A port nothing listens on (bound, then released).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let fetch = GuardedFetch::new(private_ok());
        let url = format!("http://user:hunter2secret@127.0.0.1:{port}/?token=abc123");
        let error = fetch.fetch(get_request(url)).await.unwrap_err();
        assert!(
            error.starts_with("fetch failed: could not connect to 127.0.0.1"),
            "{error}"
        );
        assert!(
            !error.contains("hunter2secret") && !error.contains("abc123"),
            "{error}"
        );
    }

    #[test]
    fn cut_characters_are_dropped() {
        let text = "aé€😀".as_bytes();
        assert_eq!(complete_utf8_prefix(text), text.len());
        assert_eq!(complete_utf8_prefix(&text[..2]), 1); // half of é
        assert_eq!(complete_utf8_prefix(&text[..5]), 3); // two thirds of €
        assert_eq!(complete_utf8_prefix(&text[..8]), 6); // two quarters of 😀
        assert_eq!(complete_utf8_prefix(b""), 0);
    }
}
