//! Invitations: an organisation's administrator invites an e-mail address with a role; the
//! person, signed in through any connector with that e-mail verified, accepts at the accept URL
//! and becomes a member. The token (256 bits) is shown once, inside the URL, and kept only as its
//! SHA-256; an invitation is single use and lapses after [`LIFETIME_DAYS`]. idp sends no e-mail:
//! the administrator passes the URL on.

use chrono::{Duration, NaiveDateTime};
use serde::Serialize;

use super::caller::{Caller, require, resolve};
use super::directory::{may_hand_out, parse_role, role_string};
use super::organisations::AdminError;
use crate::audit::{Action, Actor, Auditor, Event};
use crate::crypto::tokens::{hash_token, random_token};
use crate::domain::organisation::Organisation;
use crate::domain::role::{BuiltinRole, Permission, RoleRef};
use crate::domain::{OrganisationId, UserId};
use crate::storage::audit::AuditRepository;
use crate::storage::invitations::{InvitationRepository, InvitationRow};
use crate::storage::organisations::OrganisationRepository;
use crate::storage::users::UserRepository;
use crate::storage::{StorageError, parse_id};

pub const LIFETIME_DAYS: i64 = 7;
/// The path under `public_url` where invitations are accepted.
pub const ACCEPT_PATH: &str = "/invitations/";

/// An invitation as its organisation's administrators see it (never the token).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct InvitationInfo {
    pub id: String,
    pub organisation_id: String,
    pub email: String,
    /// A built-in role's name, or a custom role's id.
    pub role: String,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: String,
    /// Who invited, as the audit log names actors.
    pub created_by: String,
    #[serde(serialize_with = "crate::domain::timestamp::rfc3339")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "crate::domain::timestamp::rfc3339")]
    pub expires_at: NaiveDateTime,
    pub accepted_by: Option<String>,
    #[serde(serialize_with = "crate::domain::timestamp::rfc3339_opt")]
    pub accepted_at: Option<NaiveDateTime>,
}

/// A new invitation with its accept URL, shown this once.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CreatedInvitation {
    pub invitation: InvitationInfo,
    /// `{public_url}/invitations/{token}`: pass it on to the person invited; it is not shown again.
    pub accept_url: String,
}

fn role_of(r: &InvitationRow) -> Result<RoleRef, StorageError> {
    match (&r.builtin_role, &r.custom_role_id) {
        (Some(b), None) => {
            b.parse::<BuiltinRole>().map(RoleRef::Builtin).map_err(|e| StorageError::Corrupt(e.to_string()))
        }
        (None, Some(c)) => Ok(RoleRef::Custom(parse_id(c)?)),
        _ => Err(StorageError::Corrupt("invitation without exactly one role".into())),
    }
}

fn status(r: &InvitationRow, now: NaiveDateTime) -> &'static str {
    if r.accepted_at.is_some() {
        "accepted"
    } else if r.revoked_at.is_some() {
        "revoked"
    } else if r.expires_at <= now {
        "expired"
    } else {
        "pending"
    }
}

fn info(r: InvitationRow, now: NaiveDateTime) -> Result<InvitationInfo, AdminError> {
    Ok(InvitationInfo {
        role: role_string(role_of(&r)?),
        status: status(&r, now).to_owned(),
        id: r.id,
        organisation_id: r.organisation_id,
        email: r.email,
        created_by: r.created_by,
        created_at: r.created_at,
        expires_at: r.expires_at,
        accepted_by: r.accepted_by,
        accepted_at: r.accepted_at,
    })
}

/// An e-mail address as an invitation holds it: trimmed, one `@` with something on each side, no
/// spaces or control characters, at most 254 characters.
fn check_email(raw: &str) -> Result<String, AdminError> {
    let e = raw.trim();
    let ok = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && local.len() <= 64 && domain.contains('.') && !domain.contains('@')
        });
    if ok { Ok(e.to_owned()) } else { Err(AdminError::Invalid(format!("{e:?} is not an e-mail address"))) }
}

/// Invites `email` into the organisation with `role` (none the caller could not hand out
/// themselves). `public_url` without a trailing slash.
#[allow(clippy::too_many_arguments)]
pub fn create(
    conn: &mut (impl OrganisationRepository + InvitationRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    email: &str,
    role: &str,
    public_url: &str,
) -> Result<CreatedInvitation, AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    require(conn, caller, org, None, Permission::MembersManage, "inviting members needs members_manage")?;
    let email = check_email(email)?;
    let role = parse_role(conn, org, role)?;
    may_hand_out(conn, caller, org, None, role)?;
    let token = random_token(32);
    let (builtin_role, custom_role_id) = match role {
        RoleRef::Builtin(b) => (Some(b.as_str().to_owned()), None),
        RoleRef::Custom(id) => (None, Some(id.to_string())),
    };
    let row = InvitationRow {
        id: uuid::Uuid::new_v4().to_string(),
        organisation_id: org.to_string(),
        email,
        builtin_role,
        custom_role_id,
        token_hash: hash_token(&token),
        created_by: caller.actor().as_string(),
        created_at: now,
        expires_at: now + Duration::days(LIFETIME_DAYS),
        revoked_at: None,
        accepted_at: None,
        accepted_by: None,
    };
    conn.insert_invitation(&row)?;
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::InvitationCreated)
            .target(&row.id)
            .organisation(org)
            .email("email", &row.email)
            .detail("role", role_string(role)),
    )?;
    Ok(CreatedInvitation { accept_url: format!("{public_url}{ACCEPT_PATH}{token}"), invitation: info(row, now)? })
}

