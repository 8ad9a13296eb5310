//! PATCH (RFC 7644 §3.5.2): a generic engine over a resource's canonical JSON, driven by the
//! published schema, so every read-write attribute can be added, replaced and removed the
//! same way. The dialects of Okta, OneLogin and Entra ID are accepted: capitalised op names,
//! `replace`/`add` without `path` (keys that are themselves paths, `id` ignored), booleans as
//! strings, `members[value eq "..."]` and `remove` of `members` with a value list.
//! The caller canonicalises the result again, so a bad value never reaches storage.

use serde_json::{Map, Value};

use super::error::{ScimError, ScimType};
use super::filter::{self, AttrPath, CompareOp, Filter, get_ci};
use super::schema::{self, Attr, Kind, Mutability, PATCH_URN, Type};

/// Most operations in one request.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

/// `[urn:]attr[[filter]][.sub]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    pub urn: Option<String>,
    pub attr: String,
    pub filter: Option<Filter>,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: Op,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

fn bad_path(detail: impl Into<String>) -> ScimError {
    ScimError::bad(ScimType::InvalidPath, detail)
}

fn syntax(detail: impl Into<String>) -> ScimError {
    ScimError::bad(ScimType::InvalidSyntax, detail)
}

pub fn parse_path(raw: &str) -> Result<PatchPath, ScimError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > filter::MAX_FILTER_LEN {
        return Err(bad_path("the path is empty or too long"));
    }
    let (head, filter, tail) = match raw.find('[') {
        Some(open) => {
            let close = raw.rfind(']').filter(|c| *c > open).ok_or_else(|| bad_path("a bracket is not closed"))?;
            let inner = raw.get(open + 1..close).unwrap_or_default();
            let f = filter::parse(inner).map_err(|_| bad_path(format!("{inner:?} is not a value filter")))?;
            let tail = raw.get(close + 1..).unwrap_or_default();
            let sub = match tail {
                "" => None,
                t => Some(t.strip_prefix('.').ok_or_else(|| bad_path("text after the value filter"))?),
            };
            (raw.get(..open).unwrap_or_default(), Some(f), sub)
        }
        None => (raw, None, None),
    };
    let p: AttrPath = filter::parse_attr_path(head).ok_or_else(|| bad_path(format!("{raw:?} is not a path")))?;
    let sub = match (p.sub, tail) {
        (Some(_), Some(_)) => return Err(bad_path("a path has at most one sub-attribute")),
        (Some(s), None) if filter.is_some() => return Err(bad_path(format!("{s} before a value filter"))),
        (s, None) => s,
        (None, Some(t)) => {
            if filter::parse_attr_path(t).is_none_or(|x| x.sub.is_some() || x.urn.is_some()) {
                return Err(bad_path(format!("{t:?} is not a sub-attribute")));
            }
            Some(t.to_owned())
        }
    };
    Ok(PatchPath { urn: p.urn, attr: p.attr, filter, sub })
}

/// Parses a PatchOp request body.
pub fn parse_request(body: &Value) -> Result<Vec<Operation>, ScimError> {
    let obj = body.as_object().ok_or_else(|| syntax("the body is not a JSON object"))?;
    let schemas = get_ci(obj, "schemas").and_then(Value::as_array).ok_or_else(|| syntax("schemas is missing"))?;
    if !schemas.iter().any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_URN))) {
        return Err(syntax(format!("schemas must name {PATCH_URN}")));
    }
    let ops = get_ci(obj, "Operations").and_then(Value::as_array).ok_or_else(|| syntax("Operations is missing"))?;
    if ops.is_empty() || ops.len() > MAX_OPERATIONS {
        return Err(syntax(format!("Operations holds 1 to {MAX_OPERATIONS} operations")));
    }
    ops.iter()
        .map(|o| {
            let o = o.as_object().ok_or_else(|| syntax("an operation is not an object"))?;
            let op = match get_ci(o, "op").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
                Some("add") => Op::Add,
                Some("replace") => Op::Replace,
                Some("remove") => Op::Remove,
                _ => return Err(syntax("op is add, replace or remove")),
            };
            let path = match get_ci(o, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) => Some(parse_path(p)?),
                Some(_) => return Err(bad_path("path must be a string")),
            };
            let value = get_ci(o, "value").cloned();
            match (op, &path, &value) {
                (Op::Remove, None, _) => Err(ScimError::bad(ScimType::NoTarget, "remove needs a path")),
                (Op::Add | Op::Replace, _, None) => {
                    Err(ScimError::bad(ScimType::InvalidValue, "add and replace need a value"))
                }
                (Op::Add | Op::Replace, None, Some(v)) if !v.is_object() => {
                    Err(ScimError::bad(ScimType::InvalidValue, "without a path, the value is an object of attributes"))
                }
                _ => Ok(Operation { op, path, value }),
            }
        })
        .collect()
}

