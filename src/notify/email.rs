//! Email notifications: an HTML message with a plain-text alternative, sent over SMTP with
//! `lettre` (STARTTLS when configured, credentials from a secret reference).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use super::facts::AlertFacts;
use super::secret::{SecretError, SecretRef};
use super::Notification;

/// Why email cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// An address is not valid.
    #[error("bad address {address:?}: {cause}")]
    Address {
        /// The address.
        address: String,
        /// What is wrong.
        cause: String,
    },
    /// The SMTP password is not available.
    #[error("smtp password: {0}")]
    Secret(#[from] SecretError),
    /// The message or the transport could not be built.
    #[error("smtp: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// The message could not be built.
    #[error("message: {0}")]
    Message(#[from] lettre::error::Error),
}

/// The SMTP server notifications are sent through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host name.
    pub host: String,
    /// Server port (587 for submission with STARTTLS, 25 for plain relay).
    pub port: u16,
    /// Upgrade the connection with STARTTLS (required when set).
    #[serde(default)]
    pub starttls: bool,
    /// Login, when the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password of `username` (`env:VAR` or `file:PATH`).
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// Sender address, e.g. `aquatwin <alerts@example.org>`.
    pub from: String,
}

/// An email's subject and bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailContent {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// The email of `notification`: a subject with the severity and headline, and a table of the
/// alert's kind, severity, location, time and flow, with a link to it when configured.
pub fn render(notification: &Notification, link_base: Option<&str>) -> EmailContent {
    let facts = AlertFacts::of(notification, link_base);
    let subject = format!(
        "[aquatwin {}] {} at {}",
        facts.severity, facts.headline, facts.location
    );
    let mut text = format!("{}\n\n{}\n\n", facts.headline, facts.message);
    let mut rows = String::new();
    for (name, value) in facts.fields() {
        text.push_str(&format!("{name}: {value}\n"));
        rows.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
            escape_html(name),
            escape_html(value)
        ));
    }
    let mut link_html = String::new();
    if let Some(link) = &facts.link {
        text.push_str(&format!("\n{link}\n"));
        link_html = format!(
            "<p><a href=\"{}\">View the alert</a></p>\n",
            escape_html(link)
        );
    }
    let html = format!(
        concat!(
            "<!DOCTYPE html>\n<html><body>\n<h2>{}</h2>\n<p>{}</p>\n",
            "<table>\n{}</table>\n{}</body></html>\n"
        ),
        escape_html(&facts.headline),
        escape_html(&facts.message),
        rows,
        link_html,
    );
    EmailContent {
        subject,
        text,
        html,
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn mailbox(address: &str) -> Result<Mailbox, EmailError> {
    address
        .parse()
        .map_err(|err: lettre::address::AddressError| EmailError::Address {
            address: address.to_string(),
            cause: err.to_string(),
        })
}

/// A connection setting to an SMTP server and the sender's address.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mailer(from {})", self.from)
    }
}

/// The outcome of one send: the server's reply code, or why there was none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// The server's reply code, when it refused.
    pub code: Option<u16>,
    /// What went wrong.
    pub error: String,
    /// Whether a retry may succeed (not a permanent 5xx refusal).
    pub retryable: bool,
}

impl Mailer {
    /// A mailer for `config`, each attempt limited to `timeout`. The password is read now.
    pub fn new(config: &SmtpConfig, timeout: Duration) -> Result<Self, EmailError> {
        let tls = if config.starttls {
            Tls::Required(TlsParameters::new_rustls(config.host.clone())?)
        } else {
            Tls::None
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(username) = &config.username {
            let password = match &config.password {
                Some(reference) => reference.resolve()?,
                None => String::new(),
            };
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        Ok(Self {
            transport: builder.build(),
            from: mailbox(&config.from)?,
        })
    }

    /// Builds the message of `content` to `recipients` (HTML with a plain-text alternative).
    pub fn message(
        &self,
        recipients: &[String],
        content: &EmailContent,
    ) -> Result<Message, EmailError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(content.subject.clone());
        for recipient in recipients {
            builder = builder.to(mailbox(recipient)?);
        }
        let body = MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(content.text.clone()),
            )
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(content.html.clone()),
            );
        Ok(builder.multipart(body)?)
    }

    /// Sends `message`; the server's positive reply code, or the failure.
    pub async fn send(&self, message: Message) -> Result<u16, SendFailure> {
        match self.transport.send(message).await {
            Ok(response) => Ok(u16::from(response.code())),
            Err(err) => Err(SendFailure {
                code: err.status().map(u16::from),
                retryable: !err.is_permanent(),
                error: err.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use actors::messages::{Alert, AlertInput, AlertKind, AlertLocation, Severity};

    use super::*;
    use crate::notify::EventKind;

    #[test]
    fn the_email_shows_every_fact_escaped() {
        let notification = Notification {
            event: EventKind::Escalated,
            municipality: "town".into(),
            alert: Alert {
                occurrences: 3,
                ..Alert::opened(
                    42,
                    AlertInput {
                        kind: AlertKind::Burst,
                        severity: Severity::Critical,
                        location: AlertLocation::Link("P<1>".into()),
                        estimated_flow: Some(12.5),
                        time_ms: 0,
                        message: "flow & pressure".into(),
                    },
                )
            },
        };
        let email = render(&notification, Some("https://twin.example.org/"));
        assert_eq!(
            email.subject,
            "[aquatwin critical] Burst escalated in town at link P<1>"
        );
        assert!(email.html.contains("link P&lt;1&gt;"));
        assert!(email.html.contains("flow &amp; pressure"));
        assert!(email.html.contains("Thu, 01 Jan 1970 00:00:00 GMT"));
        assert!(email.html.contains("12.500"));
        assert!(email
            .html
            .contains("href=\"https://twin.example.org/alerts/town/42\""));
        assert!(email.text.contains("Location: link P<1>"));
        assert!(email
            .text
            .contains("https://twin.example.org/alerts/town/42"));
    }
}
