//! The tool commands: `verify`, `keygen`, `mint`, `inspect`, each mapping its
//! arguments to the library call and the result to an exit code.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use jwtgate::batch::{self, BatchOptions, Input, Progress};
use jwtgate::control::{self, Console};
use jwtgate::settings;
use jwtgate::tools::{ToolError, inspect, keygen, mint};
use jwtgate::{Outcome, UnixTime};

use crate::cli::{InspectArgs, KeygenArgs, MintArgs, VerifyArgs};
use crate::{Failure, algorithm, refused};

fn open_input(path: &Path) -> Result<Input, Failure> {
    if path == Path::new("-") {
        return Ok(Input {
            name: "-".into(),
            reader: Box::new(std::io::stdin()),
        });
    }
    let file = std::fs::File::open(path).map_err(|source| ToolError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(Input {
        name: path.display().to_string(),
        reader: Box::new(file),
    })
}

pub(crate) fn run_verify(args: &VerifyArgs) -> Result<ExitCode, Failure> {
    let threads = settings::batch_threads(args.threads.unwrap_or(0)).map_err(refused("threads"))?;
    let checks = match &args.config {
        Some(file) => {
            args.settings.refuse_with_config(file)?;
            batch::Checks::named(control::verifiers_for(
                file,
                &args.token_config,
                &mut Console::default(),
            )?)
        }
        None => batch::Checks::one(Arc::new(args.settings.verifier()?)),
    };
    let paths: Vec<PathBuf> = if args.inputs.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.inputs.clone()
    };
    let inputs = paths
        .iter()
        .map(|path| open_input(path))
        .collect::<Result<Vec<_>, _>>()?;
    // Opened before the run, so a bad path fails in a second, not after an hour.
    let histogram = args
        .histogram
        .as_ref()
        .map(|path| {
            std::fs::File::create(path)
                .map(|file| (path, file))
                .map_err(|source| ToolError::Io {
                    path: path.clone(),
                    source,
                })
        })
        .transpose()?;
    let options = BatchOptions {
        threads,
        now: args.settings.now.map(UnixTime),
        ..BatchOptions::default()
    };
    let show_progress = !args.no_progress && !args.quiet && std::io::stderr().is_terminal();
    let mut stderr = std::io::stderr();
    let mut progress = |progress: &Progress| {
        if show_progress {
            let _ = stderr.write_all(progress.line().as_bytes());
        }
    };
    let stdout = std::io::stdout();
    let mut output = std::io::BufWriter::with_capacity(256 * 1024, stdout.lock());
    let summary = match batch::run(&checks, inputs, &mut output, &options, &mut progress) {
        Ok(summary) => summary,
        Err(batch::BatchError::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            return Ok(ended_by_reader());
        }
        Err(error) => return Err(error.into()),
    };
    drop(output);
    if show_progress {
        eprint!("\r\x1b[2K");
    }
    if !args.quiet {
        eprint!("{}", summary.render());
    }
    if let Some((path, mut file)) = histogram {
        file.write_all(summary.latency_distribution().as_bytes())
            .map_err(|source| ToolError::Io {
                path: path.clone(),
                source,
            })?;
    }
    Ok(if summary.all_valid() || args.exit_zero {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The reader of stdout went away (`verify ... | head -1`): end without a
/// word, as Unix tools do, by the signal they end by (status 141 in a shell).
fn ended_by_reader() -> ExitCode {
    let _ = signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGPIPE);
    ExitCode::from(141)
}

pub(crate) fn run_keygen(args: &KeygenArgs) -> Result<ExitCode, Failure> {
    let report = keygen::keygen(&keygen::KeygenOptions {
        algorithm: algorithm(&args.alg)?,
        kid: args.kid.clone(),
        out_dir: args.out.clone(),
        rsa_bits: args.bits,
    })?;
    if let Some(private_key) = &report.private_key {
        println!("private key: {}", private_key.display());
    }
    println!(
        "jwks:        {} (kid {})",
        report.jwks.display(),
        report.kid
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_mint(args: &MintArgs) -> Result<ExitCode, Failure> {
    let algorithm = algorithm(&args.alg)?;
    let (key, key_kid) = mint::load_signing_key(&args.key, algorithm)?;
    let options = mint::MintOptions {
        algorithm,
        kid: args.kid.clone(),
        issuer: args.iss.clone(),
        audiences: args.aud.clone(),
        subject: args.sub.clone(),
        ttl: args.ttl,
        claims: args.claims.clone(),
        count: args.count,
        now: args.now.map_or_else(UnixTime::now, UnixTime),
        threads: args.threads.unwrap_or(0),
    };
    let stdout = std::io::stdout();
    let mut output = std::io::BufWriter::new(stdout.lock());
    mint::mint(&key, key_kid.as_deref(), &options, &mut output)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn run_inspect(args: &InspectArgs) -> Result<ExitCode, Failure> {
    let token = if args.token == "-" {
        let mut token = Vec::new();
        std::io::stdin()
            .take(16 * 1024 * 1024)
            .read_to_end(&mut token)
            .map_err(|e| format!("reading the token from stdin: {e}"))?;
        token
    } else {
        args.token.clone().into_bytes()
    };
    let verifier = match args.settings.jwks {
        Some(_) => Some(args.settings.verifier()?),
        None => None,
    };
    let now = args.settings.now.map_or_else(UnixTime::now, UnixTime);
    let inspection = inspect::inspect(&token, verifier.as_ref(), now);
    print!("{}", inspection.report);
    Ok(match inspection.outcome {
        Some(Outcome::Valid) | None => ExitCode::SUCCESS,
        Some(_) => ExitCode::from(1),
    })
}
