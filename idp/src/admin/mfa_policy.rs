//! Two-factor policy use cases: set an organisation's or a project's requirement, and show
//! the effective requirement (optionally for one user). `policy_manage` in the organisation
//! (or, for a project, in the project) is needed for all of them; the operator at the CLI may
//! do everything; a caller who belongs to neither gets `NotFound`. Every change is audited
//! (`mfa.policy_set`) with the old and the new policy, in the same transaction.
//!
//! How the levels combine is `mfa::policy::effective`, and only there.

use chrono::{Duration, NaiveDateTime};

use super::caller::{Caller, holds, resolve};
use super::organisations::AdminError;
use crate::audit::{Action, Auditor, Event};
use crate::domain::organisation::Project;
use crate::domain::role::Permission;
use crate::domain::{OrganisationId, ProjectId, UserId};
use crate::mfa::policy::{
    self, Decision, Method, Policy, Requirement, effective, organisation_policy, parse_methods, project_policy,
};
use crate::storage::audit::AuditRepository;
use crate::storage::mfa::MfaRepository;
use crate::storage::mfa_policies::{MfaPolicyRepository, OrganisationMfaPolicyRow, ProjectMfaPolicyRow};
use crate::storage::organisations::OrganisationRepository;
use crate::storage::users::UserRepository;

/// The longest enrolment grace an admin may give.
pub const MAX_GRACE_DAYS: i64 = 365;

/// A requested policy, as an admin types it.
#[derive(Debug, Clone, Copy)]
pub struct PolicyChange<'a> {
    pub required: bool,
    /// Method names (`totp`, `webauthn`); empty for any.
    pub methods: &'a [String],
    /// Days from now during which users without an allowed factor still get in.
    pub grace_days: Option<i64>,
}

impl PolicyChange<'_> {
    fn to_policy(self, now: NaiveDateTime) -> Result<Policy, AdminError> {
        if !self.required && !self.methods.is_empty() {
            return Err(AdminError::Invalid("allowed methods only apply when two-factor is required".into()));
        }
        if !self.required && self.grace_days.is_some() {
            return Err(AdminError::Invalid("a grace period only applies when two-factor is required".into()));
        }
        let methods = parse_methods(self.methods).map_err(AdminError::Invalid)?;
        let grace_until = match self.grace_days {
            None => None,
            Some(d) if (1..=MAX_GRACE_DAYS).contains(&d) => Some(now + Duration::days(d)),
            Some(_) => return Err(AdminError::Invalid(format!("the grace period is 1 to {MAX_GRACE_DAYS} days"))),
        };
        Ok(Policy { required: self.required, methods, grace_until })
    }
}

fn names(methods: &std::collections::BTreeSet<Method>) -> String {
    methods.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(",")
}

fn conflict(project: &str, org: &Policy, proj: &Policy) -> AdminError {
    AdminError::Invalid(format!(
        "the organisation allows only {} and project {project} only {}: no method in common, nobody could get in",
        names(&org.methods),
        names(&proj.methods)
    ))
}

