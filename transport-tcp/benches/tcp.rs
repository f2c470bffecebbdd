//! TCP loopback benchmarks: one-way latency (send time carried in the payload,
//! publisher and subscriber on separate threads, one message in flight) and throughput
//! of small frames under the block policy.
//!
//! Before criterion runs, the latency distribution of 20 000 messages (after 2 000 of
//! warm-up) is printed with its percentiles, since criterion reports only means.

#![expect(missing_docs, reason = "criterion_group! generates undocumented items")]

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_transport_tcp::bench::{self, LoopbackOptions};

/// One line of percentiles of a latency histogram (ns) in µs.
fn percentiles(h: &hdrhistogram::Histogram<u64>) -> String {
    format!(
        "{} msgs: p50 {:.1} us, p90 {:.1} us, p99 {:.1} us, p99.9 {:.1} us, max {:.1} us, mean {:.1} us",
        h.len(),
        h.value_at_quantile(0.50) as f64 / 1e3,
        h.value_at_quantile(0.90) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        h.value_at_quantile(0.999) as f64 / 1e3,
        h.max() as f64 / 1e3,
        h.mean() / 1e3,
    )
}

fn print_distribution() {
    match bench::raw_latency(&LoopbackOptions::default().with_payload(64)) {
        Ok(r) => eprintln!(
            "raw std::net loopback one-way latency, 64 B (reference), {}",
            percentiles(&r.latency_ns)
        ),
        Err(e) => eprintln!("raw latency reference failed: {e}"),
    }
    for (direct, inline) in [(true, true), (true, false), (false, true), (false, false)] {
        let opts = LoopbackOptions::default()
            .with_payload(64)
            .with_direct_write(direct)
            .with_inline_read(inline);
        match bench::latency(&opts) {
            Ok(r) => eprintln!(
                "tcp loopback one-way latency, 64 B, direct_write={direct}, inline_read={inline}, {}",
                percentiles(&r.latency_ns)
            ),
            Err(e) => eprintln!("latency distribution failed: {e}"),
        }
        match bench::throughput(1_000_000, 16, &opts) {
            Ok(r) => eprintln!(
                "tcp loopback throughput, 16 B frames, direct_write={direct}, inline_read={inline}: {} msgs in {:.2?} = {:.0} msg/s",
                r.messages,
                r.elapsed,
                r.msgs_per_sec()
            ),
            Err(e) => eprintln!("throughput run failed: {e}"),
        }
    }
}

fn tcp(c: &mut Criterion) {
    print_distribution();
    let mut g = c.benchmark_group("tcp_loopback");
    g.measurement_time(Duration::from_secs(5)).sample_size(10);
    g.bench_function("one_way_latency_64B_x2000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let opts = LoopbackOptions::default().with_messages(2_000).with_warmup(200);
                let r = bench::latency(&opts).expect("latency run");
                total +=
                    Duration::from_nanos((r.latency_ns.mean() * r.latency_ns.len() as f64) as u64);
            }
            total
        })
    });
    let n = 200_000u64;
    let batched = LoopbackOptions::default().with_direct_write(false);
    g.throughput(Throughput::Elements(n));
    g.bench_function("throughput_16B_batched", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                total += bench::throughput(n, 16, &batched).expect("throughput run").elapsed;
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, tcp);
criterion_main!(benches);
