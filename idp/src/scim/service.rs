//! The SCIM use cases, inside the caller's transaction: create, read, list, replace, patch and
//! delete Users and Groups of one organisation (the token's; another's resources are not
//! found). A User is an idp user who is a member of the organisation while active; a Group's
//! members get the roles the organisation's group-to-role mappings give its displayName,
//! with the rules of `auth::mapping` (an administrator's membership stands; removals sync).
//! `active: false` or a deletion cuts the user off at once (`admin::deprovision`).

use chrono::{NaiveDateTime, SecondsFormat};
use serde_json::{Map, Value, json};

use super::error::{ScimError, ScimType};
use super::filter::{self, get_ci};
use super::patch;
use super::schema::{self, Kind, LIST_URN, MAX_RESULTS};
use crate::audit::{Action, Actor, Auditor, Event};
use crate::connector_config::RoleMapping;
use crate::domain::organisation::Slug;
use crate::domain::role::BuiltinRole;
use crate::domain::user::NewUser;
use crate::domain::{OrganisationId, UserId};
use crate::storage::scim::{NamedBy, ScimRepository, ScimResourceRow, set_user_profile};
use crate::storage::users::UserRepository;
use crate::storage::{DbConnection, StorageError, parse_id};

/// The group every active SCIM User is in, mapped to `member` of the organisation: it cannot
/// clash with a real group, whose displayName is never empty.
const MEMBER_GROUP: &str = "";

/// Who provisions, where, and when.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub org: OrganisationId,
    pub org_slug: Slug,
    /// `{public_url}/scim/v2`, for `meta.location` and `$ref`.
    pub base: &'a str,
    /// Every connector's group-to-role mappings; those of this organisation apply.
    pub mappings: &'a [RoleMapping],
    pub auditor: &'a Auditor,
    pub actor: Actor,
    pub now: NaiveDateTime,
    /// The request's `If-Match`: a replace, patch or delete of another version is refused.
    pub if_match: Option<&'a str>,
}

/// What a list or search asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub filter: Option<String>,
    pub start_index: Option<i64>,
    pub count: Option<i64>,
    pub attributes: Vec<String>,
    pub excluded: Vec<String>,
}

fn names(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

impl Query {
    /// From URL query parameters (names case-insensitive).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Result<Query, ScimError> {
        let mut q = Query::default();
        let int = |k: &str, v: &str| {
            v.trim().parse::<i64>().map_err(|_| ScimError::bad(ScimType::InvalidValue, format!("{k} is not a number")))
        };
        for (k, v) in pairs {
            match k.to_ascii_lowercase().as_str() {
                "filter" => q.filter = Some(v),
                "startindex" => q.start_index = Some(int("startIndex", &v)?),
                "count" => q.count = Some(int("count", &v)?),
                "attributes" => q.attributes = names(&v),
                "excludedattributes" => q.excluded = names(&v),
                _ => {}
            }
        }
        Ok(q)
    }

    /// From a `POST .search` body (RFC 7644 §3.4.3).
    pub fn from_search(body: &Value) -> Result<Query, ScimError> {
        let obj =
            body.as_object().ok_or_else(|| ScimError::bad(ScimType::InvalidSyntax, "the body is not an object"))?;
        let list = |k: &str| -> Result<Vec<String>, ScimError> {
            match get_ci(obj, k) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::String(s)) => Ok(names(s)),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| ScimError::bad(ScimType::InvalidValue, format!("{k} lists strings"))),
                Some(_) => Err(ScimError::bad(ScimType::InvalidValue, format!("{k} lists strings"))),
            }
        };
        let int = |k: &str| -> Result<Option<i64>, ScimError> {
            match get_ci(obj, k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ScimError::bad(ScimType::InvalidValue, format!("{k} is not an integer"))),
            }
        };
        let filter = match get_ci(obj, "filter") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(ScimError::bad(ScimType::InvalidFilter, "filter is a string")),
        };
        Ok(Query {
            filter,
            start_index: int("startIndex")?,
            count: int("count")?,
            attributes: list("attributes")?,
            excluded: list("excludedAttributes")?,
        })
    }
}

