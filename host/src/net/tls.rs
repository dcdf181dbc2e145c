//! TLS for connections to mail servers.
//!
//! Certificates are verified against the webpki roots plus the operator's CA file. Self-signed
//! mail servers usually present a certificate that is its own CA (basic constraints CA:TRUE),
//! which webpki refuses as an end entity (`CaUsedAsEndEntity`) even when it is a trusted root;
//! so a certificate that is byte-for-byte one of the CA file's is accepted as the server's
//! own — within its dates and for the names it lists only, so that the key of one pinned
//! server cannot impersonate any other host. An account that allows a non-secure
//! certificate gets a configuration that accepts any certificate (the handshake signature is
//! still checked); that choice is the host's, per account, and never the connector's.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::path::Path;
use std::sync::Arc;

/// The two client configurations the host uses: verifying, and (per account, on request)
/// accepting any certificate.
#[derive(Clone)]
pub struct TlsPolicy {
    verified: Arc<ClientConfig>,
    insecure: Arc<ClientConfig>,
}

impl std::fmt::Debug for TlsPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsPolicy")
    }
}

impl TlsPolicy {
    /// Builds the policy from the webpki roots and, when given, a PEM file of extra trusted
    /// certificates.
    pub fn new(ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let trust = Trust::load(ca_file, &provider)?;
        let verified = client_config(provider.clone(), Some(trust))?;
        let insecure = client_config(provider, None)?;
        Ok(Self { verified, insecure })
    }

    pub fn client_config(&self, allow_insecure_certificate: bool) -> Arc<ClientConfig> {
        if allow_insecure_certificate {
            self.insecure.clone()
        } else {
            self.verified.clone()
        }
    }
}

impl Trust {
    /// The webpki roots and, when given, a PEM file of extra trusted certificates.
    fn load(ca_file: Option<&Path>, provider: &Arc<CryptoProvider>) -> anyhow::Result<Self> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut pinned = Vec::new();
        if let Some(path) = ca_file {
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| anyhow::anyhow!("cannot read CA file {}: {e}", path.display()))?
            {
                let cert = cert
                    .map_err(|e| anyhow::anyhow!("bad certificate in {}: {e}", path.display()))?;
                // A certificate that is not a valid CA is still useful as an exact match.
                let _ = roots.add(cert.clone());
                pinned.push(cert);
            }
            if pinned.is_empty() {
                anyhow::bail!("CA file {} holds no certificate", path.display());
            }
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()?;
        Ok(Self { webpki, pinned })
    }

    fn is_pinned(&self, certificate: &CertificateDer<'_>) -> bool {
        self.pinned
            .iter()
            .any(|p| p.as_ref() == certificate.as_ref())
    }
}

/// `trust` is `None` for accounts that allow a non-secure certificate.
fn client_config(
    provider: Arc<CryptoProvider>,
    trust: Option<Trust>,
) -> anyhow::Result<Arc<ClientConfig>> {
    let verifier = Arc::new(Verifier {
        trust,
        provider: provider.clone(),
    });
    Ok(Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

/// Whether a certificate was refused for being outside its validity period.
fn about_dates(reason: &CertificateError) -> bool {
    matches!(
        reason,
        CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. }
    )
}

/// Which certificates a server may present.
#[derive(Debug)]
struct Trust {
    webpki: Arc<WebPkiServerVerifier>,
    /// The CA file's certificates, also accepted as a server's own.
    pinned: Vec<CertificateDer<'static>>,
}

/// Checks the server's certificate against [`Trust`] (any certificate when there is none) and
/// the handshake's signature against the certificate presented, always.
#[derive(Debug)]
struct Verifier {
    trust: Option<Trust>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(trust) = &self.trust else {
            return Ok(ServerCertVerified::assertion());
        };
        match trust.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => Ok(verified),
            // webpki checks the dates first: an error about them stands, pinned or not.
            Err(rustls::Error::InvalidCertificate(reason))
                if trust.is_pinned(end_entity) && !about_dates(&reason) =>
            {
                verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, IsCa, KeyPair, date_time_ymd};

    /// A self-signed certificate for `names`, a CA of its own when `ca`, valid in `years`.
    fn certificate(names: &[&str], ca: bool, years: (i32, i32)) -> CertificateDer<'static> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        if ca {
            params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        }
        params.not_before = date_time_ymd(years.0, 1, 1);
        params.not_after = date_time_ymd(years.1, 1, 1);
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    /// A verifier trusting `pinned` as the operator's CA file would.
    fn verifier(pinned: &[&CertificateDer<'static>]) -> Verifier {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        let pem: String = pinned
            .iter()
            .map(|c| {
                use base64::Engine;
                let body = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
                let lines: Vec<&str> = body
                    .as_bytes()
                    .chunks(64)
                    .map(|l| std::str::from_utf8(l).unwrap())
                    .collect();
                format!(
                    "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                    lines.join("\n")
                )
            })
            .collect();
        std::fs::write(&path, pem).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Verifier {
            trust: Some(Trust::load(Some(&path), &provider).unwrap()),
            provider,
        }
    }

    fn accepts(verifier: &Verifier, cert: &CertificateDer<'_>, host: &str) -> bool {
        let name = ServerName::try_from(host.to_owned()).unwrap();
        verifier
            .verify_server_cert(cert, &[], &name, &[], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn a_pinned_certificate_is_accepted_for_its_own_names() {
        for ca in [true, false] {
            let cert = certificate(&["mail.example.test"], ca, (2020, 2090));
            assert!(
                accepts(&verifier(&[&cert]), &cert, "mail.example.test"),
                "ca: {ca}"
            );
        }
    }

    #[test]
    fn a_pinned_certificate_cannot_impersonate_another_host() {
        for ca in [true, false] {
            let cert = certificate(&["mail.example.test"], ca, (2020, 2090));
            let verifier = verifier(&[&cert]);
            for other in [
                "imap.gmail.com",
                "outlook.office365.com",
                "other.example.test",
            ] {
                assert!(!accepts(&verifier, &cert, other), "{other} (ca: {ca})");
            }
        }
    }

    #[test]
    fn an_expired_pinned_certificate_is_refused() {
        for ca in [true, false] {
            let expired = certificate(&["mail.example.test"], ca, (2001, 2002));
            assert!(!accepts(
                &verifier(&[&expired]),
                &expired,
                "mail.example.test"
            ));
            let future = certificate(&["mail.example.test"], ca, (2080, 2090));
            assert!(!accepts(
                &verifier(&[&future]),
                &future,
                "mail.example.test"
            ));
        }
    }
}
