//! Which addresses a connector may reach.
//!
//! A job's allow-list is the account's own servers (host and port, as the account names
//! them). The name is resolved by the host and every resolved address is checked again, so a
//! name that resolves to a forbidden address is refused as well: link-local and cloud-metadata
//! addresses always, loopback and private networks only when the operator forbids them (mail
//! servers often live there).

use crate::config::NetConfig;
use crate::connector::{ConnectorError, ErrorKind};
use crate::endpoint::{ServerSpec, refused_address_reason};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Operator-wide network rules.
#[derive(Debug, Clone)]
pub struct NetPolicy {
    /// Whether account servers may be on loopback or private networks.
    pub allow_private_networks: bool,
    /// How long a DNS lookup, a connect or a TLS handshake may take.
    pub connect_timeout: Duration,
    /// How long one read or write may wait on a server.
    pub io_timeout: Duration,
}

impl NetPolicy {
    pub fn new(config: &NetConfig) -> Self {
        Self {
            allow_private_networks: config.allow_private_networks,
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            io_timeout: Duration::from_millis(config.io_timeout_ms),
        }
    }
}

/// The servers one job may connect to.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    servers: Vec<ServerSpec>,
}

impl AllowList {
    pub fn new(servers: Vec<ServerSpec>) -> Self {
        Self { servers }
    }

    /// The account's server at `host`:`port`, if it is one.
    pub fn server(&self, host: &str, port: u16) -> Option<&ServerSpec> {
        let host = host.trim_end_matches('.');
        self.servers
            .iter()
            .find(|s| s.port == port && s.host.trim_end_matches('.').eq_ignore_ascii_case(host))
    }
}

/// Resolves `host` and keeps the addresses the policy allows.
pub async fn resolve(
    host: &str,
    port: u16,
    policy: &NetPolicy,
) -> Result<Vec<SocketAddr>, ConnectorError> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let candidates: Vec<SocketAddr> = match literal.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let lookup = tokio::net::lookup_host((host, port));
            match tokio::time::timeout(policy.connect_timeout, lookup).await {
                Err(_) => {
                    return Err(ConnectorError::new(
                        ErrorKind::Dns,
                        format!("looking up {host} timed out"),
                    ));
                }
                Ok(Err(e)) => {
                    return Err(ConnectorError::new(
                        ErrorKind::Dns,
                        format!("could not resolve {host}: {e}"),
                    ));
                }
                Ok(Ok(addrs)) => addrs.collect(),
            }
        }
    };
    if candidates.is_empty() {
        return Err(ConnectorError::new(
            ErrorKind::Dns,
            format!("{host} has no address"),
        ));
    }
    let mut refusal = None;
    let allowed: Vec<SocketAddr> = candidates
        .into_iter()
        .filter(
            |addr| match refused_address_reason(addr.ip(), policy.allow_private_networks) {
                Some(reason) => {
                    refusal = Some(format!("{host} resolves to {}, {reason}", addr.ip()));
                    false
                }
                None => true,
            },
        )
        .collect();
    if allowed.is_empty() {
        return Err(ConnectorError::new(
            ErrorKind::Denied,
            refusal.unwrap_or_else(|| format!("{host} is not allowed")),
        ));
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str, allow_private: bool) -> bool {
        refused_address_reason(ip.parse().unwrap(), allow_private).is_some()
    }

    #[test]
    fn metadata_and_link_local_are_always_refused() {
        for ip in [
            "169.254.169.254",
            "169.254.1.1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "::169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "224.0.0.1",
        ] {
            assert!(refused(ip, true), "{ip} should be refused");
        }
    }

    #[test]
    fn private_networks_follow_the_operator_switch() {
        for ip in [
            "127.0.0.1",
            "10.0.0.5",
            "192.168.1.2",
            "172.16.0.1",
            "::1",
            "fd12::1",
        ] {
            assert!(!refused(ip, true), "{ip} should be allowed");
            assert!(refused(ip, false), "{ip} should be refused");
        }
        assert!(!refused("93.184.216.34", false));
    }

    #[test]
    fn the_allow_list_matches_host_and_port() {
        let list = AllowList::new(vec![ServerSpec {
            role: "imap".into(),
            host: "mail.example.com".into(),
            port: 993,
            encryption: crate::endpoint::Encryption::Ssl,
        }]);
        assert!(list.server("MAIL.example.com.", 993).is_some());
        assert!(list.server("mail.example.com", 143).is_none());
        assert!(list.server("evil.example.com", 993).is_none());
    }
}