fn time(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn attrs_of(row: &ScimResourceRow) -> Result<Map<String, Value>, ScimError> {
    serde_json::from_str(&row.attributes)
        .map_err(|e| ScimError::Storage(StorageError::Corrupt(format!("scim resource {}: {e}", row.id))))
}

fn encode(attrs: &Map<String, Value>) -> Result<String, ScimError> {
    serde_json::to_string(attrs).map_err(|e| ScimError::Storage(StorageError::Corrupt(e.to_string())))
}

fn find(conn: &mut DbConnection, sc: &Scope<'_>, kind: Kind, id: &str) -> Result<ScimResourceRow, ScimError> {
    conn.find_scim_resource(&sc.org.to_string(), kind.as_str(), id)?.ok_or(ScimError::NotFound)
}

/// The resource's weak entity tag (also `meta.version`).
fn etag(row: &ScimResourceRow) -> String {
    format!("W/\"{}\"", row.version)
}

/// The resource to change, if the request's `If-Match` (when given) names its version:
/// `*`, or one of the listed tags, compared weakly (RFC 9110 §13.1.1).
fn find_for_write(conn: &mut DbConnection, sc: &Scope<'_>, kind: Kind, id: &str) -> Result<ScimResourceRow, ScimError> {
    let row = find(conn, sc, kind, id)?;
    let Some(wanted) = sc.if_match else { return Ok(row) };
    let current = etag(&row);
    let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    if wanted.split(',').any(|t| t.trim() == "*" || weak(t) == weak(&current)) {
        Ok(row)
    } else {
        Err(ScimError::PreconditionFailed)
    }
}

fn location(sc: &Scope<'_>, kind: Kind, id: &str) -> String {
    format!("{}/{}/{id}", sc.base, kind.endpoint())
}

fn render(conn: &mut DbConnection, sc: &Scope<'_>, kind: Kind, row: &ScimResourceRow) -> Result<Value, ScimError> {
    let mut obj = attrs_of(row)?;
    let mut schemas = vec![Value::from(kind.urn())];
    if obj.contains_key(schema::ENTERPRISE_URN) {
        schemas.push(schema::ENTERPRISE_URN.into());
    }
    obj.insert("schemas".into(), Value::Array(schemas));
    obj.insert("id".into(), row.id.clone().into());
    if kind == Kind::User {
        let mut groups = Vec::new();
        for gid in conn.scim_groups_of(&row.id)? {
            if let Some(g) = conn.find_scim_resource(&sc.org.to_string(), Kind::Group.as_str(), &gid)? {
                let display = attrs_of(&g)?.get("displayName").cloned().unwrap_or(Value::Null);
                groups.push(json!({"value": gid, "$ref": location(sc, Kind::Group, &gid), "display": display, "type": "direct"}));
            }
        }
        if !groups.is_empty() {
            obj.insert("groups".into(), Value::Array(groups));
        }
    }
    obj.insert(
        "meta".into(),
        json!({
            "resourceType": kind.as_str(),
            "created": time(row.created_at),
            "lastModified": time(row.updated_at),
            "location": location(sc, kind, &row.id),
            "version": etag(row),
        }),
    );
    Ok(Value::Object(obj))
}

/// The top-level attribute an `attributes` entry names (`name.givenName` -> `name`).
fn top_name(a: &str) -> String {
    let a = a.trim();
    let a = if a.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        && !a.eq_ignore_ascii_case(schema::ENTERPRISE_URN)
    {
        a.rsplit_once(':').map_or(a, |(_, n)| n)
    } else {
        a
    };
    a.split('.').next().unwrap_or(a).to_ascii_lowercase()
}

/// RFC 7644 §3.4.2.5: `attributes` keeps only those (and id, schemas); `excludedAttributes`
/// drops those (never id or schemas).
fn project(v: Value, attributes: &[String], excluded: &[String]) -> Value {
    let Value::Object(obj) = v else { return v };
    let always = |k: &str| k == "id" || k == "schemas";
    let keep: Vec<String> = attributes.iter().map(|a| top_name(a)).collect();
    let drop: Vec<String> = excluded.iter().map(|a| top_name(a)).collect();
    let out: Map<String, Value> = obj
        .into_iter()
        .filter(|(k, _)| {
            let lk = k.to_ascii_lowercase();
            always(k) || ((keep.is_empty() || keep.contains(&lk)) && !drop.contains(&lk))
        })
        .collect();
    Value::Object(out)
}

fn unique_name(kind: Kind, attrs: &Map<String, Value>, id: &str) -> String {
    match kind {
        Kind::User => schema::text(attrs, "userName").unwrap_or_default().to_lowercase(),
        Kind::Group => id.to_owned(),
    }
}

/// The idp side of a SCIM User: the primary (else first) e-mail, and a display name.
fn profile(attrs: &Map<String, Value>) -> (Option<String>, Option<String>) {
    let emails: Vec<&Map<String, Value>> = attrs
        .get("emails")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    let email = emails
        .iter()
        .find(|e| e.get("primary") == Some(&Value::Bool(true)))
        .or_else(|| emails.first())
        .and_then(|e| schema::text(e, "value"))
        .map(str::to_owned);
    let name = attrs.get("name").and_then(Value::as_object);
    let display = schema::text(attrs, "displayName")
        .map(str::to_owned)
        .or_else(|| name.and_then(|n| schema::text(n, "formatted")).map(str::to_owned))
        .or_else(|| {
            let n = name?;
            let full = format!(
                "{} {}",
                schema::text(n, "givenName").unwrap_or_default(),
                schema::text(n, "familyName").unwrap_or_default()
            );
            let full = full.trim();
            (!full.is_empty()).then(|| full.to_owned())
        });
    (email, display)
}

fn is_active(attrs: &Map<String, Value>) -> bool {
    attrs.get("active") != Some(&Value::Bool(false))
}

fn user_of(row: &ScimResourceRow) -> Result<UserId, ScimError> {
    let raw =
        row.user_id.as_deref().ok_or_else(|| StorageError::Corrupt(format!("scim user {} has no user", row.id)))?;
    Ok(parse_id(raw)?)
}

fn audit(conn: &mut DbConnection, sc: &Scope<'_>, action: Action, kind: Kind, id: &str) -> Result<(), ScimError> {
    let e = Event::new(sc.actor.clone(), action)
        .target(id)
        .detail("kind", kind.as_str())
        .detail("organisation", sc.org.to_string());
    Ok(sc.auditor.record(conn, sc.now, e)?)
}

/// The ids a Group's members attribute names; each must be a User or Group of the organisation.
fn member_ids(conn: &mut DbConnection, sc: &Scope<'_>, attrs: &Map<String, Value>) -> Result<Vec<String>, ScimError> {
    let mut ids: Vec<String> = Vec::new();
    let org = sc.org.to_string();
    for m in attrs.get("members").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        let id = m
            .as_object()
            .and_then(|o| schema::text(o, "value"))
            .ok_or_else(|| ScimError::bad(ScimType::InvalidValue, "each member needs a value"))?;
        let known = conn.find_scim_resource(&org, Kind::User.as_str(), id)?.is_some()
            || conn.find_scim_resource(&org, Kind::Group.as_str(), id)?.is_some();
        if !known {
            return Err(ScimError::bad(ScimType::InvalidValue, format!("member {id} is not a User or Group here")));
        }
        if !ids.iter().any(|x| x == id) {
            ids.push(id.to_owned());
        }
    }
    Ok(ids)
}

