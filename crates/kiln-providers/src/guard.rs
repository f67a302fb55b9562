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

/// Whether `ip` is on a network a tenant must not reach. IPv6 forms that
/// carry an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by
/// that address, so `64:ff9b::a00:1` is as private as `10.0.0.1`.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return is_private_v4(v4);
            }
            let [first, second, ..] = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (first & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated, still routed by some)
                || (first == 0x64 && second == 0xff9b) // local-use NAT64 64:ff9b:1::/48 (and the rest of 64:ff9b::/32)
                || (first == 0x2001 && second == 0x0db8) // documentation 2001:db8::/32
        }
    }
}

/// The IPv4 address an IPv6 address stands for, if it is one of the forms
/// that carry one: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
/// `::a.b.c.d`, the NAT64 well-known prefix `64:ff9b::/96`, and 6to4
/// `2002:AABB:CCDD::/48`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // `::` and `::1` are not IPv4 (unspecified, loopback): left to the caller.
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
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

/// `builder` made safe for tenant-chosen URLs: names resolve through
/// [`PublicOnlyResolver`], and no proxy from the environment is used (a
/// proxy resolves the name itself, past the check). Every guarded client
/// is built through here.
pub fn public_only(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    builder
        .dns_resolver(std::sync::Arc::new(PublicOnlyResolver))
        .no_proxy()
}

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
            // IPv4 inside IPv6: compatible, NAT64, 6to4.
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:a00:1::1",
            "2002:7f00:1::",
            // Local-use NAT64, site-local, documentation.
            "64:ff9b:1::808:808",
            "fec0::1",
            "2001:db8::1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "100.128.0.1",
            // A public IPv4 address inside IPv6 stays public.
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::ffff:8.8.8.8",
        ] {
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
