//! Two-factor policy: what an organisation and a project each require ([`Policy`]), the one
//! place where the two combine into what a user in that project must satisfy ([`effective`]),
//! and what that means for a given user and session ([`decide`]). See docs/mfa.md.
//!
//! Pure functions, plus [`requirement_for`] and [`user_factors`], which read what they need.
//! `/authorize` calls [`decide`] (with the requirement of the project being entered) and acts
//! on the [`Decision`].

use std::collections::BTreeSet;
use std::fmt;

use chrono::NaiveDateTime;

use crate::domain::{OrganisationId, ProjectId, UserId};
use crate::storage::mfa::MfaRepository;
use crate::storage::mfa_policies::MfaPolicyRepository;
use crate::storage::{StorageError, StorageResult};

/// A second factor a policy may allow. Recovery codes are not one: they are a way back in for
/// someone who has a factor, and satisfy whatever that factor would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    Totp,
    WebAuthn,
}

impl Method {
    pub const ALL: [Method; 2] = [Method::Totp, Method::WebAuthn];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::WebAuthn => "webauthn",
        }
    }

    /// Parses a method name; unknown names (and `recovery_code`) are refused with a sentence
    /// an admin can act on.
    pub fn parse(s: &str) -> Result<Method, String> {
        match s.trim() {
            "totp" => Ok(Method::Totp),
            "webauthn" => Ok(Method::WebAuthn),
            "recovery_code" | "recovery_codes" | "recovery" => Err(
                "recovery codes are a fallback for a factor, not a method to allow; the methods are totp and webauthn"
                    .into(),
            ),
            other => Err(format!("unknown second-factor method {other:?}; the methods are totp and webauthn")),
        }
    }

    /// Whether a session's `amr` (RFC 8176) shows this method was used: `otp` for TOTP, `hwk`
    /// or `swk` (a proof of possession of a key) for WebAuthn.
    fn in_amr(self, amr: &[String]) -> bool {
        let names: &[&str] = match self {
            Method::Totp => &["otp"],
            Method::WebAuthn => &["hwk", "swk"],
        };
        amr.iter().any(|a| names.contains(&a.as_str()))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a list of method names, refusing unknown ones (a name given twice counts once).
pub fn parse_methods<S: AsRef<str>>(names: &[S]) -> Result<BTreeSet<Method>, String> {
    names.iter().map(|n| Method::parse(n.as_ref())).collect()
}

/// What one organisation or project requires, as its admin set it. No stored policy is
/// [`Policy::off`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    pub required: bool,
    /// The methods that satisfy it; empty for any. Meaningless (and kept empty) when off.
    pub methods: BTreeSet<Method>,
    /// Until when a user without an allowed factor may still come in; `None` for no grace.
    pub grace_until: Option<NaiveDateTime>,
}

impl Policy {
    pub fn off() -> Policy {
        Policy::default()
    }

    /// The stored form: (`requirement`, `methods` as a JSON array).
    pub fn to_stored(&self) -> (String, String) {
        let requirement = if self.required { "required" } else { "off" };
        let names: Vec<&str> = self.methods.iter().map(|m| m.as_str()).collect();
        (requirement.to_owned(), serde_json::Value::from(names).to_string())
    }

    /// Reads the stored form back; unknown values are corruption, never a default.
    pub fn from_stored(requirement: &str, methods: &str, grace_until: Option<NaiveDateTime>) -> StorageResult<Policy> {
        let required = match requirement {
            "off" => false,
            "required" => true,
            other => return Err(StorageError::Corrupt(format!("mfa requirement {other:?}"))),
        };
        let names: Vec<String> =
            serde_json::from_str(methods).map_err(|e| StorageError::Corrupt(format!("mfa methods: {e}")))?;
        let methods = parse_methods(&names).map_err(StorageError::Corrupt)?;
        Ok(Policy { required, methods, grace_until })
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.required {
            return f.write_str("off");
        }
        f.write_str("required")?;
        write_methods(f, &Allowed::from_list(&self.methods))?;
        write_grace(f, self.grace_until)
    }
}

/// Which methods satisfy a requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allowed {
    Any,
    /// Only these. Empty when the organisation and the project each allow methods but none in
    /// common: then nothing satisfies the requirement (see [`effective`]).
    Only(BTreeSet<Method>),
}

