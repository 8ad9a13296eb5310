//! SCIM filters (RFC 7644 §3.4.2.2): `eq ne co sw ew gt ge lt le pr`, `and`, `or`, `not`,
//! parentheses and value paths (`emails[type eq "work"]`), parsed into a typed tree and
//! evaluated against a rendered resource. Attribute names are case-insensitive; string
//! comparisons too, but for `id` and `externalId` (case-exact, RFC 7643 §3.1).

use serde_json::Value;

use super::error::{ScimError, ScimType};

/// Longest filter accepted, and deepest nesting: a filter is input from the network.
pub const MAX_FILTER_LEN: usize = 4096;
const MAX_DEPTH: usize = 32;

/// `[urn:...:]attr[.sub]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// An extension schema's URN, when the path names one (core URNs are dropped).
    pub urn: Option<String>,
    pub attr: String,
    pub sub: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Value,
    },
    Present(AttrPath),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: some element of a multi-valued attribute matches the inner filter.
    ValuePath {
        attr: AttrPath,
        filter: Box<Filter>,
    },
}

fn invalid(detail: impl Into<String>) -> ScimError {
    ScimError::bad(ScimType::InvalidFilter, detail)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Literal(Value),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$' | ':' | '.')
}

fn tokenize(input: &str) -> Result<Vec<Token>, ScimError> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            ' ' | '\t' | '\n' | '\r' => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '[' => {
                chars.next();
                out.push(Token::OpenBracket);
            }
            ']' => {
                chars.next();
                out.push(Token::CloseBracket);
            }
            '"' => {
                chars.next();
                let mut escaped = false;
                let mut end = None;
                for (j, d) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == '"' {
                        end = Some(j);
                        break;
                    }
                }
                let end = end.ok_or_else(|| invalid("a string is not closed"))?;
                let raw = input.get(i..=end).ok_or_else(|| invalid("a string is not closed"))?;
                let s: String = serde_json::from_str(raw).map_err(|_| invalid("a string has a bad escape"))?;
                out.push(Token::Literal(Value::String(s)));
            }
            c if is_word_char(c) => {
                let mut end = i;
                while let Some(&(j, d)) = chars.peek() {
                    if !is_word_char(d) {
                        break;
                    }
                    end = j + d.len_utf8();
                    chars.next();
                }
                let w = input.get(i..end).unwrap_or_default();
                out.push(Token::Word(w.to_owned()));
            }
            other => return Err(invalid(format!("unexpected character {other:?}"))),
        }
    }
    Ok(out)
}

/// Splits `urn:...:attr.sub` or `attr.sub`; refuses anything that is not a plain name.
pub fn parse_attr_path(raw: &str) -> Option<AttrPath> {
    let (urn, rest) = if raw.len() > 4 && raw.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:")) {
        let (urn, rest) = raw.rsplit_once(':')?;
        (Some(urn.to_owned()), rest)
    } else {
        (None, raw)
    };
    let (attr, sub) = match rest.split_once('.') {
        Some((a, s)) => (a, Some(s)),
        None => (rest, None),
    };
    let name_ok = |n: &str| {
        n.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '$')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
    };
    if !name_ok(attr) || sub.is_some_and(|s| !name_ok(s)) {
        return None;
    }
    let urn = urn.filter(|u| !super::schema::is_core_urn(u));
    Some(AttrPath { urn, attr: attr.to_owned(), sub: sub.map(str::to_owned) })
}

