//! Deprovisioning that takes effect at once: in the caller's transaction the user loses their
//! memberships in the organisation (its projects included), every session, every OAuth grant
//! (so refresh tokens stop working and access tokens introspect as inactive) and their personal
//! API tokens. SCIM deactivation and deletion also disable the account and revoke every personal
//! token; an administrator's removal of a member does neither (the person may belong to other
//! organisations: their tokens there stay).

use chrono::NaiveDateTime;

use crate::audit::{Action, Actor, Auditor, Event};
use crate::domain::{OrganisationId, UserId};
use crate::storage::api_tokens::ApiTokenRepository;
use crate::storage::audit::AuditRepository;
use crate::storage::oauth::OAuthRepository;
use crate::storage::organisations::OrganisationRepository;
use crate::storage::sessions::SessionRepository;
use crate::storage::users::UserRepository;
use crate::storage::{StorageError, StorageResult};

/// What a cut-off removed, for the audit log and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CutOff {
    pub memberships: usize,
    pub sessions: usize,
    pub grants: usize,
    pub tokens: usize,
}

fn gone(r: StorageResult<()>) -> StorageResult<usize> {
    match r {
        Ok(()) => Ok(1),
        Err(StorageError::NotFound) => Ok(0),
        Err(e) => Err(e),
    }
}

/// Cuts `user` off from `org` and from everything they signed in to; with `disable`, the
/// account is disabled too. Runs inside the caller's transaction.
pub fn cut_off(
    conn: &mut (
             impl OrganisationRepository
             + SessionRepository
             + OAuthRepository
             + ApiTokenRepository
             + UserRepository
             + AuditRepository
         ),
    auditor: &Auditor,
    now: NaiveDateTime,
    actor: Actor,
    org: OrganisationId,
    user: UserId,
    disable: bool,
) -> StorageResult<CutOff> {
    let mut done = CutOff::default();
    for p in conn.list_projects(org)? {
        done.memberships += gone(conn.remove_project_member(p.id, user))?;
    }
    done.memberships += gone(conn.remove_organisation_member(org, user))?;
    if disable {
        gone(conn.set_user_disabled(user, true, now))?;
    }
    done.sessions = conn.delete_sessions_of_user(user)?;
    done.grants = conn.revoke_user_grants(user, now)?;
    done.tokens = if disable {
        conn.revoke_user_tokens(user, None, now)?
    } else {
        // Still someone elsewhere: only the tokens of this organisation go.
        let mut n = 0;
        for t in conn.api_tokens_of_user(&user.to_string())? {
            if t.organisation_id == org.to_string() && conn.revoke_api_token(&t.id, now)? {
                n += 1;
            }
        }
        n
    };
    auditor.record(
        conn,
        now,
        Event::new(actor, Action::UserDeprovisioned)
            .target(user)
            .detail("organisation", org.to_string())
            .detail("disabled", disable)
            .detail("memberships", done.memberships)
            .detail("sessions", done.sessions)
            .detail("grants", done.grants)
            .detail("tokens", done.tokens),
    )?;
    Ok(done)
}
