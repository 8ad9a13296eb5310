//! The combination of organisation and project policy, and the decision for a user and
//! session, as tables: one row a case.

use chrono::{DateTime, NaiveDateTime};

use super::*;

fn at(day: i64) -> NaiveDateTime {
    DateTime::from_timestamp(1_800_000_000 + day * 86_400, 0).map(|d| d.naive_utc()).unwrap_or_default()
}

const T: Method = Method::Totp;
const W: Method = Method::WebAuthn;

fn set(ms: &[Method]) -> BTreeSet<Method> {
    ms.iter().copied().collect()
}

/// A policy: `None` is no stored row; `Some((required, methods, grace day))`.
type Level = Option<(bool, &'static [Method], Option<i64>)>;

fn policy(l: Level) -> Option<Policy> {
    l.map(|(required, ms, grace)| Policy { required, methods: set(ms), grace_until: grace.map(at) })
}

/// (name, organisation, project, required, allowed, grace day).
type CombineCase = (&'static str, Level, Level, bool, Allowed, Option<i64>);
/// (name, requirement, the user's factors, the session's amr, decision).
type DecideCase = (&'static str, Requirement, &'static [Method], &'static [&'static str], Decision);

fn only(ms: &[Method]) -> Allowed {
    Allowed::Only(set(ms))
}

#[test]
fn organisation_and_project_combine_strictest_wins() {
    let off = Some((false, &[][..], None));
    #[rustfmt::skip]
    let cases: Vec<CombineCase> = vec![
        // name,                                  organisation,                project,                     required, allowed,        grace day
        ("no rows at all",                        None,                        None,                        false, Allowed::Any,  None),
        ("both off",                              off,                         off,                         false, Allowed::Any,  None),
        ("organisation requires",                 Some((true, &[], None)),     None,                        true,  Allowed::Any,  None),
        ("project requires",                      None,                        Some((true, &[], None)),     true,  Allowed::Any,  None),
        ("project off does not lift the org's",   Some((true, &[], None)),     off,                         true,  Allowed::Any,  None),
        ("org off does not lift the project's",   off,                         Some((true, &[T], None)),    true,  only(&[T]),    None),
        ("org lists, project any",                Some((true, &[W], None)),    Some((true, &[], None)),     true,  only(&[W]),    None),
        ("org any, project lists",                Some((true, &[], None)),     Some((true, &[W], None)),    true,  only(&[W]),    None),
        ("lists intersect",                       Some((true, &[T, W], None)), Some((true, &[W], None)),    true,  only(&[W]),    None),
        ("same list",                             Some((true, &[T, W], None)), Some((true, &[T, W], None)), true,  only(&[T, W]), None),
        ("lists conflict: nothing allowed",       Some((true, &[T], None)),    Some((true, &[W], None)),    true,  only(&[]),     None),
        ("an off level's methods are ignored",    Some((false, &[T], None)),   Some((true, &[W], None)),    true,  only(&[W]),    None),
        ("grace of the only requiring level",     None,                        Some((true, &[], Some(7))),  true,  Allowed::Any,  Some(7)),
        ("earliest grace wins",                   Some((true, &[], Some(3))),  Some((true, &[], Some(7))),  true,  Allowed::Any,  Some(3)),
        ("earliest grace wins, other way round",  Some((true, &[], Some(9))),  Some((true, &[], Some(2))),  true,  Allowed::Any,  Some(2)),
        ("no grace beats any grace",              Some((true, &[], None)),     Some((true, &[], Some(7))),  true,  Allowed::Any,  None),
        ("no grace beats any grace, project",     Some((true, &[], Some(7))),  Some((true, &[], None)),     true,  Allowed::Any,  None),
        ("an off level's grace is ignored",       Some((false, &[], Some(1))), Some((true, &[], Some(7))),  true,  Allowed::Any,  Some(7)),
        ("organisation alone (no project)",       Some((true, &[T], Some(5))), None,                        true,  only(&[T]),    Some(5)),
    ];
    for (name, org, project, required, allowed, grace) in cases {
        let got = effective(policy(org).as_ref(), policy(project).as_ref());
        let want = Requirement { required, allowed, grace_until: grace.map(at) };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn the_combination_is_symmetric() {
    let levels: Vec<Level> = vec![
        None,
        Some((false, &[], None)),
        Some((true, &[], None)),
        Some((true, &[T], Some(3))),
        Some((true, &[W], Some(8))),
        Some((true, &[T, W], Some(1))),
    ];
    for a in &levels {
        for b in &levels {
            let (pa, pb) = (policy(*a), policy(*b));
            assert_eq!(effective(pa.as_ref(), pb.as_ref()), effective(pb.as_ref(), pa.as_ref()), "{a:?} {b:?}");
        }
    }
}

fn amr(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn what_a_user_and_session_get() {
    let now = at(5);
    let any = |grace: Option<i64>| Requirement { required: true, allowed: Allowed::Any, grace_until: grace.map(at) };
    let webauthn = |grace: Option<i64>| Requirement { required: true, allowed: only(&[W]), grace_until: grace.map(at) };
    let all = set(&[T, W]);
    #[rustfmt::skip]
    let cases: Vec<DecideCase> = vec![
        // name,                                         requirement,          user's factors, session amr,             decision
        ("nothing required, no factor",                  Requirement::none(),  &[],     &["pwd"],               Decision::Allow),
        ("nothing required, a factor unused",            Requirement::none(),  &[T],    &["pwd"],               Decision::Allow),
        ("required, session used TOTP",                  any(None),            &[T],    &["pwd", "otp", "mfa"], Decision::Allow),
        ("required, upstream said mfa",                  any(None),            &[],     &["fed", "mfa"],        Decision::Allow),
        ("required, TOTP user, password-only session",   any(None),            &[T],    &["pwd"],               Decision::StepUp { methods: set(&[T]) }),
        ("otp without mfa is not enough",                any(None),            &[T],    &["pwd", "otp"],        Decision::StepUp { methods: set(&[T]) }),
        ("no factor, within grace",                      any(Some(6)),         &[],     &["pwd"],               Decision::Enrol { methods: all.clone(), grace_until: at(6) }),
        ("no factor, grace ends now: blocked",           any(Some(5)),         &[],     &["pwd"],               Decision::EnrolNow { methods: all.clone() }),
        ("no factor, grace over",                        any(Some(4)),         &[],     &["pwd"],               Decision::EnrolNow { methods: all.clone() }),
        ("no factor, no grace",                          any(None),            &[],     &["pwd"],               Decision::EnrolNow { methods: all.clone() }),
        ("grace does not spare a step-up",               any(Some(30)),        &[T],    &["pwd"],               Decision::StepUp { methods: set(&[T]) }),
        ("WebAuthn only, session used TOTP, has TOTP",   webauthn(None),       &[T],    &["pwd", "otp", "mfa"], Decision::EnrolNow { methods: set(&[W]) }),
        ("WebAuthn only, TOTP user within grace",        webauthn(Some(9)),    &[T],    &["pwd"],               Decision::Enrol { methods: set(&[W]), grace_until: at(9) }),
        ("WebAuthn only, session used a key",            webauthn(None),       &[W],    &["pwd", "hwk", "mfa"], Decision::Allow),
        ("WebAuthn only, passkey (swk)",                 webauthn(None),       &[W],    &["swk", "mfa"],        Decision::Allow),
        ("WebAuthn only, key user, password session",    webauthn(None),       &[W, T], &["pwd"],               Decision::StepUp { methods: set(&[W]) }),
        ("WebAuthn only, upstream's bare mfa",           webauthn(None),       &[],     &["fed", "mfa"],        Decision::EnrolNow { methods: set(&[W]) }),
        ("both factors, password session",               any(None),            &[T, W], &["pwd"],               Decision::StepUp { methods: set(&[T, W]) }),
        ("conflicting lists: nobody gets in",            Requirement { required: true, allowed: only(&[]), grace_until: Some(at(9)) },
                                                                               &[T, W], &["pwd", "otp", "mfa"], Decision::Unsatisfiable),
    ];
    for (name, req, factors, session, want) in cases {
        assert_eq!(decide(&req, factors, &amr(session), now), want, "{name}");
    }
}

#[test]
fn only_allow_and_enrol_let_the_session_in() {
    let m = set(&[T]);
    assert!(Decision::Allow.lets_in());
    assert!(Decision::Enrol { methods: m.clone(), grace_until: at(1) }.lets_in());
    assert!(!Decision::StepUp { methods: m.clone() }.lets_in());
    assert!(!Decision::EnrolNow { methods: m }.lets_in());
    assert!(!Decision::Unsatisfiable.lets_in());
}

#[test]
fn method_names_parse_strictly() {
    assert_eq!(parse_methods(&["totp", " webauthn"]), Ok(set(&[T, W])));
    assert_eq!(parse_methods(&["totp", "totp"]), Ok(set(&[T])));
    assert_eq!(parse_methods::<&str>(&[]), Ok(set(&[])));
    assert!(parse_methods(&["recovery_code"]).is_err_and(|e| e.contains("fallback")));
    assert!(parse_methods(&["sms"]).is_err_and(|e| e.contains("unknown")));
    assert!(parse_methods(&["TOTP"]).is_err());
    assert!(parse_methods(&[""]).is_err());
}

#[test]
fn the_stored_form_round_trips_and_refuses_unknown_values() {
    for p in [
        Policy::off(),
        Policy { required: true, methods: set(&[]), grace_until: None },
        Policy { required: true, methods: set(&[W, T]), grace_until: Some(at(3)) },
    ] {
        let (req, methods) = p.to_stored();
        assert_eq!(Policy::from_stored(&req, &methods, p.grace_until).ok(), Some(p.clone()));
    }
    assert_eq!(
        Policy { required: true, methods: set(&[W, T]), grace_until: None }.to_stored().1,
        r#"["totp","webauthn"]"#
    );
    assert!(Policy::from_stored("sometimes", "[]", None).is_err());
    assert!(Policy::from_stored("required", r#"["sms"]"#, None).is_err());
    assert!(Policy::from_stored("required", "totp", None).is_err());
}

#[test]
fn requirements_read_as_sentences() {
    assert_eq!(Requirement::none().to_string(), "off");
    let r = Requirement { required: true, allowed: only(&[W]), grace_until: Some(at(0)) };
    assert_eq!(r.to_string(), "required, methods webauthn, enrolment grace until 2027-01-15 08:00 UTC");
    let conflict = Requirement { required: true, allowed: only(&[]), grace_until: None };
    assert!(conflict.is_unsatisfiable());
    assert!(conflict.to_string().contains("nobody can satisfy it"));
    assert_eq!(
        Policy { required: true, methods: set(&[]), grace_until: None }.to_string(),
        "required, any method, no enrolment grace"
    );
}
