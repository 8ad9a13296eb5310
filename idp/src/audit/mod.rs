//! The audit log: append-only security events, written in the same transaction as the change
//! they record. Personal data (e-mail, IP addresses) is pseudonymised with a keyed hash before
//! it is stored, so events can be correlated but the table holds nothing readable.

use std::net::IpAddr;

use chrono::{Duration, NaiveDateTime};
use serde_json::{Map, Value};

use crate::crypto::pseudonym::{Datum, Pseudonymiser};
use crate::domain::{AuditEventId, UserId};
use crate::storage::StorageResult;
use crate::storage::audit::AuditRepository;
use crate::storage::models::AuditEventRow;

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The server itself (scheduled jobs, first start).
    System,
    /// An operator at the command line.
    Cli,
    User(UserId),
    /// An API token (service and organisation tokens act as themselves).
    Token(crate::domain::ApiTokenId),
    /// Someone not (yet) authenticated.
    Anonymous,
}

impl Actor {
    pub fn as_string(&self) -> String {
        match self {
            Actor::System => "system".into(),
            Actor::Cli => "cli".into(),
            Actor::User(id) => format!("user:{id}"),
            Actor::Token(id) => format!("token:{id}"),
            Actor::Anonymous => "anonymous".into(),
        }
    }
}

/// What happened. Stored by name; new actions are added here, never typed as free strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ServerInitialised,
    MasterKeyRotated,
    SigningKeyCreated,
    OrganisationCreated,
    OrganisationDeleted,
    ProjectCreated,
    ProjectDeleted,
    DomainClaimed,
    DomainVerified,
    DomainRouted,
    DomainDeleted,
    InvitationCreated,
    InvitationRevoked,
    InvitationAccepted,
    RoleCreated,
    MemberSet,
    MemberRemoved,
    UserCreated,
    SessionCreated,
    SessionEnded,
    LoginSucceeded,
    LoginFailed,
    IdentityLinked,
    IdentityUnlinked,
    ConnectorCreated,
    ConnectorDeleted,
    Logout,
    RateLimited,
    AuditPurged,
    BackupCreated,
    BackupVerified,
    BackupRestored,
    TokenCreated,
    TokenRotated,
    TokenRevoked,
    TokenPolicySet,
    ClientCreated,
    ClientDeleted,
    ClientSecretRotated,
    SigningKeyRotated,
    TotpConfirmed,
    TotpRemoved,
    RecoveryCodesGenerated,
    RecoveryCodeUsed,
    WebauthnRegistered,
    WebauthnUsed,
    WebauthnRemoved,
    MfaReset,
    MfaPolicySet,
    /// Cut off at once: memberships, sessions, grants and personal tokens (admin::deprovision).
    UserDeprovisioned,
    ScimResourceCreated,
    ScimResourceUpdated,
    ScimResourceDeleted,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ServerInitialised => "server.initialised",
            Action::MasterKeyRotated => "keys.master_rotated",
            Action::SigningKeyCreated => "keys.signing_created",
            Action::OrganisationCreated => "organisation.created",
            Action::OrganisationDeleted => "organisation.deleted",
            Action::ProjectCreated => "project.created",
            Action::ProjectDeleted => "project.deleted",
            Action::DomainClaimed => "domain.claimed",
            Action::DomainVerified => "domain.verified",
            Action::DomainRouted => "domain.routed",
            Action::DomainDeleted => "domain.deleted",
            Action::InvitationCreated => "invitation.created",
            Action::InvitationRevoked => "invitation.revoked",
            Action::InvitationAccepted => "invitation.accepted",
            Action::RoleCreated => "role.created",
            Action::MemberSet => "member.set",
            Action::MemberRemoved => "member.removed",
            Action::UserCreated => "user.created",
            Action::SessionCreated => "session.created",
            Action::LoginSucceeded => "login.succeeded",
            Action::LoginFailed => "login.failed",
            Action::IdentityLinked => "identity.linked",
            Action::IdentityUnlinked => "identity.unlinked",
            Action::ConnectorCreated => "connector.created",
            Action::ConnectorDeleted => "connector.deleted",
            Action::SessionEnded => "session.ended",
            Action::Logout => "session.logout",
            Action::RateLimited => "auth.rate_limited",
            Action::AuditPurged => "audit.purged",
            Action::BackupCreated => "backup.created",
            Action::BackupVerified => "backup.verified",
            Action::BackupRestored => "backup.restored",
            Action::TokenCreated => "token.created",
            Action::TokenRotated => "token.rotated",
            Action::TokenRevoked => "token.revoked",
            Action::TokenPolicySet => "token.policy_set",
            Action::ClientCreated => "client.created",
            Action::ClientDeleted => "client.deleted",
            Action::ClientSecretRotated => "client.secret_rotated",
            Action::SigningKeyRotated => "keys.signing_rotated",
            Action::TotpConfirmed => "mfa.totp_confirmed",
            Action::TotpRemoved => "mfa.totp_removed",
            Action::RecoveryCodesGenerated => "mfa.recovery_codes_generated",
            Action::RecoveryCodeUsed => "mfa.recovery_code_used",
            Action::WebauthnRegistered => "mfa.webauthn_registered",
            Action::WebauthnUsed => "mfa.webauthn_used",
            Action::WebauthnRemoved => "mfa.webauthn_removed",
            Action::MfaReset => "mfa.reset",
            Action::MfaPolicySet => "mfa.policy_set",
            Action::UserDeprovisioned => "user.deprovisioned",
            Action::ScimResourceCreated => "scim.created",
            Action::ScimResourceUpdated => "scim.updated",
            Action::ScimResourceDeleted => "scim.deleted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// An event to record. Personal data goes in through the `email`/`source` setters, which