/// Brings the user's roles in line with their groups, as a login through a connector would.
fn sync_roles(conn: &mut DbConnection, sc: &Scope<'_>, user: UserId, scim_id: &str) -> Result<(), ScimError> {
    let mut groups = vec![MEMBER_GROUP.to_owned()];
    for gid in conn.scim_groups_of(scim_id)? {
        if let Some(g) = conn.find_scim_resource(&sc.org.to_string(), Kind::Group.as_str(), &gid)? {
            if let Some(name) = schema::text(&attrs_of(&g)?, "displayName") {
                groups.push(name.to_owned());
            }
        }
    }
    let mut mappings: Vec<RoleMapping> =
        sc.mappings.iter().filter(|m| m.organisation.as_str() == sc.org_slug.as_str()).cloned().collect();
    mappings.push(RoleMapping {
        group: MEMBER_GROUP.to_owned(),
        organisation: sc.org_slug.clone(),
        project: None,
        role: BuiltinRole::Member,
    });
    crate::auth::mapping::sync(conn, sc.auditor, sc.now, user, &format!("scim:{}", sc.org), &groups, &mappings)?;
    Ok(())
}

/// The group-to-role mappings that apply in `org`, from `connectors` (id, whether the
/// configuration file defines it, its mappings): the file's connectors (the operator's) and the
/// organisation's own; another organisation's connector never maps into this one.
pub fn mappings_for(
    conn: &mut impl crate::storage::connectors::ConnectorRepository,
    org: OrganisationId,
    connectors: &[(String, bool, Vec<RoleMapping>)],
) -> Result<Vec<RoleMapping>, StorageError> {
    let org = org.to_string();
    let owned: Vec<String> =
        conn.organisation_connectors()?.into_iter().filter(|c| c.organisation_id == org).map(|c| c.id).collect();
    Ok(connectors
        .iter()
        .filter(|(id, fixed, _)| *fixed || owned.contains(id))
        .flat_map(|(_, _, m)| m.iter().cloned())
        .collect())
}

