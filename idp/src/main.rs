use clap::Parser;

fn main() -> std::process::ExitCode {
    // First thing, before any thread: rust-openssl initialises OpenSSL without an exit-time
    // cleanup, which libpq's own initialisation would register and then race at exit.
    openssl::init();
    let cli = idp::cli::Cli::parse();
    match idp::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idp: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
