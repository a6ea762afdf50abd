#![doc = include_str!("../README.md")]

#[cfg(feature = "testing")]
pub mod testing;

use std::error::Error as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;

use roughy_app::ports::{DestinationRefused, PostOutcome, WebhookTransport};
use roughy_domain::{WebhookEvent, WebhookUrl};

/// Settings of the transport.
#[derive(Clone, Debug)]
pub struct TransportSettings {
    /// How long one attempt may take, connection included.
    pub timeout: Duration,
    /// Deliver to private, loopback and link-local addresses too.
    pub allow_private: bool,
}

impl Default for TransportSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            allow_private: false,
        }
    }
}

/// Whether a receiver may be at `ip`: a public unicast address. Refused: unspecified,
/// loopback, private (RFC 1918, IPv6 unique local), link-local, shared (RFC 6598), benchmarking,
/// IETF protocol assignments, documentation, multicast, broadcast and reserved ranges, and IPv6
/// addresses that embed a refused IPv4 one (mapped, compatible, NAT64).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) and the deprecated IPv4-compatible form (::a.b.c.d).
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || segments[..6] == [0; 6] {
        let [.., hi, lo] = segments;
        let embedded = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        if !ip.is_unspecified() && !ip.is_loopback() {
            return is_public_v4(embedded);
        }
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] & 0xffc0) == 0xfec0
        || (segments[0] == 0x2001 && segments[1] == 0x0db8))
}

/// Resolves with the system's resolver and keeps only the addresses a receiver may have.
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl GuardedResolver {
    async fn lookup(host: &str, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| format!("{host} does not resolve: {e}"))?
            .collect();
        if found.is_empty() {
            return Err(format!("{host} does not resolve"));
        }
        let allowed: Vec<SocketAddr> = found
            .iter()
            .copied()
            .filter(|a| allow_private || is_public(a.ip()))
            .collect();
        if allowed.is_empty() {
            return Err(format!(
                "{host} resolves to {}, a private, loopback or link-local address",
                found[0].ip()
            ));
        }
        Ok(allowed)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addrs = Self::lookup(name.as_str(), allow_private).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The `WebhookTransport` over `reqwest`.
#[derive(Clone, Debug)]
pub struct HttpWebhookTransport {
    client: reqwest::Client,
    allow_private: bool,
}

impl HttpWebhookTransport {
    /// A transport with `settings`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS backend).
    pub fn new(settings: &TransportSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect could lead anywhere, an internal address included: 3xx is an answer.
            .redirect(Policy::none())
            .user_agent(concat!("roughy-webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: settings.allow_private,
            }))
            .build()?;
        Ok(Self {
            client,
            allow_private: settings.allow_private,
        })
    }

    /// The URL's host, checked: an IP literal against the rule (the resolver is not asked for
    /// literals), a name through the guarded lookup.
    async fn check(&self, url: &WebhookUrl) -> Result<reqwest::Url, String> {
        let parsed = reqwest::Url::parse(url.as_str()).map_err(|e| format!("bad url: {e}"))?;
        match parsed.host() {
            Some(url::Host::Ipv4(ip)) => self.literal(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.literal(IpAddr::V6(ip))?,
            Some(url::Host::Domain(name)) => {
                GuardedResolver::lookup(name, self.allow_private).await?;
            }
            None => return Err("the url has no host".to_owned()),
        }
        Ok(parsed)
    }

    fn literal(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(format!("{ip} is a private, loopback or link-local address"))
        }
    }
}

#[async_trait]
impl WebhookTransport for HttpWebhookTransport {
    async fn check_destination(&self, url: &WebhookUrl) -> Result<(), DestinationRefused> {
        self.check(url).await.map(drop).map_err(DestinationRefused)
    }

    async fn post(
        &self,
        url: &WebhookUrl,
        event: &WebhookEvent,
        body: &[u8],
        signature: &str,
    ) -> PostOutcome {
        let target = match self.check(url).await {
            Ok(target) => target,
            Err(refused) => return PostOutcome::Failed(refused),
        };
        let sent = self
            .client
            .post(target)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Roughy-Signature", signature)
            .header("Roughy-Event-Id", event.id.as_str())
            .header("Roughy-Event-Type", event.kind.as_str())
            .body(body.to_vec())
            .send()
            .await;
        match sent {
            Ok(response) => PostOutcome::Answered(response.status().as_u16()),
            Err(e) => PostOutcome::Failed(describe(&e)),
        }
    }
}

/// A reqwest error with its causes (`error sending request: … : connection refused`).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_receivers() {
        for public in [
            "93.184.215.14",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(
                is_public(public.parse().unwrap_or_else(|_| unreachable!())),
                "{public}"
            );
        }
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            assert!(
                !is_public(internal.parse().unwrap_or_else(|_| unreachable!())),
                "{internal}"
            );
        }
    }
}
