//! The `idp` command line. Each command loads the configuration, calls a use case, and prints
//! a result a newcomer can read.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::admin::keys::rotate_master;
use crate::admin::organisations;
use crate::app::{self, AppState, StartError};
use crate::audit::Actor;
use crate::config::{Config, LogFormat};
use crate::domain::UserId;
use crate::storage::organisations::OrganisationRepository;
use crate::storage::users::UserRepository;

#[derive(Debug, Parser)]
#[command(name = "idp", version, about = "A standalone identity provider and SSO broker.", long_about = None)]
pub struct Cli {
    /// Configuration file (TOML). Every key can also be set as IDP_<KEY>; see docs/configuration.md.
    #[arg(long, global = true, env = "IDP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server. With no configuration: SQLite in ./idp-data, on http://127.0.0.1:8080.
    Serve,
    /// Apply pending database migrations and exit (serve does this too).
    Migrate,
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage organisations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage projects inside organisations.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Inspect users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage connectors that belong to an organisation (beside those in the configuration file).
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// Manage the keys idp holds.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// API tokens: create, list, rotate, revoke (docs/api-tokens.md).
    #[command(subcommand)]
    Token(crate::cli_token::TokenCommand),
    /// Encrypted backups: create, verify (a restore rehearsal), restore, list. See docs/backups.md.
    #[command(subcommand)]
    Backup(BackupCommand),
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a consistent, encrypted backup while idp keeps serving.
    Create {
        /// Where to write it; default `{backup.dir}/idp-<time>.idpbak`.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Restore FILE into a scratch database and check it; prints one line, exits 1 on any problem.
    Verify { file: PathBuf },
    /// Restore FILE into the configured database, which must be empty (or pass --force).
    Restore {
        file: PathBuf,
        /// Replace everything in a non-empty database.
        #[arg(long)]
        force: bool,
    },
    /// The backups in backup.dir: time, size, schema version, last verify result.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration without starting; prints one line per problem.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organisation, e.g. `idp org create --name "Acme Corp" --owner <user id>`.
    Create(OrgCreate),
    /// List organisations: id, slug, name.
    List,
    /// Set the organisation's two-factor requirement, e.g.
    /// `idp org set-mfa --org acme --require --methods webauthn --grace-days 7` (docs/mfa.md).
    SetMfa(crate::cli_mfa::OrgSetMfa),
    /// Show the organisation's two-factor requirement and, per project, the effective one.
    ShowMfa {
        /// The organisation's id or slug.
        #[arg(long = "org")]
        organisation: String,
    },
}

#[derive(Debug, Args)]
pub struct OrgCreate {
    /// Display name.
    #[arg(long)]
    pub name: String,
    /// URL name (a-z, 0-9, '-'); derived from the name when omitted.
    #[arg(long)]
    pub slug: Option<String>,
    /// A user id to make owner; repeat for several owners.
    #[arg(long = "owner", value_name = "USER_ID")]
    pub owners: Vec<UserId>,
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project, e.g. `idp project create --org acme --name "Billing"`.
    Create(ProjectCreate),
    /// Set the project's two-factor requirement (the organisation's still applies; the
    /// stricter wins), e.g. `idp project set-mfa --org acme --project billing --require`.
    SetMfa(crate::cli_mfa::ProjectSetMfa),
    /// Show the project's two-factor requirement, the organisation's, the effective one, and
    /// with `--user` what that user would meet.
    ShowMfa(crate::cli_mfa::ProjectShowMfa),
}

#[derive(Debug, Args)]
pub struct ProjectCreate {
    /// The organisation's id or slug.
    #[arg(long = "org")]
    pub organisation: String,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub slug: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List users: id, e-mail, created, disabled.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// End every session of a user at once (they must log in again), e.g. after a lost laptop.
    EndSessions {
        /// The user's id, as `idp user list` shows it.
        user: UserId,
    },
    /// Remove every second factor of a user (TOTP authenticators, security keys, passkeys,
    /// recovery codes), for someone who lost their devices; audited as `mfa.reset`.
    ResetMfa {
        /// The user's id, as `idp user list` shows it.
        user: UserId,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Create a connector for an organisation from a TOML file with the keys of one
    /// `[[connectors]]` table (docs/configuration.md), e.g.
    /// `idp connector create --org acme --file okta.toml`. The client secret is sealed at rest.
    Create {
        /// The organisation's id or slug.
        #[arg(long = "org")]
        organisation: String,
        /// The connector's settings.
        #[arg(long)]
        file: PathBuf,
    },
    /// List the organisations' connectors: id, type, name, organisation.
    List,
    /// Delete an organisation's connector (its users keep their accounts).
    Delete { id: String },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-encrypt every sealed secret under a new master key while servers keep serving.
    /// With a key file, a new key is generated; with IDP_MASTER_KEY, put the new key first
    /// ("NEW,OLD") on every instance, then run this.
    RotateMaster,
    /// Rotate the token signing keys now. The new key is published at once and signs after
    /// twice `tokens.signing_key_reload` + `tokens.jwks_max_age` (12 minutes by default), so every
    /// instance and every app's JWKS cache has it first; the old key stays published until its
    /// tokens have expired. `--immediately` is for a compromised key: the new key signs now and
    /// every token the old one signed stops validating.
    RotateSigning {
        /// RS256, ES256, EdDSA or all.
        #[arg(long, default_value = "all", value_parser = ["all", "RS256", "ES256", "EdDSA"])]
        alg: String,
        #[arg(long)]
        immediately: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("{0}")]
    Failed(String),
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let json = match config.log.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.compact().try_init() };
}

pub(crate) fn state(config: Config) -> Result<AppState, CliError> {
    Ok(app::build_state(config)?)
}

pub(crate) fn failed(e: impl std::fmt::Display) -> CliError {
    CliError::Failed(e.to_string())
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    let config = Config::load(cli.config.as_deref()).map_err(StartError::from)?;
    if let Command::Config(ConfigCommand::Check) = cli.command {
        for w in &config.warnings {
            eprintln!("warning: {w}");
        }
        println!("configuration OK: {} on {}, database {}", config.public_url, config.bind, config.database.redacted());
        return Ok(());
    }
    init_logging(&config);
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    match cli.command {
        Command::Config(_) => Ok(()),
        Command::Serve => {
            let state = state(config)?;
            actix_web::rt::System::new().block_on(async move {
                crate::maintenance::spawn(state.clone());
                crate::maintenance::spawn_key_refresh(state.clone());
                crate::maintenance::spawn_client_reload(state.clone());
                crate::backup::schedule::spawn(state.clone());
                app::serve(state).await
            })?;
            Ok(())
        }
        Command::Migrate => {
            let db = app::open_database(&config)?;
            println!("database {} is up to date", db.url().redacted());
            Ok(())
        }
        Command::Org(OrgCommand::Create(args)) => {
            let s = state(config)?;
            let now = s.clock.now_naive();
            let org =
                s.db.write(|conn| {
                    organisations::create_organisation(
                        conn,
                        &s.auditor,
                        now,
                        Actor::Cli,
                        &args.name,
                        args.slug.as_deref(),
                        &args.owners,
                    )
                })
                .map_err(failed)?;
            println!("{}\t{}\t{}", org.id, org.slug, org.name);
            Ok(())
        }
        Command::Org(OrgCommand::List) => {
            let s = state(config)?;
            for org in s.db.read(|conn| conn.list_organisations()).map_err(failed)? {
                println!("{}\t{}\t{}", org.id, org.slug, org.name);
            }
            Ok(())
        }
        Command::Org(OrgCommand::SetMfa(args)) => crate::cli_mfa::set_org(config, args),
        Command::Org(OrgCommand::ShowMfa { organisation }) => crate::cli_mfa::show_org(config, &organisation),
        Command::Project(ProjectCommand::SetMfa(args)) => crate::cli_mfa::set_project(config, args),
        Command::Project(ProjectCommand::ShowMfa(args)) => crate::cli_mfa::show_project(config, args),
        Command::Project(ProjectCommand::Create(args)) => {
            let s = state(config)?;
            let now = s.clock.now_naive();
            let p =
                s.db.write(|conn| {
                    organisations::create_project(
                        conn,
                        &s.auditor,
                        now,
                        Actor::Cli,
                        &args.organisation,
                        &args.name,
                        args.slug.as_deref(),
                    )
                })
                .map_err(failed)?;
            println!("{}\t{}\t{}", p.id, p.slug, p.name);
            Ok(())
        }
        Command::User(UserCommand::List { limit }) => {
            let s = state(config)?;
            let users = s.db.read(|conn| conn.list_users(None, limit.clamp(1, 10_000))).map_err(failed)?;
            for u in users {
                let disabled = if u.disabled { "disabled" } else { "active" };
                println!(
                    "{}\t{}\t{}\t{}",
                    u.id,
                    u.email.as_deref().unwrap_or("-"),
                    u.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    disabled
                );
            }
            Ok(())
        }
        Command::Backup(cmd) => crate::cli_backup::run(config, cmd),
        Command::User(UserCommand::EndSessions { user }) => {
            let s = state(config)?;
            let now = s.clock.now_naive();
            let ended =
                s.db.write(|conn| {
                    if conn.find_user(user)?.is_none() {
                        return Err(crate::storage::StorageError::NotFound);
                    }
                    crate::auth::session::end_all(conn, &s.auditor, now, Actor::Cli, user)
                })
                .map_err(|e| match e {
                    crate::storage::StorageError::NotFound => CliError::Failed(format!("no user {user}")),
                    other => failed(other),
                })?;
            println!("ended {ended} sessions of user {user}");
            Ok(())
        }
        Command::User(UserCommand::ResetMfa { user }) => {
            use crate::admin::mfa_reset::{ResetCaller, reset_user_factors};
            let s = state(config)?;
            let now = s.clock.now_naive();
            let r =
                s.db.write(|conn| reset_user_factors(conn, &s.auditor, now, ResetCaller::Operator, user))
                    .map_err(failed)?;
            println!(
                "reset the second factors of user {user}: removed {} authenticator apps, {} security keys and passkeys, {} recovery codes",
                r.totp_credentials, r.webauthn_credentials, r.recovery_codes
            );
            Ok(())
        }
        Command::Connector(cmd) => connector_command(config, cmd),
        Command::Token(cmd) => crate::cli_token::run(config, cmd),
        Command::Keys(KeysCommand::RotateSigning { alg, immediately }) => {
            use crate::crypto::signing::SigningAlgorithm;
            use crate::oidc::rotation::{self, Mode};
            let s = state(config)?;
            let now = s.clock.now_naive();
            let algs: Vec<SigningAlgorithm> = match SigningAlgorithm::parse(&alg) {
                Some(a) => vec![a],
                None => rotation::ALGORITHMS.to_vec(),
            };
            let mode = if immediately { Mode::Immediate } else { Mode::Forced };
            let lead = rotation::Schedule::from_config(&s.config.tokens).lead;
            let rotated =
                s.db.write(|conn| rotation::rotate_now(conn, &s.keys, &s.auditor, now, &algs, mode, lead))
                    .map_err(failed)?;
            for r in rotated {
                println!("new {} signing key {} signs from {} UTC", r.algorithm.as_str(), r.kid, r.signs_from);
            }
            if immediately {
                println!("tokens signed by the old keys no longer validate (within a minute on every instance)");
            }
            Ok(())
        }
        Command::Keys(KeysCommand::RotateMaster) => {
            let s = state(config)?;
            let report = rotate_master(&s.db, &s.keys, &s.auditor, s.clock.as_ref(), None).map_err(failed)?;
            println!("master key rotated: {} secrets re-sealed under key {}", report.resealed, report.new_key);
            if !report.retired.is_empty() {
                println!(
                    "no secret uses the old key(s) {} any more; they were removed from the key file",
                    report.retired.join(", ")
                );
                if matches!(s.keys.source(), crate::crypto::secretbox::KeySource::Env(_)) {
                    println!("remove them from IDP_MASTER_KEY on every instance");
                }
            }
            Ok(())
        }
    }
}

fn connector_command(config: Config, cmd: ConnectorCommand) -> Result<(), CliError> {
    use crate::config::ConnectorConfig;
    let s = state(config)?;
    let now = s.clock.now_naive();
    match cmd {
        ConnectorCommand::Create { organisation, file } => {
            let text =
                std::fs::read_to_string(&file).map_err(|e| CliError::Failed(format!("{}: {e}", file.display())))?;
            let mut c: ConnectorConfig =
                toml::from_str(&text).map_err(|e| CliError::Failed(format!("{}: {}", file.display(), e.message())))?;
            // A secret named by variable or file is read here and stored sealed.
            let env = |var: &str| std::env::var(var).ok();
            let secret = crate::connector_config::secret_from(
                c.client_secret.as_ref(),
                c.client_secret_env.as_ref(),
                c.client_secret_file.as_ref(),
                "connector",
                &env,
            )
            .map_err(|p| CliError::Failed(p.to_string()))?;
            c.client_secret = secret;
            c.client_secret_env = None;
            c.client_secret_file = None;
            // A SAML connection's certificate or metadata is stored itself, read here like the secret.
            let read = |path: std::path::PathBuf| {
                std::fs::read_to_string(&path).map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))
            };
            if let Some(path) = c.idp_certificate_file.take() {
                c.idp_certificate = Some(read(path)?);
            }
            if let Some(path) = c.idp_metadata_file.take() {
                c.idp_metadata = Some(read(path)?);
            }
            let taken = |id: &str| s.connectors.is_fixed(id);
            let spec =
                s.db.write(|conn| {
                    crate::admin::connectors::create(
                        conn,
                        &s.keys,
                        &s.auditor,
                        now,
                        Actor::Cli,
                        &organisation,
                        &c,
                        &taken,
                    )
                })
                .map_err(failed)?;
            println!(
                "created connector {} ({}); redirect URI to register upstream: {}/callback/{}",
                spec.id,
                spec.kind.as_str(),
                s.config.base_url(),
                spec.id
            );
            Ok(())
        }
        ConnectorCommand::List => {
            let rows =
                s.db.read(crate::storage::connectors::ConnectorRepository::organisation_connectors).map_err(failed)?;
            let specs = s.db.read(|conn| crate::admin::connectors::load(conn, &s.keys)).map_err(failed)?;
            for row in rows {
                let spec = specs.iter().find(|sp| sp.id.as_str() == row.id);
                let (kind, name) =
                    spec.map(|sp| (sp.kind.as_str(), sp.name.as_str())).unwrap_or(("?", "(does not load)"));
                println!("{}\t{kind}\t{name}\t{}", row.id, row.organisation_id);
            }
            Ok(())
        }
        ConnectorCommand::Delete { id } => {
            s.db.write(|conn| crate::admin::connectors::delete(conn, &s.auditor, now, Actor::Cli, &id))
                .map_err(failed)?;
            println!("deleted connector {id}");
            Ok(())
        }
    }
}
