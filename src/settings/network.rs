//! The listener's protection: limits, TLS, and who may call.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// Limits on what one client can hold of the server. Each has a safe default.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// How long a request's head may take to arrive, from its first byte.
    #[serde(default = "default_header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// How long a request's body may take to arrive (Tencent sends it at once).
    #[serde(default = "default_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// Connections served at once; one more is answered 503 and closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A kept-alive connection with no request for this long is closed.
    #[serde(default = "default_keep_alive_idle_ms")]
    pub keep_alive_idle_ms: u64,
    /// Requests one connection may carry; the last is answered with `Connection: close`.
    #[serde(default = "default_max_requests_per_connection")]
    pub max_requests_per_connection: u64,
}

impl Limits {
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (name, value) in [
            ("limits.header_read_timeout_ms", self.header_read_timeout_ms),
            ("limits.body_read_timeout_ms", self.body_read_timeout_ms),
            ("limits.max_connections", self.max_connections as u64),
            ("limits.keep_alive_idle_ms", self.keep_alive_idle_ms),
            (
                "limits.max_requests_per_connection",
                self.max_requests_per_connection,
            ),
        ] {
            if value == 0 {
                return Err(SettingsError::new(name, "must be above 0"));
            }
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        toml::from_str("").expect("empty limits take their defaults")
    }
}

fn default_header_read_timeout_ms() -> u64 {
    5_000
}
fn default_body_read_timeout_ms() -> u64 {
    5_000
}
fn default_max_connections() -> usize {
    4_096
}
fn default_keep_alive_idle_ms() -> u64 {
    60_000
}
fn default_max_requests_per_connection() -> u64 {
    100_000
}

/// HTTPS on the listener. Both files are PEM; a SIGHUP reads them again.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// A CIDR block (`10.0.0.0/8`, `2001:db8::/32`) or one address.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Why a text is not a network: it names the text and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkError {
    NotAnAddress(String),
    Prefix { network: String, max: u8 },
}

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnAddress(s) => {
                write!(f, "`{s}` is not a network like 10.0.0.0/8 or an address")
            }
            Self::Prefix { network, max } => {
                write!(f, "`{network}`: the prefix length must be 0 to {max}")
            }
        }
    }
}

impl std::error::Error for NetworkError {}

impl FromStr for Network {
    type Err = NetworkError;

    fn from_str(s: &str) -> Result<Self, NetworkError> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| NetworkError::NotAnAddress(s.to_owned()))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix =
            match prefix {
                None => max,
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                    NetworkError::Prefix {
                        network: s.to_owned(),
                        max,
                    }
                })?,
            };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Network {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Parses a comma-separated list, as the environment gives it.
pub fn parse_networks(list: &str) -> Result<Vec<Network>, NetworkError> {
    list.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// Who sent a request: the peer, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not itself a trusted proxy. `None` when that
/// header names something that is not an address.
pub fn client_address(
    peer: IpAddr,
    forwarded_for: Option<&str>,
    trusted_proxies: &[Network],
) -> Option<IpAddr> {
    let peer = peer.to_canonical();
    let trusted = |ip: IpAddr| trusted_proxies.iter().any(|n| n.contains(ip));
    let Some(header) = forwarded_for.filter(|_| trusted(peer)) else {
        return Some(peer);
    };
    let mut client = peer;
    for hop in header.rsplit(',') {
        let ip = hop.trim().parse::<IpAddr>().ok()?.to_canonical();
        client = ip;
        if !trusted(ip) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &str) -> Vec<Network> {
        parse_networks(list).unwrap()
    }

    #[test]
    fn a_network_holds_its_addresses_and_no_others() {
        let net: Network = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.255.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        let one: Network = "2001:db8::1".parse().unwrap();
        assert!(one.contains("2001:db8::1".parse().unwrap()));
        assert!(!one.contains("2001:db8::2".parse().unwrap()));
        assert!("0.0.0.0/0"
            .parse::<Network>()
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn a_bad_network_says_what_is_wrong() {
        let said = |text: &str| text.parse::<Network>().unwrap_err().to_string();
        assert!(said("10.0.0.0/33").contains("0 to 32"));
        assert!(said("example.com").contains("not a network"));
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_proxy() {
        let proxies = nets("10.0.0.0/8");
        let outsider = "203.0.113.9".parse().unwrap();
        let proxy = "10.0.0.5".parse().unwrap();
        // A stranger cannot claim to be someone else.
        assert_eq!(
            client_address(outsider, Some("1.1.1.1"), &proxies),
            Some(outsider)
        );
        // Through two proxies: the nearest untrusted hop, not what the client wrote first.
        assert_eq!(
            client_address(proxy, Some("6.6.6.6, 198.51.100.7, 10.0.0.9"), &proxies),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(client_address(proxy, None, &proxies), Some(proxy));
        assert_eq!(client_address(proxy, Some("garbage"), &proxies), None);
    }
}
