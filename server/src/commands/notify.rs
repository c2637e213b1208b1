//! `accord mail test`.

use crate::StartError;
use crate::config::Settings;
use crate::notify::mailer::Mailer;

/// Sends one test mail to `to` through the configured mail server; what the server answered.
pub async fn mail_test(settings: &Settings, to: &str) -> Result<String, StartError> {
    let Some(smtp) = &settings.smtp else {
        return Err(StartError(
            "no mail server is configured: set [smtp] host and from in the config file (or ACCORD_SMTP_HOST and ACCORD_SMTP_FROM); until then mail stays in the outbox (GET /v1/outbox)".into(),
        ));
    };
    if to.parse::<lettre::message::Mailbox>().is_err() {
        return Err(StartError(format!("--to {to:?} is not an e-mail address")));
    }
    let mailer = Mailer::new(smtp).map_err(StartError)?;
    let text = format!(
        "This is a test mail from Accord ({}), sent by `accord mail test`.\n\n\
         It reached you, so reminders and alerts will too: they go to the users holding the roles \
         each one names.\n",
        settings.public_url(None)
    );
    let sent = mailer
        .send(&[to.to_string()], "Accord test mail", &text)
        .await
        .map_err(|e| StartError(format!("the test mail to {to} was not sent: {e}")))?;
    Ok(format!(
        "sent a test mail to {to} through {}: the server answered {:?}",
        mailer.server, sent.answer
    ))
}