fn audit_change(
    conn: &mut impl AuditRepository,
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    (scope, target, org): (&'static str, String, OrganisationId),
    (old, new): (&Policy, &Policy),
) -> Result<(), AdminError> {
    auditor.record(
        conn,
        now,
        Event::new(caller.actor(), Action::MfaPolicySet)
            .target(target)
            .organisation(org)
            .detail("scope", scope)
            .detail("old", old.to_string())
            .detail("new", new.to_string()),
    )?;
    Ok(())
}

/// Sets the organisation's requirement. Refused when the new method list shares nothing with
/// one of its projects' lists (that project could never be entered).
pub fn set_organisation_policy(
    conn: &mut (impl MfaPolicyRepository + OrganisationRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    change: PolicyChange<'_>,
) -> Result<Requirement, AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    if !holds(conn, caller, org, None, Permission::PolicyManage)? {
        return Err(AdminError::Forbidden("changing the two-factor policy needs policy_manage"));
    }
    let new = change.to_policy(now)?;
    for row in conn.project_mfa_policies_of_organisation(&org.to_string())? {
        let proj = Policy::from_stored(&row.requirement, &row.methods, row.grace_until)?;
        if effective(Some(&new), Some(&proj)).is_unsatisfiable() {
            let pid: ProjectId = crate::storage::parse_id(&row.project_id)?;
            let slug = conn.find_project(pid)?.map_or(row.project_id.clone(), |p| p.slug.as_str().to_owned());
            return Err(conflict(&slug, &new, &proj));
        }
    }
    let old = organisation_policy(conn, org)?;
    let (requirement, methods) = new.to_stored();
    conn.set_organisation_mfa_policy(&OrganisationMfaPolicyRow {
        organisation_id: org.to_string(),
        requirement,
        methods,
        grace_until: new.grace_until,
        updated_at: now,
        updated_by: caller.actor().as_string(),
    })?;
    audit_change(conn, auditor, now, caller, ("organisation", org.to_string(), org), (&old, &new))?;
    Ok(effective(Some(&new), None))
}

/// Sets a project's requirement; returns the effective requirement in the project (which the
/// organisation's policy may make stricter than what was set).
pub fn set_project_policy(
    conn: &mut (impl MfaPolicyRepository + OrganisationRepository + AuditRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    project: &str,
    change: PolicyChange<'_>,
) -> Result<Requirement, AdminError> {
    let (org, Some(pid)) = resolve(conn, caller, organisation, Some(project))? else {
        return Err(AdminError::NotFound("project"));
    };
    if !holds(conn, caller, org, Some(pid), Permission::PolicyManage)? {
        return Err(AdminError::Forbidden("changing the two-factor policy needs policy_manage"));
    }
    let new = change.to_policy(now)?;
    let org_policy = organisation_policy(conn, org)?;
    let combined = effective(Some(&org_policy), Some(&new));
    if combined.is_unsatisfiable() {
        return Err(conflict(project, &org_policy, &new));
    }
    let old = project_policy(conn, pid)?;
    let (requirement, methods) = new.to_stored();
    conn.set_project_mfa_policy(&ProjectMfaPolicyRow {
        project_id: pid.to_string(),
        requirement,
        methods,
        grace_until: new.grace_until,
        updated_at: now,
        updated_by: caller.actor().as_string(),
    })?;
    audit_change(conn, auditor, now, caller, ("project", pid.to_string(), org), (&old, &new))?;
    Ok(combined)
}

/// Where one user stands in a project: their factors, and what a session of theirs without a
/// second factor would get on entering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStanding {
    pub user: UserId,
    pub factors: Vec<Method>,
    pub without_mfa: Decision,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePolicy {
    pub organisation_id: OrganisationId,
    pub project_id: Option<ProjectId>,
    pub organisation: Policy,
    pub project: Option<Policy>,
    pub effective: Requirement,
    pub user: Option<UserStanding>,
}

/// The organisation's and (if named) the project's policy, what they combine to, and (if a
/// user is named) what that user would meet.
pub fn get_effective(
    conn: &mut (impl MfaPolicyRepository + OrganisationRepository + UserRepository + MfaRepository),
    now: NaiveDateTime,
    caller: Caller,
    organisation: &str,
    project: Option<&str>,
    user: Option<UserId>,
) -> Result<EffectivePolicy, AdminError> {
    let (org, pid) = resolve(conn, caller, organisation, project)?;
    if !holds(conn, caller, org, pid, Permission::PolicyManage)? {
        return Err(AdminError::Forbidden("reading the two-factor policy needs policy_manage"));
    }
    let org_policy = organisation_policy(conn, org)?;
    let project_policy = pid.map(|p| project_policy(conn, p)).transpose()?;
    let req = effective(Some(&org_policy), project_policy.as_ref());
    let user = match user {
        None => None,
        Some(u) => {
            if conn.find_user(u)?.is_none() {
                return Err(AdminError::NotFound("user"));
            }
            let factors = policy::user_factors(conn, u)?;
            let without_mfa = policy::decide(&req, &factors, &[], now);
            Some(UserStanding { user: u, factors, without_mfa })
        }
    };
    Ok(EffectivePolicy {
        organisation_id: org,
        project_id: pid,
        organisation: org_policy,
        project: project_policy,
        effective: req,
        user,
    })
}

/// One project's own policy and the effective requirement in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectPolicy {
    pub project: Project,
    pub own: Policy,
    pub effective: Requirement,
}

/// The organisation's policy and, for each of its projects (by slug), the project's own and
/// the effective one.
pub fn list_effective(
    conn: &mut (impl MfaPolicyRepository + OrganisationRepository),
    caller: Caller,
    organisation: &str,
) -> Result<(Policy, Vec<ProjectPolicy>), AdminError> {
    let (org, _) = resolve(conn, caller, organisation, None)?;
    if !holds(conn, caller, org, None, Permission::PolicyManage)? {
        return Err(AdminError::Forbidden("reading the two-factor policy needs policy_manage"));
    }
    let org_policy = organisation_policy(conn, org)?;
    let mut projects = conn.list_projects(org)?;
    projects.sort_by(|a, b| a.slug.as_str().cmp(b.slug.as_str()));
    let mut out = Vec::new();
    for p in projects {
        let own = project_policy(conn, p.id)?;
        let effective = effective(Some(&org_policy), Some(&own));
        out.push(ProjectPolicy { project: p, own, effective });
    }
    Ok((org_policy, out))
}

#[cfg(test)]
#[path = "mfa_policy_tests.rs"]
mod tests;
