//! Webhook delivery: the body (our JSON or Slack's message), its signature, and one HTTP/1.1
//! POST over plain TCP or rustls (Mozilla's roots, plus the private certificate authorities
//! the operator names: [`read_ca_file`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, TrustAnchor};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::facts::AlertFacts;
use super::Notification;

/// Header of the signature (`sha256=<hex>`).
pub const SIGNATURE_HEADER: &str = "X-Aquatwin-Signature";
/// Header of the signing time (Unix seconds), part of the signed string.
pub const TIMESTAMP_HEADER: &str = "X-Aquatwin-Timestamp";
/// Header naming the delivery, the same on each of its retries.
pub const DELIVERY_HEADER: &str = "X-Aquatwin-Delivery";

/// Slack's limit on a section's text (characters).
const SLACK_SECTION_TEXT_MAX: usize = 3000;

/// Why a webhook URL is not usable.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// Not a URI.
    #[error("not a URL: {0}")]
    Syntax(String),
    /// Not `http` or `https`.
    #[error("the scheme must be http or https")]
    Scheme,
    /// No host.
    #[error("the URL has no host")]
    Host,
}

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    uri: Uri,
    https: bool,
    host: String,
    port: u16,
}

impl WebhookUrl {
    /// Parses and checks `url`.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let uri: Uri = url
            .parse()
            .map_err(|err: hyper::http::uri::InvalidUri| UrlError::Syntax(err.to_string()))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(UrlError::Scheme),
        };
        let host = uri
            .host()
            .filter(|host| !host.is_empty())
            .ok_or(UrlError::Host)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(Self {
            uri,
            https,
            host,
            port,
        })
    }
}

/// The signature header's value for `body` signed at `timestamp` (Unix seconds) with `secret`:
/// `sha256=` and the hex HMAC-SHA256 of `"<timestamp>.<body>"`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Our JSON body: `{"event", "municipality", "alert"}` with the alert as the API shows it.
pub fn json_body(notification: &Notification) -> Vec<u8> {
    serde_json::to_vec(notification).unwrap_or_default()
}

/// Slack's incoming-webhook message: a `text` fallback and `blocks` (a section with the
/// headline and message, a section of fields).
pub fn slack_body(notification: &Notification, link_base: Option<&str>) -> Vec<u8> {
    let facts = AlertFacts::of(notification, link_base);
    let mut headline = format!(
        "*{}*\n{}",
        slack_escape(&facts.headline),
        slack_escape(&facts.message)
    );
    if let Some(link) = &facts.link {
        headline.push_str(&format!("\n<{link}|View the alert>"));
    }
    let headline: String = headline.chars().take(SLACK_SECTION_TEXT_MAX).collect();
    let fields: Vec<Value> = facts
        .fields()
        .iter()
        .map(|(name, value)| {
            json!({"type": "mrkdwn", "text": format!("*{name}*\n{}", slack_escape(value))})
        })
        .collect();
    let message = json!({
        "text": format!("[{}] {} at {}", facts.severity, facts.headline, facts.location),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "section", "fields": fields},
        ],
    });
    serde_json::to_vec(&message).unwrap_or_default()
}

/// Slack's mrkdwn escaping of the three control characters.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Why a file of extra certificate authorities is not usable.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM block is broken.
    #[error("{path} is not valid PEM: {cause}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        cause: String,
    },
    /// No `CERTIFICATE` block.
    #[error("{path} holds no certificate (PEM `-----BEGIN CERTIFICATE-----` blocks)")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A certificate that cannot be a trust anchor (not X.509 DER inside).
    #[error("{path}: certificate {number} cannot be trusted: {cause}")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// Its place among the file's certificates, from 1.
        number: usize,
        /// Why.
        cause: rustls::Error,
    },
}

