//! Sending mail through the configured SMTP server (lettre).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{SmtpSettings, SmtpTls};

/// A mail the server accepted.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The addresses it went to.
    pub to: Vec<String>,
    /// Addresses left out: no mail can be addressed to them.
    pub refused: Vec<String>,
    /// What the mail server answered.
    pub answer: String,
}

/// How long one conversation with the mail server may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The mail server and the sender's address. Each mail opens its own connection: mail is rare,
/// and lettre's connection pool hands its connections back (and itself away) through tasks it
/// spawns when dropped, which panics once the runtime is gone (at shutdown).
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port (tls)`, for messages.
    pub server: String,
}

impl Mailer {
    pub fn new(s: &SmtpSettings) -> Result<Mailer, String> {
        let builder = match s.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                .map_err(|e| format!("smtp.host {:?}: {e}", s.host))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)
                .map_err(|e| format!("smtp.host {:?}: {e}", s.host))?,
        };
        let mut builder = builder.port(s.port).timeout(Some(TIMEOUT));
        if let (Some(user), Some(password)) = (&s.username, &s.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        let from: Mailbox = s
            .from
            .parse()
            .map_err(|e| format!("smtp.from {:?}: {e}", s.from))?;
        Ok(Mailer {
            transport: builder.build(),
            from,
            server: format!("{}:{} ({})", s.host, s.port, s.tls.as_str()),
        })
    }

    /// Sends one plain-text mail to `to` (all in one message), or says why it was not accepted.
    pub async fn send(&self, to: &[String], subject: &str, text: &str) -> Result<Sent, String> {
        let mut m = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .message_id(None);
        let (mut sent, mut refused) = (Vec::new(), Vec::new());
        for addr in to {
            match addr.parse::<Mailbox>() {
                Ok(mailbox) => {
                    m = m.to(mailbox);
                    sent.push(addr.clone());
                }
                Err(_) => refused.push(addr.clone()),
            }
        }
        if sent.is_empty() {
            return Err(format!(
                "none of the addresses can be mailed: {}",
                refused.join(", ")
            ));
        }
        let message = m
            .body(text.to_string())
            .map_err(|e| format!("the message could not be built: {e}"))?;
        let response = self
            .transport
            .send(message)
            .await
            .map_err(|e| format!("{}: {e}", self.server))?;
        Ok(Sent {
            to: sent,
            refused,
            answer: response.message().collect::<Vec<_>>().join(" "),
        })
    }
}
