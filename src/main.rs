//! The `jwtgate` command line: parses arguments and calls the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jwtgate: a JWT verification tier.
#[derive(Parser)]
#[command(name = "jwtgate", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the engine at work on the bundled demo keys, with no setup.
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo => match jwtgate::demo::run(jwtgate::UnixTime::now()) {
            Ok(report) => {
                #[allow(clippy::print_stdout)]
                {
                    print!("{report}");
                }
                ExitCode::SUCCESS
            }
            Err(error) => {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("jwtgate: {error}");
                }
                ExitCode::from(2)
            }
        },
    }
}
