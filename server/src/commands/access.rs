//! `accord user …` and `accord token …`.

use super::CliAccess;
use super::output::role_list;
use crate::StartError;
use crate::auth::model::{Role, parse_ttl};
use crate::auth::service::{PURPOSE_SET_PASSWORD, TokenOrder};
use crate::clock::Timestamp;
use crate::ledger::Actor;

/// Roles named on the command line.
pub fn roles(names: &[String], field: &str) -> Result<Vec<Role>, StartError> {
    names
        .iter()
        .map(|n| Role::parse_field(field, n).map_err(StartError::from))
        .collect()
}

/// Adds a user; without a password, prints a one-time link to set one.
pub async fn add_user(
    a: &CliAccess,
    email: &str,
    name: &str,
    role_names: &[String],
    password_stdin: bool,
) -> Result<(), StartError> {
    let granted = roles(role_names, "role")?;
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| StartError(format!("cannot read the password: {e}")))?;
        Some(line.trim_end_matches(['\n', '\r']).to_string())
    } else {
        None
    };
    let user = a
        .svc
        .create_user(
            Actor::cli(),
            None,
            email,
            name,
            &granted,
            password.as_deref(),
        )
        .await?;
    println!(
        "added {} ({}) with roles: {}",
        user.email,
        user.id,
        role_list(&granted)
    );
    if password.is_none() {
        let raw = a
            .svc
            .create_setup_link(Actor::cli(), PURPOSE_SET_PASSWORD, Some(user.id))
            .await?;
        println!(
            "one-time link to set the password (valid for one hour): {}/ui/setup?token={raw}",
            a.public_url
        );
    }
    Ok(())
}

pub async fn list_users(a: &CliAccess) -> Result<(), StartError> {
    for (u, r) in a.svc.list_users().await? {
        println!(
            "{}\t{}\t{}\t{}",
            u.email,
            u.name,
            role_list(&r),
            if u.disabled { "disabled" } else { "active" }
        );
    }
    Ok(())
}

pub async fn disable_user(a: &CliAccess, email: &str) -> Result<(), StartError> {
    let u = a.svc.disable_user(Actor::cli(), None, email).await?;
    println!("disabled {}", u.email);
    Ok(())
}

pub async fn change_roles(
    a: &CliAccess,
    email: &str,
    grant: &[String],
    revoke: &[String],
) -> Result<(), StartError> {
    let held = a
        .svc
        .change_roles(
            Actor::cli(),
            None,
            email,
            &roles(grant, "grant")?,
            &roles(revoke, "revoke")?,
        )
        .await?;
    println!(
        "{} now holds: {}",
        email.trim().to_lowercase(),
        role_list(&held)
    );
    Ok(())
}

/// Issues a token: its details to standard error, the token alone to standard output.
pub async fn issue_token(
    a: &CliAccess,
    client: &str,
    role_names: &[String],
    ttl: &str,
) -> Result<(), StartError> {
    let ttl = parse_ttl("ttl", ttl)?;
    let issued = a
        .svc
        .issue_token(
            Actor::cli(),
            None,
            &a.tokens,
            TokenOrder {
                client,
                roles: &roles(role_names, "role")?,
                ttl,
            },
            None,
        )
        .await?;
    eprintln!(
        "token {} for {} ({}), expires {}",
        issued.jti,
        issued.client,
        role_list(&issued.roles),
        issued.expires_at
    );
    println!("{}", issued.token);
    Ok(())
}

pub async fn list_tokens(a: &CliAccess) -> Result<(), StartError> {
    for t in a.svc.list_tokens().await? {
        println!(
            "{}\t{}\t{}\texpires {}\t{}",
            t.jti,
            t.client,
            role_list(&t.role_list()),
            Timestamp(t.expires_at),
            match t.revoked_at {
                Some(at) => format!("revoked {}", Timestamp(at)),
                None => "active".into(),
            }
        );
    }
    Ok(())
}

pub async fn revoke_token(a: &CliAccess, jti: &str) -> Result<(), StartError> {
    a.svc.revoke_token(Actor::cli(), None, jti).await?;
    println!("revoked {jti}");
    Ok(())
}
