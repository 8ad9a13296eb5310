//! `idp token ...`: API tokens from the command line (the operator may manage every token).

use clap::Subcommand;

use crate::admin::tokens::{self, Caller, NewToken};
use crate::cli::{CliError, failed, state};
use crate::config::Config;
use crate::domain::UserId;
use crate::tokens::{TokenKind, parse_permission};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret (shown this once). Personal tokens act as a user in
    /// a project; service tokens belong to a project; organisation tokens serve admin and SCIM
    /// automation. Scopes are permission names, e.g. `members_read,scim_provision`.
    Create {
        #[arg(long, value_parser = ["personal", "service", "organisation"])]
        kind: String,
        #[arg(long)]
        name: String,
        /// The organisation's id or slug.
        #[arg(long = "org")]
        organisation: String,
        /// The project's id or slug (personal and service tokens).
        #[arg(long)]
        project: Option<String>,
        /// The user a personal token acts as.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Lifetime in days (the organisation's maximum applies).
        #[arg(long)]
        days: Option<i64>,
    },
    /// List an organisation's tokens: id, kind, name, scopes, expiry, last use, state.
    List {
        #[arg(long = "org")]
        organisation: String,
    },
    /// Issue a new secret; the old one keeps working for the grace period, then dies.
    Rotate {
        id: String,
        /// Hours the old secret stays valid (0 ends it now).
        #[arg(long, default_value_t = 0)]
        grace_hours: i64,
    },
    /// Revoke a token at once.
    Revoke { id: String },
    /// Set the longest lifetime the organisation's tokens may have.
    SetMaxLifetime {
        #[arg(long = "org")]
        organisation: String,
        #[arg(long)]
        days: i64,
    },
}

pub fn run(config: Config, cmd: TokenCommand) -> Result<(), CliError> {
    let s = state(config)?;
    let now = s.clock.now_naive();
    match cmd {
        TokenCommand::Create { kind, name, organisation, project, user, scopes, days } => {
            let kind = TokenKind::parse(&kind).ok_or_else(|| CliError::Failed(format!("unknown kind {kind}")))?;
            let scopes = scopes
                .iter()
                .map(|sc| parse_permission(sc.trim()).ok_or_else(|| CliError::Failed(format!("unknown scope {sc}"))))
                .collect::<Result<_, _>>()?;
            let user = user
                .map(|u| u.parse::<UserId>().map_err(|_| CliError::Failed(format!("{u} is not a user id"))))
                .transpose()?;
            let new = NewToken {
                kind,
                name: &name,
                organisation: &organisation,
                project: project.as_deref(),
                user,
                scopes,
                lifetime_days: days,
            };
            let issued =
                s.db.write(|conn| tokens::create(conn, &s.auditor, now, Caller::Operator, &new)).map_err(failed)?;
            eprintln!(
                "created token {} (expires {}); its secret, shown this once:",
                issued.token.id, issued.token.expires_at
            );
            println!("{}", issued.secret);
            Ok(())
        }
        TokenCommand::List { organisation } => {
            let list = s.db.read(|conn| tokens::list(conn, Caller::Operator, &organisation)).map_err(failed)?;
            for t in list {
                let state = t.state(now);
                let last = t.last_used_at.map_or_else(|| "never".to_owned(), |l| l.to_string());
                println!(
                    "{}\t{}\t{}\t{}\texpires {}\tlast used {last}\t{state}",
                    t.id,
                    t.kind.as_str(),
                    t.name,
                    t.scopes.join(","),
                    t.expires_at
                );
            }
            Ok(())
        }
        TokenCommand::Rotate { id, grace_hours } => {
            let issued =
                s.db.write(|conn| tokens::rotate(conn, &s.auditor, now, Caller::Operator, &id, grace_hours))
                    .map_err(failed)?;
            eprintln!(
                "rotated token {}; the old secret works for {grace_hours} more hours. New secret:",
                issued.token.id
            );
            println!("{}", issued.secret);
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            s.db.write(|conn| tokens::revoke(conn, &s.auditor, now, Caller::Operator, &id)).map_err(failed)?;
            println!("revoked token {id}");
            Ok(())
        }
        TokenCommand::SetMaxLifetime { organisation, days } => {
            s.db.write(|conn| tokens::set_max_lifetime(conn, &s.auditor, now, Caller::Operator, &organisation, days))
                .map_err(failed)?;
            println!("tokens of {organisation} now live at most {days} days");
            Ok(())
        }
    }
}
