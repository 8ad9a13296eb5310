//! `idp org set-mfa|show-mfa` and `idp project set-mfa|show-mfa`: the two-factor policy of
//! organisations and projects (docs/mfa.md). The operator may change every policy.

use clap::{ArgGroup, Args};

use crate::admin::mfa_policy::{self, PolicyChange};
use crate::admin::tokens::Caller;
use crate::cli::{CliError, failed, state};
use crate::config::Config;
use crate::domain::UserId;
use crate::mfa::policy::{Decision, Method};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("requirement").required(true).args(["require", "off"])))]
pub struct MfaArgs {
    /// Require a second factor.
    #[arg(long)]
    pub require: bool,
    /// Require none (for a project, the organisation's requirement still applies).
    #[arg(long)]
    pub off: bool,
    /// The methods that satisfy it, comma-separated: totp, webauthn. Default: any.
    #[arg(long, value_delimiter = ',', value_name = "METHODS")]
    pub methods: Vec<String>,
    /// Days from now during which users without an allowed factor still get in; after that
    /// they must enrol first. Default: no grace.
    #[arg(long, value_name = "DAYS")]
    pub grace_days: Option<i64>,
}

impl MfaArgs {
    fn change(&self) -> PolicyChange<'_> {
        PolicyChange { required: self.require, methods: &self.methods, grace_days: self.grace_days }
    }
}

#[derive(Debug, Args)]
pub struct OrgSetMfa {
    /// The organisation's id or slug.
    #[arg(long = "org")]
    pub organisation: String,
    #[command(flatten)]
    pub mfa: MfaArgs,
}

#[derive(Debug, Args)]
pub struct ProjectSetMfa {
    /// The organisation's id or slug.
    #[arg(long = "org")]
    pub organisation: String,
    /// The project's id or slug.
    #[arg(long)]
    pub project: String,
    #[command(flatten)]
    pub mfa: MfaArgs,
}

#[derive(Debug, Args)]
pub struct ProjectShowMfa {
    #[arg(long = "org")]
    pub organisation: String,
    #[arg(long)]
    pub project: String,
    /// Also show what this user would meet on entering the project.
    #[arg(long, value_name = "USER_ID")]
    pub user: Option<UserId>,
}

fn methods(m: &std::collections::BTreeSet<Method>) -> String {
    m.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(",")
}

fn describe(d: &Decision) -> String {
    match d {
        Decision::Allow => "gets in".into(),
        Decision::StepUp { methods: m } => format!("is asked for a second factor ({})", methods(m)),
        Decision::Enrol { methods: m, grace_until } => {
            format!("gets in, and is asked to enrol ({}) before {grace_until} UTC", methods(m))
        }
        Decision::EnrolNow { methods: m } => format!("must enrol a second factor ({}) first", methods(m)),
        Decision::Unsatisfiable => "cannot get in: no method is allowed by both organisation and project".into(),
    }
}

pub fn set_org(config: Config, args: OrgSetMfa) -> Result<(), CliError> {
    let s = state(config)?;
    let now = s.clock.now_naive();
    let req =
        s.db.write(|conn| {
            mfa_policy::set_organisation_policy(
                conn,
                &s.auditor,
                now,
                Caller::Operator,
                &args.organisation,
                args.mfa.change(),
            )
        })
        .map_err(failed)?;
    println!("two-factor policy of {} set: {req}", args.organisation);
    Ok(())
}

pub fn set_project(config: Config, args: ProjectSetMfa) -> Result<(), CliError> {
    let s = state(config)?;
    let now = s.clock.now_naive();
    let req =
        s.db.write(|conn| {
            mfa_policy::set_project_policy(
                conn,
                &s.auditor,
                now,
                Caller::Operator,
                &args.organisation,
                &args.project,
                args.mfa.change(),
            )
        })
        .map_err(failed)?;
    println!("two-factor policy of {}/{} set; effective there now: {req}", args.organisation, args.project);
    Ok(())
}

pub fn show_org(config: Config, organisation: &str) -> Result<(), CliError> {
    let s = state(config)?;
    let (org, projects) =
        s.db.read(|conn| mfa_policy::list_effective(conn, Caller::Operator, organisation)).map_err(failed)?;
    println!("{organisation}\t{org}");
    for p in projects {
        println!("{organisation}/{}\town: {}\teffective: {}", p.project.slug, p.own, p.effective);
    }
    Ok(())
}

pub fn show_project(config: Config, args: ProjectShowMfa) -> Result<(), CliError> {
    let s = state(config)?;
    let now = s.clock.now_naive();
    let shown =
        s.db.read(|conn| {
            mfa_policy::get_effective(conn, now, Caller::Operator, &args.organisation, Some(&args.project), args.user)
        })
        .map_err(failed)?;
    println!("organisation\t{}", shown.organisation);
    if let Some(p) = &shown.project {
        println!("project\t{p}");
    }
    println!("effective\t{}", shown.effective);
    if let Some(u) = shown.user {
        let factors = if u.factors.is_empty() {
            "none".to_owned()
        } else {
            u.factors.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(",")
        };
        println!(
            "user {}\tfactors: {factors}\twith a session without a second factor: {}",
            u.user,
            describe(&u.without_mfa)
        );
    }
    Ok(())
}
