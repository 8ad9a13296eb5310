//! Password sign-in and sign-up, when `password_login` is on. The slow hash runs outside any
//! database transaction; an unknown account costs the same hash and gets the same answer as a
//! wrong password.

use std::net::IpAddr;

use chrono::NaiveDateTime;

use crate::audit::{Action, Actor, Auditor, Event, Outcome};
use crate::config::Signup;
use crate::crypto::password::{self, PasswordHasher, PasswordProblem, PasswordRules};
use crate::domain::UserId;
use crate::domain::user::NewUser;
use crate::storage::audit::AuditRepository;
use crate::storage::passwords::PasswordRepository;
use crate::storage::users::UserRepository;
use crate::storage::{Db, StorageError};

/// The login name for an e-mail address: trimmed, lower-case, NFKC.
pub fn login_name(email: &str) -> String {
    password::normalise(email.trim()).to_lowercase()
}

fn plausible_email(email: &str) -> bool {
    let ok = email.len() <= 254 && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    ok && email
        .split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
}

/// Checks a password sign-in; `Ok(None)` is "wrong e-mail or password", whichever it was.
pub fn verify(db: &Db, hasher: &PasswordHasher, email: &str, password: &str) -> Result<Option<UserId>, StorageError> {
    let login = login_name(email);
    let stored = db.read(|conn| conn.password_for_login(&login))?;
    let matches = hasher.verify(password, stored.as_ref().map(|(_, h)| h.as_str()));
    let Some((user, _)) = stored.filter(|_| matches) else { return Ok(None) };
    let active = db.read(|conn| conn.find_user(user))?.is_some_and(|u| !u.disabled);
    Ok(active.then_some(user))
}

pub fn record_failure(
    conn: &mut impl AuditRepository,
    auditor: &Auditor,
    now: NaiveDateTime,
    email: &str,
    ip: Option<IpAddr>,
) -> Result<(), StorageError> {
    auditor.record(
        conn,
        now,
        Event::new(Actor::Anonymous, Action::LoginFailed)
            .outcome(Outcome::Failure)
            .detail("method", "password")
            .detail("reason", "wrong e-mail or password")
            .email("email", &login_name(email))
            .source(ip),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    #[error("not an e-mail address")]
    InvalidEmail,
    #[error("sign-up is closed for this address")]
    Closed,
    #[error("password refused")]
    Password(Vec<PasswordProblem>),
    #[error("an account with this e-mail address exists")]
    Exists,
    #[error("hashing failed")]
    Hash,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

#[allow(clippy::too_many_arguments)]
/// Creates an account with a password. The address is not verified by this: it is recorded as
/// unverified, and nothing links it to an upstream identity with the same address.
pub fn sign_up(
    db: &Db,
    hasher: &PasswordHasher,
    auditor: &Auditor,
    signup: &Signup,
    composition: bool,
    now: NaiveDateTime,
    email: &str,
    password: &str,
    ip: Option<IpAddr>,
) -> Result<UserId, SignupError> {
    let email = email.trim();
    if !plausible_email(email) {
        return Err(SignupError::InvalidEmail);
    }
    let allowed = match signup {
        Signup::Open => true,
        Signup::Invite => false,
        Signup::Domains(d) => {
            email.rsplit_once('@').is_some_and(|(_, dom)| d.iter().any(|x| x.eq_ignore_ascii_case(dom)))
        }
    };
    if !allowed {
        return Err(SignupError::Closed);
    }
    password::check_new(password, Some(email), PasswordRules { has_second_factor: false, composition })
        .map_err(SignupError::Password)?;
    // The hash first, so an existing address is not answered faster than a new one.
    let hash = hasher.hash(password).map_err(|_| SignupError::Hash)?;
    let login = login_name(email);
    if db.read(|conn| conn.password_for_login(&login))?.is_some() {
        return Err(SignupError::Exists);
    }
    db.write(|conn| {
        let user = conn
            .create_user(&NewUser { email: Some(email.to_owned()), email_verified: false, display_name: None }, now)?;
        conn.set_password(user.id, &login, &hash, now).map_err(|e| match e {
            StorageError::Conflict(_) => SignupError::Exists,
            other => other.into(),
        })?;
        auditor.record(
            conn,
            now,
            Event::new(Actor::User(user.id), Action::UserCreated)
                .target(user.id)
                .detail("method", "password")
                .email("email", email)
                .source(ip),
        )?;
        Ok(user.id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_shapes() {
        assert!(plausible_email("a@b.example"));
        for bad in ["", "a", "a@b", "@b.c", "a@.c", "a b@c.d", "a@c.d.", "a@c\n.d"] {
            assert!(!plausible_email(bad), "{bad:?}");
        }
        assert_eq!(login_name("  Alice@Example.COM "), "alice@example.com");
    }
}
