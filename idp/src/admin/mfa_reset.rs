//! An administrator resets a user's second factors (every TOTP authenticator, security key,
//! passkey and recovery code: `mfa::reset`), for someone who lost their devices.
//!
//! Who may: the operator at the CLI; or a user with `members_manage` in an organisation the
//! target belongs to, from a session that itself used a second factor (its `amr` holds `mfa`):
//! a borrowed first-factor session must not be able to strip someone else's factors. Nobody
//! resets their own this way (their page removes them). Audited as `mfa.reset`.

use chrono::NaiveDateTime;

use super::access::permissions_of;
use super::organisations::AdminError;
use crate::audit::{Actor, Auditor};
use crate::domain::UserId;
use crate::domain::role::Permission;
use crate::domain::session::Session;
use crate::mfa::{self, MfaError, ResetReport};
use crate::storage::audit::AuditRepository;
use crate::storage::mfa::MfaRepository;
use crate::storage::organisations::OrganisationRepository;
use crate::storage::users::UserRepository;
use crate::storage::webauthn::WebauthnRepository;

/// Who asks.
#[derive(Debug, Clone, Copy)]
pub enum ResetCaller<'a> {
    Operator,
    /// A signed-in administrator, with the session they act from.
    Admin(&'a Session),
}

pub fn reset_user_factors(
    conn: &mut (impl MfaRepository + WebauthnRepository + AuditRepository + OrganisationRepository + UserRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: ResetCaller<'_>,
    target: UserId,
) -> Result<ResetReport, AdminError> {
    if conn.find_user(target)?.is_none() {
        return Err(AdminError::NotFound("user"));
    }
    let actor = match caller {
        ResetCaller::Operator => Actor::Cli,
        ResetCaller::Admin(session) => {
            if session.user_id == target {
                return Err(AdminError::Forbidden("your own second factors are removed on /account/mfa"));
            }
            if !session.amr.iter().any(|a| a == crate::auth::mfa_login::AMR_MFA) {
                return Err(AdminError::Forbidden(
                    "resetting someone's second factors needs a session that used a second factor; sign in again with yours",
                ));
            }
            let mut allowed = false;
            for org in conn.list_organisations()? {
                if conn.organisation_membership(org.id, target)?.is_some()
                    && permissions_of(conn, session.user_id, org.id, None)?.contains(&Permission::MembersManage)
                {
                    allowed = true;
                    break;
                }
            }
            if !allowed {
                // As for an id that does not exist: an admin elsewhere learns nothing.
                return Err(AdminError::NotFound("user"));
            }
            Actor::User(session.user_id)
        }
    };
    mfa::reset(conn, auditor, actor, target, now).map_err(|e| match e {
        MfaError::Storage(e) => AdminError::Storage(e),
        other => AdminError::Invalid(other.to_string()),
    })
}
