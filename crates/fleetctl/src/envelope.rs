//! `fleetctl envelope …`: validate, convert and describe event envelopes.
//!
//! Exit codes: 0 the input is a valid envelope (or the command printed what was asked);
//! 1 the input is not a valid envelope (every error printed, one per line, each naming its
//! field); 2 usage: a bad flag, an unknown event type, or a file that cannot be read.
//! Input is read from FILE, or from standard input when FILE is `-` or absent, and never more
//! than the envelope size limit is read.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand, ValueEnum};
use fleet_envelope::{
    EnvelopeError, EventType, Format, MAX_ENVELOPE_BYTES, cloudevents, examples, schema,
};
use serde_json::json;

/// Envelope commands.
#[derive(Debug, Subcommand)]
pub enum EnvelopeCommand {
    /// Check an envelope (Fleet JSON or CloudEvents, detected) against every rule.
    ///
    /// Prints `valid: <eventType> v<version> <eventId>` and exits 0, or prints every error, one
    /// per line as `<field>: <rule>`, and exits 1.
    Validate(ValidateArgs),
    /// Print the JSON Schema of an event type's v1 envelope.
    Schema(SchemaArgs),
    /// Convert an envelope between Fleet JSON and CloudEvents (input format detected).
    Convert(ConvertArgs),
    /// Print a valid example envelope of an event type.
    Example(ExampleArgs),
    /// List the event catalog.
    Types(TypesArgs),
}

/// Where to read an envelope from.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// The envelope file; `-` or nothing reads standard input.
    #[arg(value_name = "FILE|-")]
    file: Option<PathBuf>,
}

/// `fleetctl envelope validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    input: InputArgs,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

fn event_type_parser() -> PossibleValuesParser {
    PossibleValuesParser::new(EventType::ALL.map(EventType::as_str))
}

/// `fleetctl envelope schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The event type.
    #[arg(value_name = "EVENT_TYPE", value_parser = event_type_parser())]
    event_type: String,
}

/// The wire forms `convert` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// CloudEvents 1.0 structured mode (`application/cloudevents+json`).
    Cloudevents,
    /// Fleet's envelope JSON (`application/json`).
    Fleet,
}

/// `fleetctl envelope convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The form to write.
    #[arg(long, value_enum)]
    to: Target,
    /// Indent the output.
    #[arg(long)]
    pretty: bool,
    #[command(flatten)]
    input: InputArgs,
}

/// `fleetctl envelope example`.
#[derive(Debug, Args)]
pub struct ExampleArgs {
    /// The event type.
    #[arg(value_name = "EVENT_TYPE", value_parser = event_type_parser())]
    event_type: String,
    /// The form to write.
    #[arg(long, value_enum, default_value = "fleet")]
    to: Target,
}

/// `fleetctl envelope types`.
#[derive(Debug, Args)]
pub struct TypesArgs {
    /// Print a JSON array of `{eventType, versions}`.
    #[arg(long)]
    json: bool,
}

/// Runs an envelope command.
pub fn run(cmd: EnvelopeCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EnvelopeCommand::Validate(args) => validate(args),
        EnvelopeCommand::Schema(args) => {
            let t = parse_type(&args.event_type)?;
            let text = serde_json::to_string_pretty(&schema::schema_for(t))?;
            print_out(&text)
        }
        EnvelopeCommand::Convert(args) => convert(args),
        EnvelopeCommand::Example(args) => {
            let e = examples::sample_envelope(parse_type(&args.event_type)?);
            let value = match args.to {
                Target::Fleet => serde_json::to_value(&e)?,
                Target::Cloudevents => cloudevents::to_cloudevent(&e),
            };
            print_out(&serde_json::to_string_pretty(&value)?)
        }
        EnvelopeCommand::Types(args) => {
            let text = if args.json {
                let list: Vec<_> = EventType::ALL
                    .iter()
                    .map(|t| json!({ "eventType": t.as_str(), "versions": t.supported_versions() }))
                    .collect();
                serde_json::to_string(&list)?
            } else {
                let lines: Vec<String> = EventType::ALL
                    .iter()
                    .map(|t| {
                        let v: Vec<String> = t
                            .supported_versions()
                            .iter()
                            .map(|v| format!("v{v}"))
                            .collect();
                        format!("{t} {}", v.join(" "))
                    })
                    .collect();
                lines.join("\n")
            };
            print_out(&text)
        }
    }
}

fn parse_type(name: &str) -> anyhow::Result<EventType> {
    // clap already restricted the value to the catalog; this only converts it.
    Ok(name.parse::<EventType>()?)
}

fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let bytes = match read_input(&args.input) {
        Ok(b) => b,
        Err(Input::Unreadable(msg)) => return usage_error(&msg),
        Err(Input::Rejected(err)) => return report_invalid(&err, args.json),
    };
    match fleet_envelope::Envelope::decode_detect(&bytes, None) {
        Ok((e, format)) => {
            let text = if args.json {
                let format = match format {
                    Format::Fleet => "fleet",
                    Format::CloudEvents => "cloudevents",
                };
                serde_json::to_string(&json!({
                    "valid": true,
                    "format": format,
                    "eventType": e.event_type.as_str(),
                    "eventVersion": e.event_version,
                    "eventId": e.event_id.to_string(),
                }))?
            } else {
                format!(
                    "valid: {} v{} {}",
                    e.event_type, e.event_version, e.event_id
                )
            };
            print_out(&text)
        }
        Err(err) => report_invalid(&err, args.json),
    }
}

fn report_invalid(err: &EnvelopeError, as_json: bool) -> anyhow::Result<ExitCode> {
    let text = if as_json {
        let errors: Vec<_> = err
            .errors
            .iter()
            .map(|e| json!({ "path": e.path, "rule": e.rule }))
            .collect();
        serde_json::to_string(
            &json!({ "valid": false, "kind": err.kind().as_str(), "errors": errors }),
        )?
    } else {
        err.to_string()
    };
    print_out(&text)?;
    Ok(ExitCode::from(1))
}

fn convert(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let bytes = match read_input(&args.input) {
        Ok(b) => b,
        Err(Input::Unreadable(msg)) => return usage_error(&msg),
        Err(Input::Rejected(err)) => return print_errors(&err),
    };
    let envelope = match fleet_envelope::Envelope::decode_detect(&bytes, None) {
        Ok((e, _)) => e,
        Err(err) => return print_errors(&err),
    };
    let value = match args.to {
        Target::Fleet => serde_json::to_value(&envelope)?,
        Target::Cloudevents => cloudevents::to_cloudevent(&envelope),
    };
    let text = if args.pretty {
        serde_json::to_string_pretty(&value)?
    } else {
        serde_json::to_string(&value)?
    };
    print_out(&text)
}

/// Errors of a command whose standard output is data go to standard error.
fn print_errors(err: &EnvelopeError) -> anyhow::Result<ExitCode> {
    let mut stderr = io::stderr().lock();
    for e in &err.errors {
        // A closed stderr leaves nothing to tell; the exit code still says it.
        let _ = writeln!(stderr, "{e}");
    }
    Ok(ExitCode::from(1))
}

fn usage_error(msg: &str) -> anyhow::Result<ExitCode> {
    let _ = writeln!(io::stderr().lock(), "fleetctl: {msg}");
    Ok(ExitCode::from(2))
}

/// Writes `text` and a newline to standard output; a reader that went away (`| head`) is not a
/// failure of the command.
fn print_out(text: &str) -> anyhow::Result<ExitCode> {
    let mut stdout = io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
    }
}

enum Input {
    /// The file could not be opened or read: a usage problem.
    Unreadable(String),
    /// The body is over the size limit: an invalid envelope, not read further.
    Rejected(EnvelopeError),
}

/// Reads at most one byte more than the limit, so an endless or huge input is refused without
/// being held in memory.
fn read_input(input: &InputArgs) -> Result<Vec<u8>, Input> {
    let limit = MAX_ENVELOPE_BYTES as u64 + 1;
    let mut bytes = Vec::new();
    let (name, result) = match &input.file {
        Some(path) if path.as_os_str() != "-" => {
            let name = path.display().to_string();
            let file = File::open(path)
                .map_err(|e| Input::Unreadable(format!("cannot read {name}: {e}")))?;
            if let Ok(meta) = file.metadata()
                && meta.is_file()
            {
                fleet_envelope::check_size(usize::try_from(meta.len()).unwrap_or(usize::MAX))
                    .map_err(Input::Rejected)?;
            }
            (name, file.take(limit).read_to_end(&mut bytes))
        }
        _ => (
            "standard input".to_owned(),
            io::stdin().lock().take(limit).read_to_end(&mut bytes),
        ),
    };
    result.map_err(|e| Input::Unreadable(format!("cannot read {name}: {e}")))?;
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(Input::Rejected(EnvelopeError::single(
            fleet_envelope::ErrorKind::TooLarge,
            "$",
            format!("envelope is over the {MAX_ENVELOPE_BYTES}-byte limit"),
        )));
    }
    Ok(bytes)
}
