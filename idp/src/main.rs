use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = idp::cli::Cli::parse();
    match idp::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idp: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
