//! Where an account's mail lives: its servers, how each is reached, and which addresses a
//! connector may never reach whatever an account says.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How a connection to a server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encryption {
    /// Implicit TLS from the first byte.
    Ssl,
    /// Plaintext upgraded with STARTTLS before anything else; never falls back.
    Starttls,
    /// Plaintext throughout (only when the account asks for it).
    None,
}

impl Encryption {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "ssl" => Some(Self::Ssl),
            "starttls" => Some(Self::Starttls),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// One server of an account, named by its role (`imap`, `smtp`, or what a connector declares).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSpec {
    pub role: String,
    pub host: String,
    pub port: u16,
    pub encryption: Encryption,
}

/// Why an address is never reachable by a connector, or `None` when it is allowed.
pub fn refused_address_reason(ip: IpAddr, allow_private: bool) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4, allow_private),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => refused_v4(v4, allow_private),
            None => refused_v6(v6, allow_private),
        },
    }
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:0:0/96`),
/// IPv4-compatible (`::/96`), NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    match s {
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) != (0, 0) && (hi, lo) != (0, 1) => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

fn refused_v4(ip: Ipv4Addr, allow_private: bool) -> Option<&'static str> {
    const METADATA: [Ipv4Addr; 2] = [
        Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
        Ipv4Addr::new(168, 63, 129, 16),   // Azure wire server
    ];
    if ip.is_link_local() {
        // 169.254.0.0/16 holds the AWS, GCP and Azure metadata services.
        return Some("a link-local address");
    }
    if METADATA.contains(&ip) {
        return Some("a cloud metadata address");
    }
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return Some("not a unicast address");
    }
    let shared = ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64; // 100.64.0.0/10
    if !allow_private && (ip.is_loopback() || ip.is_private() || shared) {
        return Some("on a loopback or private network");
    }
    None
}

fn refused_v6(ip: Ipv6Addr, allow_private: bool) -> Option<&'static str> {
    let segments = ip.segments();
    if (segments[0] & 0xffc0) == 0xfe80 {
        return Some("a link-local address");
    }
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return Some("a cloud metadata address");
    }
    if ip.is_unspecified() || ip.is_multicast() {
        return Some("not a unicast address");
    }
    let unique_local = (segments[0] & 0xfe00) == 0xfc00;
    if !allow_private && (ip.is_loopback() || unique_local) {
        return Some("on a loopback or private network");
    }
    None
}