/// Re-syncs the roles of the active Users among `ids`.
fn resync(conn: &mut DbConnection, sc: &Scope<'_>, ids: &[String]) -> Result<(), ScimError> {
    for id in ids {
        if let Some(u) = conn.find_scim_resource(&sc.org.to_string(), Kind::User.as_str(), id)? {
            if is_active(&attrs_of(&u)?) {
                sync_roles(conn, sc, user_of(&u)?, &u.id)?;
            }
        }
    }
    Ok(())
}

/// The idp user follows its SCIM User: profile, and membership while active; a change to
/// inactive cuts them off at once.
fn settle_user(
    conn: &mut DbConnection,
    sc: &Scope<'_>,
    row: &ScimResourceRow,
    attrs: &Map<String, Value>,
    was_active: Option<bool>,
) -> Result<(), ScimError> {
    let user = user_of(row)?;
    let (email, display) = profile(attrs);
    set_user_profile(conn, &user.to_string(), email.as_deref(), display.as_deref(), sc.now)?;
    if is_active(attrs) {
        if was_active == Some(false) {
            conn.set_user_disabled(user, false, sc.now)?;
        }
        sync_roles(conn, sc, user, &row.id)
    } else if was_active != Some(false) {
        crate::admin::deprovision::cut_off(conn, sc.auditor, sc.now, sc.actor.clone(), sc.org, user, true)?;
        Ok(())
    } else {
        Ok(())
    }
}

fn body_object(body: &Value) -> Result<&Map<String, Value>, ScimError> {
    body.as_object().ok_or_else(|| ScimError::bad(ScimType::InvalidSyntax, "the body is not a JSON object"))
}

pub fn create(conn: &mut DbConnection, sc: &Scope<'_>, kind: Kind, body: &Value) -> Result<Value, ScimError> {
    let attrs = schema::canonicalise(kind, body_object(body)?)?;
    let id = uuid::Uuid::new_v4().to_string();
    let user_id = match kind {
        Kind::User => {
            let (email, display_name) = profile(&attrs);
            Some(conn.create_user(&NewUser { email, email_verified: false, display_name }, sc.now)?.id.to_string())
        }
        Kind::Group => None,
    };
    let row = ScimResourceRow {
        unique_name: unique_name(kind, &attrs, &id),
        id,
        organisation_id: sc.org.to_string(),
        kind: kind.as_str().to_owned(),
        user_id,
        external_id: schema::text(&attrs, "externalId").map(str::to_owned),
        attributes: encode(&attrs)?,
        version: 1,
        created_at: sc.now,
        updated_at: sc.now,
    };
    conn.insert_scim_resource(&row)?;
    match kind {
        Kind::User => settle_user(conn, sc, &row, &attrs, None)?,
        Kind::Group => {
            let members = member_ids(conn, sc, &attrs)?;
            conn.set_scim_group_members(&row.id, &members)?;
            resync(conn, sc, &members)?;
        }
    }
    audit(conn, sc, Action::ScimResourceCreated, kind, &row.id)?;
    render(conn, sc, kind, &row)
}

pub fn get(conn: &mut DbConnection, sc: &Scope<'_>, kind: Kind, id: &str, q: &Query) -> Result<Value, ScimError> {
    let row = find(conn, sc, kind, id)?;
    Ok(project(render(conn, sc, kind, &row)?, &q.attributes, &q.excluded))
}