impl Allowed {
    fn from_list(methods: &BTreeSet<Method>) -> Allowed {
        if methods.is_empty() { Allowed::Any } else { Allowed::Only(methods.clone()) }
    }

    pub fn allows(&self, m: Method) -> bool {
        match self {
            Allowed::Any => true,
            Allowed::Only(set) => set.contains(&m),
        }
    }

    /// The allowed methods, spelt out (`Any` is every method).
    pub fn methods(&self) -> BTreeSet<Method> {
        match self {
            Allowed::Any => Method::ALL.into_iter().collect(),
            Allowed::Only(set) => set.clone(),
        }
    }

    fn narrow(self, list: &BTreeSet<Method>) -> Allowed {
        if list.is_empty() {
            return self;
        }
        match self {
            Allowed::Any => Allowed::Only(list.clone()),
            Allowed::Only(set) => Allowed::Only(set.intersection(list).copied().collect()),
        }
    }
}

/// What a user in a project must satisfy: the organisation's and the project's policy combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub required: bool,
    pub allowed: Allowed,
    pub grace_until: Option<NaiveDateTime>,
}

impl Requirement {
    pub fn none() -> Requirement {
        Requirement { required: false, allowed: Allowed::Any, grace_until: None }
    }

    /// Required, but the organisation's and the project's method lists have nothing in common.
    pub fn is_unsatisfiable(&self) -> bool {
        self.required && self.allowed == Allowed::Only(BTreeSet::new())
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.required {
            return f.write_str("off");
        }
        f.write_str("required")?;
        write_methods(f, &self.allowed)?;
        write_grace(f, self.grace_until)
    }
}

fn write_methods(f: &mut fmt::Formatter<'_>, allowed: &Allowed) -> fmt::Result {
    match allowed {
        Allowed::Any => f.write_str(", any method"),
        Allowed::Only(set) if set.is_empty() => {
            f.write_str(", no method allowed by both organisation and project: nobody can satisfy it")
        }
        Allowed::Only(set) => {
            let names: Vec<&str> = set.iter().map(|m| m.as_str()).collect();
            write!(f, ", methods {}", names.join(","))
        }
    }
}

fn write_grace(f: &mut fmt::Formatter<'_>, grace_until: Option<NaiveDateTime>) -> fmt::Result {
    match grace_until {
        Some(g) => write!(f, ", enrolment grace until {} UTC", g.format("%Y-%m-%d %H:%M")),
        None => f.write_str(", no enrolment grace"),
    }
}

/// THE combination of an organisation's and a project's policy (either may be absent, which
/// is "off"); the strictest wins:
///
/// * required if either requires;
/// * the allowed methods are the intersection of the non-empty lists of the levels that
///   require (an empty list allows any). If both restrict and share no method, the result
///   allows nothing ([`Requirement::is_unsatisfiable`]): nobody gets in until an admin fixes
///   it. The stricter reading is kept on purpose; the admin use cases refuse to create such a
///   pair, so it only arises from data written around them;
/// * the enrolment grace ends at the earliest end among the levels that require, and a level
///   that requires with no grace leaves none.
///
/// The policy of a level that is off contributes nothing (not its methods, not its grace).
pub fn effective(organisation: Option<&Policy>, project: Option<&Policy>) -> Requirement {
    let requiring: Vec<&Policy> = [organisation, project].into_iter().flatten().filter(|p| p.required).collect();
    if requiring.is_empty() {
        return Requirement::none();
    }
    let allowed = requiring.iter().fold(Allowed::Any, |a, p| a.narrow(&p.methods));
    let grace_until = requiring.iter().map(|p| p.grace_until).try_fold(None, |acc: Option<NaiveDateTime>, g| {
        let g = g?;
        Some(Some(acc.map_or(g, |a| a.min(g))))
    });
    Requirement { required: true, allowed, grace_until: grace_until.flatten() }
}

/// What happens when a user with `user_factors` (their confirmed factors) and a session with
/// `session_amr` enters a project that requires `req`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing required, or the session already has an allowed second factor.
    Allow,
    /// The user has an allowed factor the session did not use: ask for one of `methods`.
    StepUp { methods: BTreeSet<Method> },
    /// The user has no allowed factor, but the grace period runs until `grace_until`: let them
    /// in, and offer enrolment of one of `methods`.
    Enrol { methods: BTreeSet<Method>, grace_until: NaiveDateTime },
    /// The user has no allowed factor and there is no grace (any more): enrol one of `methods`
    /// before going on.
    EnrolNow { methods: BTreeSet<Method> },
    /// The organisation's and the project's method lists share nothing: nobody can get in.
    Unsatisfiable,
}

