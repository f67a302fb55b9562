//! `HttpWebhookTransport`: posts webhook deliveries (the `WebhookTransport`
//! port of kiln-core's webhooks), signed with `X-Kiln-Signature` when the
//! webhook has a secret.
//!
//! A webhook URL is the tenant's choice, so it gets the same guard as a
//! vault's provider URL: `https://` only, private and local addresses
//! refused (literals when the webhook is set, names after every DNS
//! resolution), no proxy (a proxy would skip the check), no redirects (one
//! could point inside). `--allow-private-network` lifts the guard and allows
//! `http://`, for development against a local receiver.

use std::time::Duration;

use async_trait::async_trait;

use kiln_api::webhook::{SIGNATURE_HEADER, signature_header};
use kiln_core::webhooks::WebhookTransport;

use crate::guard::{self, PrivateHostRefused};

/// A receiver has this long to answer.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct HttpWebhookTransport {
    http: reqwest::Client,
    allow_private_network: bool,
}

impl HttpWebhookTransport {
    pub fn new(allow_private_network: bool) -> HttpWebhookTransport {
        let mut builder = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kiln-webhooks/", env!("CARGO_PKG_VERSION")));
        if !allow_private_network {
            builder = guard::public_only(builder);
        }
        HttpWebhookTransport {
            http: builder.build().unwrap_or_default(),
            allow_private_network,
        }
    }
}

#[async_trait]
impl WebhookTransport for HttpWebhookTransport {
    fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a valid URL ({e})"))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_private_network => {}
            "http" => return Err("must use https:// (http:// only with --allow-private-network)".into()),
            other => return Err(format!("must use https://, not {other}://")),
        }
        if parsed.host().is_none() {
            return Err("has no host".into());
        }
        if !self.allow_private_network {
            guard::check_url(url)?;
        }
        Ok(())
    }

    async fn post(
        &self,
        url: &str,
        body: String,
        secret: Option<String>,
        timestamp: i64,
    ) -> Result<u16, String> {
        self.check_url(url)?;
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(secret) = secret {
            request = request.header(
                SIGNATURE_HEADER,
                signature_header(&secret, timestamp, body.as_bytes()),
            );
        }
        match request.body(body).send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(e) => Err(describe(&e)),
        }
    }
}

/// Why a delivery got no answer, without the URL (it is shown beside it):
/// a refused private host, a timeout, or the innermost cause.
fn describe(e: &reqwest::Error) -> String {
    let mut innermost = None;
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<PrivateHostRefused>() {
            return format!("{refused}");
        }
        innermost = Some(err.to_string());
        source = err.source();
    }
    if e.is_timeout() {
        return format!("no answer within {} s", DELIVERY_TIMEOUT.as_secs());
    }
    let what = if e.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    match innermost {
        Some(cause) => format!("{what}: {cause}"),
        None => what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_https_and_public_unless_the_operator_allows_private_networks() {
        let guarded = HttpWebhookTransport::new(false);
        assert_eq!(guarded.check_url("https://hooks.example.com/kiln"), Ok(()));
        for refused in [
            "http://hooks.example.com/kiln",
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://10.0.0.8/hook",
            "https://169.254.169.254/latest",
            "https://localhost:8443/hook",
            "ftp://example.com/x",
            "not a url",
        ] {
            assert!(guarded.check_url(refused).is_err(), "{refused}");
        }
        let open = HttpWebhookTransport::new(true);
        assert_eq!(open.check_url("http://127.0.0.1:9000/hook"), Ok(()));
        assert!(open.check_url("ftp://127.0.0.1/x").is_err());
    }
}