/// Applies the operations in order to a copy of `attrs` and returns it (not yet canonical).
pub fn apply(kind: Kind, attrs: &Map<String, Value>, ops: &[Operation]) -> Result<Map<String, Value>, ScimError> {
    let mut out = attrs.clone();
    for o in ops {
        match (&o.path, &o.value) {
            (Some(p), v) => apply_path(kind, &mut out, o.op, p, v.as_ref())?,
            (None, Some(Value::Object(values))) => {
                for (k, v) in values {
                    if ["id", "schemas", "meta"].iter().any(|n| k.eq_ignore_ascii_case(n)) {
                        continue;
                    }
                    if k.eq_ignore_ascii_case(kind.urn()) || k.eq_ignore_ascii_case(schema::ENTERPRISE_URN) {
                        // A schema's attributes as an object: each is a path within it.
                        let Some(inner) = v.as_object() else {
                            return Err(ScimError::bad(ScimType::InvalidValue, format!("{k} must be an object")));
                        };
                        let urn = (!k.eq_ignore_ascii_case(kind.urn())).then(|| schema::ENTERPRISE_URN.to_owned());
                        for (ik, iv) in inner {
                            let mut p = parse_path(ik)?;
                            if p.urn.is_none() {
                                p.urn.clone_from(&urn);
                            }
                            apply_path(kind, &mut out, o.op, &p, Some(iv))?;
                        }
                        continue;
                    }
                    let p = parse_path(k)?;
                    apply_path(kind, &mut out, o.op, &p, Some(v))?;
                }
            }
            (None, _) => return Err(ScimError::bad(ScimType::NoTarget, "the operation names no target")),
        }
    }
    Ok(out)
}

/// The container, the attribute's canonical name, its definition.
type Located<'m> = (&'m mut Map<String, Value>, String, Option<&'static Attr>);

/// The container an attribute lives in, its canonical name and its definition (none inside
/// the enterprise extension, which is kept as sent).
fn locate<'m>(kind: Kind, attrs: &'m mut Map<String, Value>, path: &PatchPath) -> Result<Located<'m>, ScimError> {
    if path.attr.eq_ignore_ascii_case("externalId") && path.urn.is_none() {
        return Ok((attrs, "externalId".into(), None));
    }
    match &path.urn {
        None => {
            let attr = schema::find(kind.attrs(), &path.attr)
                .ok_or_else(|| bad_path(format!("{} has no attribute {}", kind.as_str(), path.attr)))?;
            Ok((attrs, attr.name.to_owned(), Some(attr)))
        }
        Some(urn) if kind == Kind::User && urn.eq_ignore_ascii_case(schema::ENTERPRISE_URN) => {
            let ext = attrs.entry(schema::ENTERPRISE_URN).or_insert_with(|| Value::Object(Map::new()));
            if !ext.is_object() {
                *ext = Value::Object(Map::new());
            }
            let Value::Object(ext) = ext else { return Err(bad_path("the extension is not an object")) };
            let name = ext.keys().find(|k| k.eq_ignore_ascii_case(&path.attr)).cloned().unwrap_or(path.attr.clone());
            Ok((ext, name, None))
        }
        Some(urn) => Err(bad_path(format!("{urn} is not a schema of {}", kind.as_str()))),
    }
}

fn sub_name(attr: Option<&Attr>, sub: &str) -> Result<String, ScimError> {
    match attr {
        None => Ok(sub.to_owned()),
        Some(a) if a.ty != Type::Complex => Err(bad_path(format!("{} has no sub-attributes", a.name))),
        Some(a) => schema::find(a.subs, sub)
            .map(|s| s.name.to_owned())
            .ok_or_else(|| bad_path(format!("{} has no sub-attribute {sub}", a.name))),
    }
}

