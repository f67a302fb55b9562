//! Outbound requests to tenant-chosen addresses refuse private networks.
//!
//! A provider base URL from a project's vault is the tenant's choice, so a
//! request to it must not reach the server's own network: loopback,
//! private, link-local, carrier-grade NAT, unique-local and similar
//! addresses are refused after DNS resolution (so a public name pointing
//! at 10.0.0.5 is refused too), and IP literals are checked before
//! sending. Base URLs from the server's environment are the operator's and
//! are not guarded. `--allow-private-network` turns the guard off (for
//! development against local model servers).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is on a network a tenant must not reach.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || v6 == Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0) // NAT64 prefix itself
        }
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT 100.64.0.0/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

/// Refuses a URL whose host is a private IP literal (hostnames are checked
/// by [`PublicOnlyResolver`] when they are resolved).
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    let host = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
            Some(IpAddr::V4(Ipv4Addr::LOCALHOST))
        }
        _ => None,
    };
    match host {
        Some(ip) if is_private(ip) => Err(format!(
            "refused to connect to {ip}: private and local addresses are not allowed for project-configured \
             URLs (the operator can pass --allow-private-network)"
        )),
        _ => Ok(()),
    }
}

/// The error [`PublicOnlyResolver`] fails with: `host` resolves only to
/// private or local addresses. Callers find it in an error's source chain
/// (`downcast_ref`) to tell a refusal from a DNS failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateHostRefused {
    pub host: String,
}

impl std::fmt::Display for PrivateHostRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "refused to connect to `{}`: it resolves only to private or local addresses, which are not allowed \
             for project-configured URLs (the operator can pass --allow-private-network)",
            self.host
        )
    }
}

impl std::error::Error for PrivateHostRefused {}

/// A resolver that drops private addresses and fails (with
/// [`PrivateHostRefused`]) if none remain.
#[derive(Debug, Clone, Default)]
pub struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| !is_private(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(PrivateHostRefused { host }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_networks_are_recognised() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "100.128.0.1"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn literal_urls_are_checked_before_sending() {
        assert!(check_url("http://127.0.0.1:8000/v1").is_err());
        assert!(check_url("http://[::1]/v1").is_err());
        assert!(check_url("http://localhost:11434").is_err());
        assert!(check_url("http://169.254.169.254/latest").is_err());
        assert!(check_url("https://api.openai.com/v1").is_ok());
        assert!(check_url("https://8.8.8.8/").is_ok());
    }
}