fn compare_op(w: &str) -> Option<CompareOp> {
    Some(match w.to_ascii_lowercase().as_str() {
        "eq" => CompareOp::Eq,
        "ne" => CompareOp::Ne,
        "co" => CompareOp::Co,
        "sw" => CompareOp::Sw,
        "ew" => CompareOp::Ew,
        "gt" => CompareOp::Gt,
        "ge" => CompareOp::Ge,
        "lt" => CompareOp::Lt,
        "le" => CompareOp::Le,
        _ => return None,
    })
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    fn enter(&mut self) -> Result<(), ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { Err(invalid("the filter nests too deeply")) } else { Ok(()) }
    }

    fn or(&mut self) -> Result<Filter, ScimError> {
        self.enter()?;
        let mut left = self.and()?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, ScimError> {
        let mut left = self.unary()?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter, ScimError> {
        if self.keyword("not") {
            self.pos += 1;
            if self.next() != Some(Token::Open) {
                return Err(invalid("not must be followed by a parenthesis"));
            }
            let inner = self.or()?;
            if self.next() != Some(Token::Close) {
                return Err(invalid("a parenthesis is not closed"));
            }
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            let inner = self.or()?;
            if self.next() != Some(Token::Close) {
                return Err(invalid("a parenthesis is not closed"));
            }
            return Ok(inner);
        }
        self.attr_expression()
    }

    fn attr_expression(&mut self) -> Result<Filter, ScimError> {
        let Some(Token::Word(raw)) = self.next() else { return Err(invalid("expected an attribute name")) };
        let path = parse_attr_path(&raw).ok_or_else(|| invalid(format!("{raw:?} is not an attribute path")))?;
        if self.peek() == Some(&Token::OpenBracket) {
            self.pos += 1;
            self.enter()?;
            let inner = self.or()?;
            self.depth -= 1;
            if self.next() != Some(Token::CloseBracket) {
                return Err(invalid("a bracket is not closed"));
            }
            if path.sub.is_some() {
                return Err(invalid("a value filter applies to an attribute, not a sub-attribute"));
            }
            return Ok(Filter::ValuePath { attr: path, filter: Box::new(inner) });
        }
        let Some(Token::Word(op)) = self.next() else { return Err(invalid("expected an operator")) };
        if op.eq_ignore_ascii_case("pr") {
            return Ok(Filter::Present(path));
        }
        let op = compare_op(&op).ok_or_else(|| invalid(format!("unknown operator {op:?}")))?;
        let value = match self.next() {
            Some(Token::Literal(v)) => v,
            Some(Token::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => serde_json::from_str::<serde_json::Number>(&w)
                    .map(Value::Number)
                    .map_err(|_| invalid(format!("{w:?} is not a value; strings are quoted")))?,
            },
            _ => return Err(invalid("expected a value")),
        };
        if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) && !value.is_string() {
            return Err(invalid("co, sw and ew compare strings"));
        }
        Ok(Filter::Compare { path, op, value })
    }
}

pub fn parse(input: &str) -> Result<Filter, ScimError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(ScimError::bad(ScimType::InvalidFilter, "the filter is too long"));
    }
    let tokens = tokenize(input)?;
    if tokens.is_empty() {
        return Err(invalid("the filter is empty"));
    }
    let mut p = Parser { tokens, pos: 0, depth: 0 };
    let f = p.or()?;
    if p.pos != p.tokens.len() {
        return Err(invalid("unexpected text after the filter"));
    }
    Ok(f)
}

/// A key of `obj`, found case-insensitively.
pub fn get_ci<'a>(obj: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// The values a path designates in `resource`, multi-valued attributes flattened; a complex
/// element without a sub-attribute stands for its `value`.
fn values<'a>(resource: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let Some(obj) = resource.as_object() else { return Vec::new() };
    let base = match &path.urn {
        Some(urn) => match get_ci(obj, urn).and_then(Value::as_object) {
            Some(ext) => ext,
            None => return Vec::new(),
        },
        None => obj,
    };
    let Some(v) = get_ci(base, &path.attr) else { return Vec::new() };
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .flat_map(|item| match (&path.sub, item) {
            (Some(sub), Value::Object(o)) => match get_ci(o, sub) {
                Some(Value::Array(a)) => a.iter().collect(),
                Some(x) => vec![x],
                None => Vec::new(),
            },
            (Some(_), _) => Vec::new(),
            (None, Value::Object(o)) => vec![get_ci(o, "value").unwrap_or(item)],
            (None, x) => vec![x],
        })
        .collect()
}