/// A page of the resources of `kinds` that match the filter, in creation order.
pub fn list(conn: &mut DbConnection, sc: &Scope<'_>, kinds: &[Kind], q: &Query) -> Result<Value, ScimError> {
    let f = q.filter.as_deref().map(filter::parse).transpose()?;
    let mut all = Vec::new();
    for kind in kinds {
        let rows = match f.as_ref().and_then(|f| indexed(*kind, f)) {
            // The lookups identity providers make before each change: by index, not a scan.
            Some((column, value)) => conn.scim_resources_named(&sc.org.to_string(), kind.as_str(), column, &value)?,
            None => conn.scim_resources(&sc.org.to_string(), kind.as_str())?,
        };
        for row in rows {
            let v = render(conn, sc, *kind, &row)?;
            if f.as_ref().is_none_or(|f| filter::matches(f, &v)) {
                all.push(v);
            }
        }
    }
    let total = all.len();
    let start = usize::try_from(q.start_index.unwrap_or(1).max(1)).unwrap_or(1);
    let max = i64::try_from(MAX_RESULTS).unwrap_or(200);
    let count = usize::try_from(q.count.unwrap_or(max).clamp(0, max)).unwrap_or(MAX_RESULTS);
    let page: Vec<Value> =
        all.into_iter().skip(start - 1).take(count).map(|v| project(v, &q.attributes, &q.excluded)).collect();
    Ok(json!({
        "schemas": [LIST_URN],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": page.len(),
        "Resources": page,
    }))
}

/// `userName eq "..."` (stored lower-cased: the comparison is case-insensitive) and
/// `externalId eq "..."` of Users go by index; the filter still decides on what is found.
fn indexed(kind: Kind, f: &filter::Filter) -> Option<(NamedBy, String)> {
    let filter::Filter::Compare { path, op: filter::CompareOp::Eq, value: Value::String(v) } = f else { return None };
    if kind != Kind::User || path.urn.is_some() || path.sub.is_some() {
        return None;
    }
    if path.attr.eq_ignore_ascii_case("userName") {
        Some((NamedBy::UniqueName, v.to_lowercase()))
    } else if path.attr.eq_ignore_ascii_case("externalId") {
        Some((NamedBy::ExternalId, v.clone()))
    } else {
        None
    }
}

pub fn replace(
    conn: &mut DbConnection,
    sc: &Scope<'_>,
    kind: Kind,
    id: &str,
    body: &Value,
) -> Result<Value, ScimError> {
    let row = find_for_write(conn, sc, kind, id)?;
    let new = schema::canonicalise(kind, body_object(body)?)?;
    store(conn, sc, kind, row, new)
}

pub fn patch(conn: &mut DbConnection, sc: &Scope<'_>, kind: Kind, id: &str, body: &Value) -> Result<Value, ScimError> {
    let ops = patch::parse_request(body)?;
    let row = find_for_write(conn, sc, kind, id)?;
    let applied = patch::apply(kind, &attrs_of(&row)?, &ops)?;
    let new = schema::canonicalise(kind, &applied)?;
    store(conn, sc, kind, row, new)
}

fn store(
    conn: &mut DbConnection,
    sc: &Scope<'_>,
    kind: Kind,
    mut row: ScimResourceRow,
    new: Map<String, Value>,
) -> Result<Value, ScimError> {
    let old = attrs_of(&row)?;
    let old_members = match kind {
        Kind::Group => conn.scim_group_members(&row.id)?,
        Kind::User => Vec::new(),
    };
    row.unique_name = unique_name(kind, &new, &row.id);
    row.external_id = schema::text(&new, "externalId").map(str::to_owned);
    row.attributes = encode(&new)?;
    if new != old {
        row.version += 1;
        row.updated_at = sc.now;
    }
    conn.update_scim_resource(&row)?;
    match kind {
        Kind::User => settle_user(conn, sc, &row, &new, Some(is_active(&old)))?,
        Kind::Group => {
            let members = member_ids(conn, sc, &new)?;
            conn.set_scim_group_members(&row.id, &members)?;
            let mut affected = old_members;
            affected.extend(members);
            affected.sort();
            affected.dedup();
            resync(conn, sc, &affected)?;
        }
    }
    audit(conn, sc, Action::ScimResourceUpdated, kind, &row.id)?;
    render(conn, sc, kind, &row)
}