/// The certificate authorities of the PEM file at `path` (every `CERTIFICATE` block; other
/// blocks such as keys are skipped), to trust besides Mozilla's roots: a private CA that
/// signs internal receivers' certificates.
pub fn read_ca_file(path: &Path) -> Result<Vec<TrustAnchor<'static>>, CaFileError> {
    let pem = std::fs::read(path).map_err(|source| CaFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| CaFileError::Pem {
            path: path.to_path_buf(),
            cause: err.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(CaFileError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    let mut anchors = RootCertStore::empty();
    for (index, certificate) in certificates.into_iter().enumerate() {
        anchors
            .add(certificate)
            .map_err(|cause| CaFileError::Unusable {
                path: path.to_path_buf(),
                number: index + 1,
                cause,
            })?;
    }
    Ok(anchors.roots)
}

/// The TLS settings of webhook POSTs: Mozilla's root certificates and `extra_roots`, ring's
/// cryptography.
pub fn tls_config(
    extra_roots: &[TrustAnchor<'static>],
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    roots.roots.extend_from_slice(extra_roots);
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A request's headers beyond the host and length.
#[derive(Debug, Clone, Default)]
pub struct Headers(pub Vec<(&'static str, String)>);

/// POSTs `body` to `url` with `headers`; the answer's status, or why there was none.
/// Everything (connect, TLS, request, response head) must fit in `timeout`.
pub async fn post(
    url: &WebhookUrl,
    headers: &Headers,
    body: Vec<u8>,
    tls: &Arc<ClientConfig>,
    timeout: Duration,
) -> Result<u16, String> {
    let exchange = async {
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|err| format!("connect: {err}"))?;
        tcp.set_nodelay(true).map_err(|err| err.to_string())?;
        let request = request(url, headers, body)?;
        if url.https {
            let name = ServerName::try_from(url.host.clone()).map_err(|err| err.to_string())?;
            let stream = TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|err| format!("tls: {err}"))?;
            send(stream, request).await
        } else {
            send(tcp, request).await
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {} ms", timeout.as_millis())))
}

fn request(
    url: &WebhookUrl,
    headers: &Headers,
    body: Vec<u8>,
) -> Result<Request<Full<Bytes>>, String> {
    let path = url
        .uri
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_string();
    let authority = url
        .uri
        .authority()
        .map_or(url.host.as_str(), |authority| authority.as_str())
        .to_string();
    let mut builder = Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "aquatwin-notify")
        .header(hyper::header::CONNECTION, "close");
    for (name, value) in &headers.0 {
        builder = builder.header(*name, value);
    }
    builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|err| format!("request: {err}"))
}

/// Sends one request on a fresh connection and returns the response's status.
async fn send<S>(stream: S, request: Request<Full<Bytes>>) -> Result<u16, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| format!("handshake: {err}"))?;
    let driver = tokio::spawn(connection);
    let answer = sender.send_request(request).await;
    // The body is not read: the status is the answer, and the connection is closed either way.
    driver.abort();
    answer
        .map(|response| response.status().as_u16())
        .map_err(|err| format!("request: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_an_http_scheme_and_a_host() {
        let url = WebhookUrl::parse("https://hooks.example.org/services/T0/B0").unwrap();
        assert!(url.https);
        assert_eq!((url.host.as_str(), url.port), ("hooks.example.org", 443));
        let url = WebhookUrl::parse("http://[::1]:8080/x?y=1").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 8080));
        assert!(matches!(
            WebhookUrl::parse("ftp://example.org/"),
            Err(UrlError::Scheme)
        ));
        assert!(matches!(
            WebhookUrl::parse("/relative"),
            Err(UrlError::Scheme)
        ));
        assert!(WebhookUrl::parse("http://exa mple.org/").is_err());
    }

    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let base = signature(b"key", 1_700_000_000, b"{}");
        assert!(base.starts_with("sha256=") && base.len() == 7 + 64);
        assert_ne!(base, signature(b"key", 1_700_000_001, b"{}"));
        assert_ne!(base, signature(b"key", 1_700_000_000, b"{ }"));
        assert_ne!(base, signature(b"kez", 1_700_000_000, b"{}"));
    }

    #[test]
    fn the_tls_configuration_builds() {
        assert!(tls_config(&[]).is_ok());
    }

    #[test]
    fn ca_files_without_certificates_are_refused_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("aquatwin-ca-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let err = read_ca_file(&missing).unwrap_err();
        assert!(matches!(err, CaFileError::Read { .. }));
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let key_only = dir.join("key.pem");
        std::fs::write(
            &key_only,
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n\
             -----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = read_ca_file(&key_only).unwrap_err();
        assert!(matches!(err, CaFileError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("key.pem"), "{err}");

        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = read_ca_file(&garbage).unwrap_err();
        assert!(
            matches!(err, CaFileError::Unusable { number: 1, .. }),
            "{err}"
        );

        let truncated = dir.join("truncated.pem");
        std::fs::write(&truncated, "-----BEGIN CERTIFICATE-----\nbm90\n").unwrap();
        let err = read_ca_file(&truncated).unwrap_err();
        assert!(matches!(err, CaFileError::Pem { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
