//! TLS for connections to mail servers.
//!
//! Certificates are verified against the webpki roots plus the operator's CA file. Self-signed
//! mail servers usually present a certificate that is its own CA (basic constraints CA:TRUE),
//! which webpki refuses as an end entity (`CaUsedAsEndEntity`) even when it is a trusted root;
//! so a certificate that is byte-for-byte one of the CA file's is accepted as the server's
//! own. An account that allows a non-secure certificate gets a configuration that accepts any
//! certificate (the handshake signature is still checked); that choice is the host's, per
//! account, and never the connector's.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
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
        let verified = client_config(provider.clone(), Some(Trust { webpki, pinned }))?;
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
            Err(_)
                if trust
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
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