fn compare(actual: &Value, op: CompareOp, wanted: &Value, case_exact: bool) -> bool {
    use std::cmp::Ordering;
    let fold = |s: &str| if case_exact { s.to_owned() } else { s.to_lowercase() };
    let ordering = match (actual, wanted) {
        (Value::String(a), Value::String(b)) => Some(fold(a).cmp(&fold(b))),
        (Value::Number(a), Value::Number(b)) => a.as_f64().zip(b.as_f64()).and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match op {
        CompareOp::Eq => ordering == Some(Ordering::Equal) || (actual.is_null() && wanted.is_null()),
        CompareOp::Ne => ordering != Some(Ordering::Equal),
        CompareOp::Gt => ordering == Some(Ordering::Greater),
        CompareOp::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
        CompareOp::Lt => ordering == Some(Ordering::Less),
        CompareOp::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => match (actual, wanted) {
            (Value::String(a), Value::String(b)) => {
                let (a, b) = (fold(a), fold(b));
                match op {
                    CompareOp::Co => a.contains(&b),
                    CompareOp::Sw => a.starts_with(&b),
                    _ => a.ends_with(&b),
                }
            }
            _ => false,
        },
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// Whether `resource` (a rendered resource, or an element of a multi-valued attribute for a
/// value filter) matches.
pub fn matches(filter: &Filter, resource: &Value) -> bool {
    match filter {
        Filter::Compare { path, op, value } => {
            // RFC 7643: id and externalId are case-exact.
            let case_exact = path.urn.is_none()
                && path.sub.is_none()
                && (path.attr.eq_ignore_ascii_case("id") || path.attr.eq_ignore_ascii_case("externalId"));
            let found = values(resource, path);
            if *op == CompareOp::Ne {
                return found.iter().all(|v| compare(v, *op, value, case_exact));
            }
            found.iter().any(|v| compare(v, *op, value, case_exact))
        }
        Filter::Present(path) => values(resource, path).into_iter().any(present),
        Filter::And(a, b) => matches(a, resource) && matches(b, resource),
        Filter::Or(a, b) => matches(a, resource) || matches(b, resource),
        Filter::Not(a) => !matches(a, resource),
        Filter::ValuePath { attr, filter } => {
            let Some(obj) = resource.as_object() else { return false };
            let base = match &attr.urn {
                Some(urn) => get_ci(obj, urn).and_then(Value::as_object),
                None => Some(obj),
            };
            match base.and_then(|b| get_ci(b, &attr.attr)) {
                Some(Value::Array(items)) => items.iter().any(|i| matches(filter, i)),
                Some(item @ Value::Object(_)) => matches(filter, item),
                _ => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({"id": "Ab1", "userName": "Bjensen@Example.com", "active": true, "externalId": "e-1",
               "name": {"givenName": "Barbara", "familyName": "Jensen"},
               "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                          {"value": "babs@home.example", "type": "home"}],
               "meta": {"lastModified": "2026-12-01T10:00:00Z"}})
    }

    fn m(f: &str) -> bool {
        matches(&parse(f).unwrap(), &user())
    }

    #[test]
    fn the_rfc_operators_match() {
        assert!(m(r#"userName eq "bjensen@example.com""#), "case-insensitive");
        assert!(m(r#"USERNAME Eq "bjensen@example.com""#), "names and operators too");
        assert!(m(r#"name.familyName co "ens""#));
        assert!(m(r#"userName sw "bj""#) && m(r#"userName ew ".COM""#));
        assert!(!m("title pr") && m("name pr"));
        assert!(m(r#"emails.value eq "babs@home.example""#));
        assert!(m(r#"emails eq "babs@home.example""#), "a complex element stands for its value");
        assert!(m(r#"emails[type eq "work" and value co "@example.com"]"#));
        assert!(!m(r#"emails[type eq "home" and value co "@example.com"]"#));
        assert!(m(r#"userName eq "x" or active eq true"#));
        assert!(!m(r#"userName eq "x" and active eq true"#));
        assert!(m(r#"not (userName eq "x")"#));
        assert!(m(r#"(userName eq "x" or externalId eq "e-1") and active eq true"#));
        assert!(m(r#"meta.lastModified gt "2026-11-30T00:00:00Z""#));
        assert!(m(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "B""#));
        assert!(!m(r#"id eq "ab1""#) && m(r#"id eq "Ab1""#), "ids are case-exact");
        assert!(!m(r#"externalId eq "E-1""#) && m(r#"externalId eq "e-1""#), "externalIds too");
        assert!(m(r#"userName ne "x""#));
        assert!(m(r#"displayName eq "x" or userName eq "bjensen@example.com""#));
    }

    #[test]
    fn malformed_filters_are_invalid_filter() {
        for bad in [
            "",
            "userName",
            "userName eq",
            r#"userName eq "unterminated"#,
            r#"userName zz "x""#,
            r#"userName eq bare"#,
            r#"(userName eq "x""#,
            r#"userName eq "x" and"#,
            r#"emails[type eq "work""#,
            r#"userName co 5"#,
            r#"userName eq "x" junk"#,
            r#"user;Name eq "x""#,
            r#"not userName eq "x""#,
            &"(".repeat(100),
            &format!("userName eq \"{}\"", "a".repeat(MAX_FILTER_LEN)),
        ] {
            match parse(bad) {
                Err(ScimError::BadRequest { scim_type: ScimType::InvalidFilter, .. }) => {}
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