pub fn list(
    conn: &mut (impl OrganisationRepository + InvitationRepository),
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
) -> Result<Vec<InvitationInfo>, AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    require(conn, caller, org, None, Permission::MembersRead, "reading invitations needs members_read")?;
    conn.invitations_of_organisation(&org.to_string())?.into_iter().map(|r| info(r, now)).collect()
}

fn own(conn: &mut impl InvitationRepository, org: OrganisationId, id: &str) -> Result<InvitationRow, AdminError> {
    let id = id.parse::<uuid::Uuid>().map_err(|_| AdminError::NotFound("invitation"))?.to_string();
    conn.find_invitation(&id)?
        .filter(|r| r.organisation_id == org.to_string())
        .ok_or(AdminError::NotFound("invitation"))
}

/// Revokes a pending invitation: its URL then shows that it was revoked.
pub fn revoke(
    conn: &mut (impl OrganisationRepository + InvitationRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    id: &str,
) -> Result<(), AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    require(conn, caller, org, None, Permission::MembersManage, "revoking invitations needs members_manage")?;
    let row = own(conn, org, id)?;
    if !conn.revoke_invitation(&row.id, now)? {
        return Err(AdminError::Conflict(format!("the invitation is {} already", status(&row, now))));
    }
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::InvitationRevoked)
            .target(&row.id)
            .organisation(org)
            .email("email", &row.email)
            .detail("role", role_string(role_of(&row)?)),
    )?;
    Ok(())
}

/// Why an invitation cannot be accepted. Each says what happened; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum InvitationError {
    #[error("this invitation link is not valid")]
    Unknown,
    #[error("this invitation has expired")]
    Expired,
    #[error("this invitation was revoked")]
    Revoked,
    #[error("this invitation was used already")]
    Used,
    #[error("this invitation is for another e-mail address")]
    WrongEmail,
    #[error("your account's e-mail address is not verified")]
    EmailNotVerified,
    #[error("you are a member of this organisation already")]
    AlreadyMember,
    #[error("the role of this invitation no longer exists")]
    RoleGone,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What the accept page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub organisation: Organisation,
    pub email: String,
    pub role: String,
}

/// The open invitation `token` names, for `user`, or why it cannot be accepted by them.
fn open_for(
    conn: &mut (impl OrganisationRepository + InvitationRepository + UserRepository),
    now: NaiveDateTime,
    user: UserId,
    token: &str,
) -> Result<(InvitationRow, RoleRef, Invitation), InvitationError> {
    if token.len() > 100 {
        return Err(InvitationError::Unknown);
    }
    let row = conn.find_invitation_by_hash(&hash_token(token))?.ok_or(InvitationError::Unknown)?;
    match status(&row, now) {
        "accepted" => return Err(InvitationError::Used),
        "revoked" => return Err(InvitationError::Revoked),
        "expired" => return Err(InvitationError::Expired),
        _ => {}
    }
    let org_id: OrganisationId = parse_id(&row.organisation_id)?;
    let organisation = conn.find_organisation(org_id)?.ok_or(InvitationError::Unknown)?;
    let account = conn.find_user(user)?.filter(|u| !u.disabled).ok_or(InvitationError::Unknown)?;
    let matches = account.email.as_deref().is_some_and(|e| e.trim().eq_ignore_ascii_case(&row.email));
    if !matches {
        return Err(InvitationError::WrongEmail);
    }
    if !account.email_verified {
        return Err(InvitationError::EmailNotVerified);
    }
    let role = role_of(&row)?;
    if let RoleRef::Custom(id) = role {
        if conn.find_custom_role(id)?.is_none_or(|r| r.organisation_id != org_id) {
            return Err(InvitationError::RoleGone);
        }
    }
    if conn.organisation_membership(org_id, user)?.is_some() {
        return Err(InvitationError::AlreadyMember);
    }
    let shown = Invitation { organisation, email: row.email.clone(), role: role_string(role) };
    Ok((row, role, shown))
}

/// What the accept page shows `user` before they accept (read-only).
pub fn preview(
    conn: &mut (impl OrganisationRepository + InvitationRepository + UserRepository),
    now: NaiveDateTime,
    user: UserId,
    token: &str,
) -> Result<Invitation, InvitationError> {
    open_for(conn, now, user, token).map(|(_, _, shown)| shown)
}

/// `user` accepts: they become a member with the invitation's role, and the invitation is used
/// up. Audited.
pub fn accept(
    conn: &mut (impl OrganisationRepository + InvitationRepository + UserRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    user: UserId,
    token: &str,
) -> Result<Invitation, InvitationError> {
    let (row, role, shown) = open_for(conn, now, user, token)?;
    if !conn.accept_invitation(&row.id, &user.to_string(), now)? {
        return Err(InvitationError::Used);
    }
    let org = shown.organisation.id;
    conn.set_organisation_member(org, user, role, now)?;
    auditor.record(
        conn,
        now,
        Event::new(Actor::User(user), Action::InvitationAccepted)
            .target(&row.id)
            .organisation(org)
            .detail("user", user.to_string())
            .detail("role", role_string(role)),
    )?;
    auditor.record(
        conn,
        now,
        Event::new(Actor::User(user), Action::MemberSet)
            .target(org)
            .organisation(org)
            .detail("user", user.to_string())
            .detail("role", role_string(role))
            .detail("via", "invitation"),
    )?;
    Ok(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e_mail_addresses_are_checked() {
        assert_eq!(check_email(" Bob@Acme.test ").ok().as_deref(), Some("Bob@Acme.test"));
        for bad in ["", "bob", "@acme.test", "bob@", "bob@acme", "a b@acme.test", "bob@@acme.test", "b\u{0}@acme.test"]
        {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(check_email(&format!("{}@acme.test", "a".repeat(65))).is_err());
    }
}