impl Decision {
    /// Whether the user reaches the project (and its tokens) with this session as it is.
    pub fn lets_in(&self) -> bool {
        matches!(self, Decision::Allow | Decision::Enrol { .. })
    }
}

/// Whether a session's `amr` shows an allowed second factor. `mfa` must be there; when the
/// requirement names methods, one of them must be there too (an upstream's bare `mfa` does
/// not prove WebAuthn).
pub fn session_satisfies(req: &Requirement, session_amr: &[String]) -> bool {
    if !session_amr.iter().any(|a| a == "mfa") {
        return false;
    }
    match &req.allowed {
        Allowed::Any => true,
        Allowed::Only(set) => set.iter().any(|m| m.in_amr(session_amr)),
    }
}

/// The decision for one user and session entering a project: see [`Decision`]. Grace counts
/// while `now` is strictly before its end.
pub fn decide(req: &Requirement, user_factors: &[Method], session_amr: &[String], now: NaiveDateTime) -> Decision {
    if !req.required {
        return Decision::Allow;
    }
    if req.is_unsatisfiable() {
        return Decision::Unsatisfiable;
    }
    if session_satisfies(req, session_amr) {
        return Decision::Allow;
    }
    let usable: BTreeSet<Method> = user_factors.iter().copied().filter(|m| req.allowed.allows(*m)).collect();
    if !usable.is_empty() {
        return Decision::StepUp { methods: usable };
    }
    let methods = req.allowed.methods();
    match req.grace_until {
        Some(g) if now < g => Decision::Enrol { methods, grace_until: g },
        _ => Decision::EnrolNow { methods },
    }
}

/// The organisation's stored policy (off when it has none).
pub fn organisation_policy(conn: &mut impl MfaPolicyRepository, org: OrganisationId) -> StorageResult<Policy> {
    match conn.organisation_mfa_policy(&org.to_string())? {
        Some(r) => Policy::from_stored(&r.requirement, &r.methods, r.grace_until),
        None => Ok(Policy::off()),
    }
}

/// The project's stored policy (off when it has none).
pub fn project_policy(conn: &mut impl MfaPolicyRepository, project: ProjectId) -> StorageResult<Policy> {
    match conn.project_mfa_policy(&project.to_string())? {
        Some(r) => Policy::from_stored(&r.requirement, &r.methods, r.grace_until),
        None => Ok(Policy::off()),
    }
}

/// The requirement in `org`, or in `project` of `org`: reads both policies and [`effective`]s them.
pub fn requirement_for(
    conn: &mut impl MfaPolicyRepository,
    org: OrganisationId,
    project: Option<ProjectId>,
) -> StorageResult<Requirement> {
    let o = organisation_policy(conn, org)?;
    let p = project.map(|p| project_policy(conn, p)).transpose()?;
    Ok(effective(Some(&o), p.as_ref()))
}

/// What a session of `user` that signed in with `amr` meets on entering the organisation (or
/// one of its projects): the same requirement its applications' tokens are held to, so the
/// admin console is no way around it.
pub fn entering(
    conn: &mut (impl MfaPolicyRepository + MfaRepository + crate::storage::webauthn::WebauthnRepository),
    now: NaiveDateTime,
    user: UserId,
    amr: &[String],
    org: OrganisationId,
    project: Option<ProjectId>,
) -> StorageResult<Decision> {
    let req = requirement_for(conn, org, project)?;
    if !req.required {
        return Ok(Decision::Allow);
    }
    let factors = user_factors(conn, user)?;
    Ok(decide(&req, &factors, amr, now))
}

/// The user's factors: a confirmed TOTP authenticator (a pending enrolment is none), and any
/// WebAuthn credential (passkey or security key).
pub fn user_factors(
    conn: &mut (impl MfaRepository + crate::storage::webauthn::WebauthnRepository),
    user: UserId,
) -> StorageResult<Vec<Method>> {
    let mut factors = Vec::new();
    if conn.confirmed_totp_credential(&user.to_string())?.is_some() {
        factors.push(Method::Totp);
    }
    if super::webauthn::has_credential(conn, user)? {
        factors.push(Method::WebAuthn);
    }
    Ok(factors)
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