/// pseudonymise; `detail` is for values that are not personal (ids, counts, names of things).
#[derive(Debug, Clone)]
pub struct Event {
    actor: Actor,
    action: Action,
    target: Option<String>,
    organisation: Option<String>,
    outcome: Outcome,
    source: Option<IpAddr>,
    emails: Vec<(&'static str, String)>,
    details: Map<String, Value>,
}

impl Event {
    pub fn new(actor: Actor, action: Action) -> Self {
        Self {
            actor,
            action,
            target: None,
            organisation: None,
            outcome: Outcome::Success,
            source: None,
            emails: Vec::new(),
            details: Map::new(),
        }
    }
    pub fn target(mut self, target: impl std::fmt::Display) -> Self {
        self.target = Some(target.to_string());
        self
    }
    /// The organisation the event belongs to, so its administrators see it in their log.
    pub fn organisation(mut self, org: impl std::fmt::Display) -> Self {
        self.organisation = Some(org.to_string());
        self
    }
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }
    pub fn source(mut self, ip: Option<IpAddr>) -> Self {
        self.source = ip;
        self
    }
    pub fn email(mut self, field: &'static str, email: &str) -> Self {
        self.emails.push((field, email.to_owned()));
        self
    }
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }
}

/// Writes events; holds the pseudonymisation key.
#[derive(Debug, Clone)]
pub struct Auditor {
    pseudonymiser: Pseudonymiser,
}

impl Auditor {
    pub fn new(pseudonymiser: Pseudonymiser) -> Self {
        Self { pseudonymiser }
    }

    pub fn pseudonymiser(&self) -> &Pseudonymiser {
        &self.pseudonymiser
    }

    pub fn record(&self, conn: &mut impl AuditRepository, now: NaiveDateTime, event: Event) -> StorageResult<()> {
        let mut details = event.details;
        for (field, email) in &event.emails {
            details.insert((*field).to_owned(), self.pseudonymiser.pseudonymise(Datum::Email, email).into());
        }
        let row = AuditEventRow {
            id: AuditEventId::new().to_string(),
            occurred_at: now,
            actor: event.actor.as_string(),
            action: event.action.as_str().to_owned(),
            // Named, else the `organisation` detail many events carry.
            organisation_id: event
                .organisation
                .or_else(|| details.get("organisation").and_then(Value::as_str).map(str::to_owned)),
            target: event.target,
            outcome: event.outcome.as_str().to_owned(),
            source: event.source.map(|ip| self.pseudonymiser.pseudonymise(Datum::IpAddress, &ip.to_string())),
            details: (!details.is_empty()).then(|| Value::Object(details).to_string()),
        };
        conn.append_audit_event(&row)
    }

    /// The retention purge: removes events older than `retention_days`, and records that it did.
    pub fn purge(
        &self,
        conn: &mut impl AuditRepository,
        now: NaiveDateTime,
        retention_days: u32,
    ) -> StorageResult<usize> {
        let removed = conn.purge_audit_events(now - Duration::days(i64::from(retention_days)))?;
        if removed > 0 {
            self.record(conn, now, Event::new(Actor::System, Action::AuditPurged).detail("removed", removed))?;
        }
        Ok(removed)
    }
}
