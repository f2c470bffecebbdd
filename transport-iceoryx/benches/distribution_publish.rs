//! Criterion bench of the iceoryx transport's publish path: one frame published and
//! received through shared memory (same thread, so the figure is the cost of the
//! publish + poll pair), with and without the event notification, and a batched frame
//! of 256 small messages written in place.
//!
//! `cargo bench -p strata-transport-iceoryx --bench distribution_publish`

#![expect(missing_docs, reason = "criterion_group! generates undocumented items")]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_core::{
    Delivery, PublisherOptions, SlowSubscriberPolicy, StreamId, SubscriberOptions, TopicPublisher,
    TopicSubscriber,
};
use strata_transport_iceoryx::{IceoryxConfig, IceoryxTransport};

fn pair(
    notify: bool,
    topic: &str,
    max_payload: usize,
) -> (IceoryxTransport, impl TopicPublisher + use<>, impl TopicSubscriber + use<>) {
    let t = IceoryxTransport::with_config(IceoryxConfig::default().with_notify(notify))
        .expect("transport");
    let topic = format!("bench-{}-{topic}", std::process::id());
    let popts = PublisherOptions {
        stream: StreamId(1),
        max_payload,
        queue_depth: 64,
        history: 0,
        policy: SlowSubscriberPolicy::Block,
        max_subscribers: 2,
    };
    let sopts = SubscriberOptions { queue_depth: 64, max_payload, resume_from: None };
    let s = t.open_subscriber(&topic, &sopts).expect("subscriber");
    let p = t.open_publisher(&topic, &popts).expect("publisher");
    (t, p, s)
}

fn publish_poll(c: &mut Criterion) {
    let mut g = c.benchmark_group("distribution_publish");
    for notify in [false, true] {
        let (_t, mut p, mut s) = pair(notify, &format!("single-{notify}"), 64);
        let payload = [7u8; 64];
        let mut seq = 0u64;
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("publish+poll 64B notify={notify}"), |b| {
            b.iter(|| {
                p.publish(seq, 1, black_box(&payload)).expect("publish");
                seq += 1;
                let mut got = 0usize;
                s.poll(&mut |d| {
                    if let Delivery::Frame { payload, .. } = d {
                        got += payload.len();
                    }
                })
                .expect("poll");
                black_box(got)
            })
        });
    }
    let batch = 256u32;
    let size = 32usize;
    let (_t, mut p, mut s) = pair(false, "batched", batch as usize * size);
    let mut seq = 0u64;
    g.throughput(Throughput::Elements(u64::from(batch)));
    g.bench_function("publish_with+poll 256x32B batch", |b| {
        b.iter(|| {
            let first = seq;
            p.publish_with(first, batch, batch as usize * size, &mut |buf| {
                for (k, m) in buf.chunks_exact_mut(size).enumerate() {
                    m[..8].copy_from_slice(&(first + k as u64).to_le_bytes());
                    m[8..].fill(1);
                }
            })
            .expect("publish_with");
            seq += u64::from(batch);
            let mut sum = 0u64;
            s.poll(&mut |d| {
                if let Delivery::Frame { payload, .. } = d {
                    for m in payload.chunks_exact(size) {
                        sum = sum.wrapping_add(u64::from(m[0]));
                    }
                }
            })
            .expect("poll");
            black_box(sum)
        })
    });
    g.finish();
}

criterion_group!(benches, publish_poll);
criterion_main!(benches);
