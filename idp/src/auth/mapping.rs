//! Group-to-role mapping: at every login through a connector, the memberships its rules grant
//! are synced to the groups the upstream asserts, removals included. Memberships an
//! administrator set (no source) are never touched; each change is audited.

use chrono::NaiveDateTime;

use crate::audit::{Action, Actor, Auditor, Event};
use crate::connector_config::RoleMapping;
use crate::domain::UserId;
use crate::domain::role::{BuiltinRole, RoleRef};
use crate::storage::StorageResult;
use crate::storage::audit::AuditRepository;
use crate::storage::organisations::{Membership, OrganisationRepository};

fn rank(r: BuiltinRole) -> u8 {
    match r {
        BuiltinRole::Viewer => 0,
        BuiltinRole::Member => 1,
        BuiltinRole::Admin => 2,
        BuiltinRole::Owner => 3,
    }
}

/// One place a mapping can put the user: an organisation, or a project in it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target<'a> {
    organisation: &'a str,
    project: Option<&'a str>,
}

/// The strongest role the rules give for `target` with these groups, if any.
fn desired(mappings: &[RoleMapping], groups: &[String], target: &Target<'_>) -> Option<BuiltinRole> {
    mappings
        .iter()
        .filter(|m| {
            m.organisation.as_str() == target.organisation && m.project.as_ref().map(|p| p.as_str()) == target.project
        })
        .filter(|m| groups.iter().any(|g| g == &m.group))
        .map(|m| m.role)
        .max_by_key(|r| rank(*r))
}

/// What a sync did, for tests and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Granted { organisation: String, project: Option<String>, role: BuiltinRole },
    Removed { organisation: String, project: Option<String> },
}

pub fn sync(
    conn: &mut (impl OrganisationRepository + AuditRepository + crate::storage::api_tokens::ApiTokenRepository),
    auditor: &Auditor,
    now: NaiveDateTime,
    user: UserId,
    connector_id: &str,
    groups: &[String],
    mappings: &[RoleMapping],
) -> StorageResult<Vec<Change>> {
    let source = format!("connector:{connector_id}");
    let mut targets: Vec<Target<'_>> = Vec::new();
    for m in mappings {
        let t = Target { organisation: m.organisation.as_str(), project: m.project.as_ref().map(|p| p.as_str()) };
        if !targets.contains(&t) {
            targets.push(t);
        }
    }
    let mut changes = Vec::new();
    for t in targets {
        let Some(org) = conn.find_organisation_by_slug(t.organisation)? else {
            tracing::warn!(
                organisation = t.organisation,
                connector = connector_id,
                "role mapping names no organisation"
            );
            continue;
        };
        let want = desired(mappings, groups, &t);
        let (current, project_id) = match t.project {
            None => (conn.organisation_membership(org.id, user)?, None),
            Some(slug) => {
                let Some(p) = conn.find_project_by_slug(org.id, slug)? else {
                    tracing::warn!(project = slug, connector = connector_id, "role mapping names no project");
                    continue;
                };
                (conn.project_membership(p.id, user)?, Some(p.id))
            }
        };
        let ours = |m: &Membership| m.source.as_deref() == Some(source.as_str());
        let action = match (&current, want) {
            // An administrator's decision stands.
            (Some(m), _) if !ours(m) => None,
            (Some(m), Some(role)) if m.role == RoleRef::Builtin(role) => None,
            (_, Some(role)) => Some(Some(role)),
            (Some(_), None) => Some(None),
            (None, None) => None,
        };
        let Some(action) = action else { continue };
        let project_name = t.project.map(str::to_owned);
        match (action, project_id) {
            (Some(role), None) => {
                conn.set_organisation_member_from(org.id, user, RoleRef::Builtin(role), Some(&source), now)?
            }
            (Some(role), Some(p)) => {
                conn.set_project_member_from(p, user, RoleRef::Builtin(role), Some(&source), now)?
            }
            (None, None) => conn.remove_organisation_member(org.id, user)?,
            (None, Some(p)) => conn.remove_project_member(p, user)?,
        }
        let (event, change) = match action {
            Some(role) => (
                Event::new(Actor::System, Action::MemberSet).detail("role", role.as_str()),
                Change::Granted { organisation: t.organisation.to_owned(), project: project_name.clone(), role },
            ),
            None => (
                Event::new(Actor::System, Action::MemberRemoved),
                Change::Removed { organisation: t.organisation.to_owned(), project: project_name.clone() },
            ),
        };
        let event =
            event.target(org.id).organisation(org.id).detail("user", user.to_string()).detail("via", source.as_str());
        let event = match project_id {
            Some(p) => event.detail("project", p.to_string()),
            None => event,
        };
        auditor.record(conn, now, event)?;
        changes.push(change);
    }
    if changes.iter().any(|c| matches!(c, Change::Removed { .. })) {
        crate::admin::tokens::revoke_lapsed(conn, user, now)?;
    }
    Ok(changes)
}