/// Takes `id` out of the members attribute of the groups that list it.
fn leave_groups(conn: &mut DbConnection, sc: &Scope<'_>, id: &str) -> Result<(), ScimError> {
    for gid in conn.scim_groups_of(id)? {
        let Some(mut g) = conn.find_scim_resource(&sc.org.to_string(), Kind::Group.as_str(), &gid)? else { continue };
        let mut attrs = attrs_of(&g)?;
        if let Some(Value::Array(members)) = attrs.get_mut("members") {
            members.retain(|m| m.get("value").and_then(Value::as_str) != Some(id));
            if members.is_empty() {
                attrs.remove("members");
            }
        }
        g.attributes = encode(&attrs)?;
        g.version += 1;
        g.updated_at = sc.now;
        conn.update_scim_resource(&g)?;
    }
    Ok(())
}

pub fn delete(conn: &mut DbConnection, sc: &Scope<'_>, kind: Kind, id: &str) -> Result<(), ScimError> {
    let row = find_for_write(conn, sc, kind, id)?;
    leave_groups(conn, sc, &row.id)?;
    match kind {
        Kind::User => {
            conn.delete_scim_resource(&row.id)?;
            let user = user_of(&row)?;
            // The account stays, disabled, for the audit trail; nothing it held works. Its
            // upstream identities are let go, so the person provisioned again can sign in.
            crate::admin::deprovision::cut_off(conn, sc.auditor, sc.now, sc.actor.clone(), sc.org, user, true)?;
            for identity in conn.external_identities_of(user)? {
                conn.unlink_external_identity(user, identity.id)?;
            }
        }
        Kind::Group => {
            let members = conn.scim_group_members(&row.id)?;
            conn.delete_scim_resource(&row.id)?;
            resync(conn, sc, &members)?;
        }
    }
    audit(conn, sc, Action::ScimResourceDeleted, kind, &row.id)
}

/// At a first login through a connector (no identity linked yet): the account SCIM provisioned
/// for this person, if exactly one matches in the organisations the connector's role mappings
/// name (the operator's, or the organisation's own, declaration that the connector is that
/// organisation's identity provider). A match is a User whose `externalId` is the upstream
/// subject, or whose `userName` or e-mail is the upstream's verified e-mail (case-insensitive).
/// Deactivated users match too, so they are refused as disabled instead of signing up anew.
pub fn provisioned_account(
    conn: &mut (
             impl ScimRepository
             + crate::storage::organisations::OrganisationRepository
             + crate::storage::connectors::ConnectorRepository
         ),
    connector_id: &str,
    mappings: &[RoleMapping],
    subject: &str,
    verified_email: Option<&str>,
) -> Result<Option<UserId>, StorageError> {
    // An organisation's own connector speaks for that organisation only, whatever it maps.
    let owner = conn.organisation_connectors()?.into_iter().find(|c| c.id == connector_id).map(|c| c.organisation_id);
    let mut orgs: Vec<&str> = mappings.iter().map(|m| m.organisation.as_str()).collect();
    orgs.sort_unstable();
    orgs.dedup();
    let email = verified_email.map(str::to_lowercase);
    let mut found: Vec<UserId> = Vec::new();
    for slug in orgs {
        let Some(org) = conn.find_organisation_by_slug(slug)? else { continue };
        if owner.as_ref().is_some_and(|o| *o != org.id.to_string()) {
            continue;
        }
        for row in conn.scim_resources(&org.id.to_string(), Kind::User.as_str())? {
            let attrs: Map<String, Value> = serde_json::from_str(&row.attributes)
                .map_err(|e| StorageError::Corrupt(format!("scim resource {}: {e}", row.id)))?;
            let by_subject = row.external_id.as_deref() == Some(subject);
            let by_email = email
                .as_deref()
                .is_some_and(|e| row.unique_name == e || profile(&attrs).0.is_some_and(|p| p.to_lowercase() == e));
            if by_subject || by_email {
                let user: UserId = parse_id(row.user_id.as_deref().unwrap_or_default())?;
                if !found.contains(&user) {
                    found.push(user);
                }
            }
        }
    }
    Ok(match found.as_slice() {
        [one] => Some(*one),
        _ => None,
    })
}
