//! Runs the engine benchmark without the CLI: `cargo run --release -p fleet-emulator --example
//! bench -- [messages] [normal|full] [rate|-] [batch]`.

use fleet_emulator::Durability;
use fleet_emulator::bench::{BenchOptions, run};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let messages = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let durability = match args.next().as_deref() {
        Some("full") => Durability::Full,
        _ => Durability::Normal,
    };
    let rate = args
        .next()
        .filter(|s| s != "-")
        .map(|s| s.parse())
        .transpose()?;
    let batch = args.next().map(|s| s.parse()).transpose()?.unwrap_or(100);
    let dir = tempfile::tempdir()?;
    let report = run(
        BenchOptions {
            messages,
            durability,
            rate,
            batch,
        },
        dir.path(),
    )
    .await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