/// Two elements of a multi-valued attribute are the same when their `value`s are (or, without
/// one, when they are equal).
fn same_element(a: &Value, b: &Value) -> bool {
    match (a.as_object().and_then(|o| get_ci(o, "value")), b.as_object().and_then(|o| get_ci(o, "value"))) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The attributes an `eq`-only filter pins down, to create the element a filtered `add`
/// (or Entra's `replace`) targets when none exists yet.
fn pinned(f: &Filter, out: &mut Map<String, Value>) -> bool {
    match f {
        Filter::Compare { path, op: CompareOp::Eq, value } if path.sub.is_none() && path.urn.is_none() => {
            out.insert(path.attr.clone(), value.clone());
            true
        }
        Filter::And(a, b) => pinned(a, out) && pinned(b, out),
        _ => false,
    }
}

fn apply_path(
    kind: Kind,
    attrs: &mut Map<String, Value>,
    op: Op,
    path: &PatchPath,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let (container, name, attr) = locate(kind, attrs, path)?;
    if attr.is_some_and(|a| a.mutability == Mutability::ReadOnly) {
        return Err(ScimError::bad(ScimType::Mutability, format!("{name} is read-only")));
    }
    let multi = attr.is_some_and(|a| a.multi);
    let need_value = || value.ok_or_else(|| ScimError::bad(ScimType::InvalidValue, "the operation needs a value"));
    match (&path.filter, &path.sub) {
        (None, None) => match op {
            Op::Remove => match (value, container.get_mut(&name)) {
                // Entra ID: remove these members.
                (Some(v), Some(Value::Array(items))) if multi => {
                    let gone: Vec<Value> = match v {
                        Value::Array(a) => a.clone(),
                        other => vec![other.clone()],
                    };
                    items.retain(|i| !gone.iter().any(|g| same_element(i, g)));
                }
                _ => {
                    container.remove(&name);
                }
            },
            Op::Add if multi => {
                let new: Vec<Value> = match need_value()? {
                    Value::Array(a) => a.clone(),
                    other => vec![other.clone()],
                };
                let slot = container.entry(name.clone()).or_insert_with(|| Value::Array(Vec::new()));
                if !slot.is_array() {
                    *slot = Value::Array(Vec::new());
                }
                if let Value::Array(items) = slot {
                    for n in new {
                        match items.iter_mut().find(|i| same_element(i, &n)) {
                            Some(existing) => *existing = n,
                            None => items.push(n),
                        }
                    }
                }
            }
            Op::Add if attr.is_some_and(|a| a.ty == Type::Complex) => {
                let v = need_value()?;
                let Value::Object(new) = v else {
                    return Err(ScimError::bad(ScimType::InvalidValue, format!("{name} takes an object")));
                };
                let slot = container.entry(name.clone()).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(o) = slot {
                    for (k, x) in new {
                        o.insert(k.clone(), x.clone());
                    }
                }
            }
            Op::Add | Op::Replace => {
                container.insert(name.clone(), need_value()?.clone());
            }
        },
        (None, Some(sub)) => {
            let sub = sub_name(attr, sub)?;
            match container.get_mut(&name) {
                Some(Value::Array(items)) => {
                    for i in items.iter_mut().filter_map(Value::as_object_mut) {
                        set_sub(i, &sub, op, value)?;
                    }
                }
                Some(Value::Object(o)) => set_sub(o, &sub, op, value)?,
                _ if op == Op::Remove => {}
                _ if multi => {
                    let mut o = Map::new();
                    set_sub(&mut o, &sub, op, value)?;
                    container.insert(name.clone(), Value::Array(vec![Value::Object(o)]));
                }
                _ => {
                    let mut o = Map::new();
                    set_sub(&mut o, &sub, op, value)?;
                    container.insert(name.clone(), Value::Object(o));
                }
            }
        }
        (Some(f), sub) => {
            if attr.is_some_and(|a| !a.multi) {
                return Err(bad_path(format!("{name} is not multi-valued")));
            }
            let sub = sub.as_deref().map(|s| sub_name(attr, s)).transpose()?;
            let slot = container.entry(name.clone()).or_insert_with(|| Value::Array(Vec::new()));
            let Value::Array(items) = slot else {
                return Err(bad_path(format!("{name} is not multi-valued")));
            };
            let hits = items.iter().filter(|i| filter::matches(f, i)).count();
            match (op, &sub) {
                (Op::Remove, None) => items.retain(|i| !filter::matches(f, i)),
                (Op::Remove, Some(s)) => {
                    for i in items.iter_mut().filter(|i| filter::matches(f, i)).filter_map(Value::as_object_mut) {
                        i.remove(s);
                    }
                }
                (_, Some(s)) if hits > 0 => {
                    for i in items.iter_mut().filter(|i| filter::matches(f, i)).filter_map(Value::as_object_mut) {
                        set_sub(i, s, op, value)?;
                    }
                }
                (_, None) if hits > 0 => {
                    let v = need_value()?;
                    for i in items.iter_mut().filter(|i| filter::matches(f, i)) {
                        match (op, i.as_object_mut(), v.as_object()) {
                            (Op::Add, Some(o), Some(new)) => {
                                for (k, x) in new {
                                    o.insert(k.clone(), x.clone());
                                }
                            }
                            _ => *i = v.clone(),
                        }
                    }
                }
                (_, s) => {
                    // Nothing matches: create the element the filter describes (Entra ID
                    // replaces `emails[type eq "work"].value` on a user with no work address).
                    let mut o = Map::new();
                    if !pinned(f, &mut o) {
                        return Err(ScimError::bad(ScimType::NoTarget, "no value matches the filter"));
                    }
                    match s {
                        Some(s) => set_sub(&mut o, s, op, value)?,
                        None => match need_value()? {
                            Value::Object(new) => o.extend(new.clone()),
                            _ => return Err(ScimError::bad(ScimType::InvalidValue, "the value must be an object")),
                        },
                    }
                    items.push(Value::Object(o));
                }
            }
        }
    }
    if container.get(&name).is_some_and(|v| v.is_null() || v.as_array().is_some_and(Vec::is_empty)) {
        container.remove(&name);
    }
    Ok(())
}

fn set_sub(obj: &mut Map<String, Value>, sub: &str, op: Op, value: Option<&Value>) -> Result<(), ScimError> {
    let key = obj.keys().find(|k| k.eq_ignore_ascii_case(sub)).cloned().unwrap_or_else(|| sub.to_owned());
    match op {
        Op::Remove => {
            obj.remove(&key);
        }
        Op::Add | Op::Replace => {
            let v = value.ok_or_else(|| ScimError::bad(ScimType::InvalidValue, "the operation needs a value"))?;
            obj.insert(key, v.clone());
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
