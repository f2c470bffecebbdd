//! Prints the distribution bench table (Strata's iceoryx transport vs raw iceoryx2
//! one-way latency, batched throughput).
//!
//! `cargo run --release -p strata-transport-iceoryx --example distribution [messages]`

use strata_transport_iceoryx::bench::{
    LatencyConfig, ThroughputConfig, batched_throughput, format_table, latency_comparison,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let messages: u64 = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(200_000);
    let lat = latency_comparison(&LatencyConfig { messages, ..LatencyConfig::default() })?;
    let tput = batched_throughput(&ThroughputConfig::default())?;
    print!("{}", format_table(&lat, &tput));
    Ok(())
}
