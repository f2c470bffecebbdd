//! Crate tests of the iceoryx transport beyond the conformance suite: alignment,
//! policies, subscriber-first topics, blocking waits and dead-process cleanup.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use iceoryx2::node::NodeView;
use iceoryx2::prelude::*;
use strata_core::{
    Delivery, Error, PublisherOptions, SlowSubscriberPolicy, StreamId, SubscriberOptions,
    TopicSubscriber, Transport,
};
use strata_transport_iceoryx::{IceoryxTransport, PAYLOAD_ALIGNMENT, Svc};

static N: AtomicU64 = AtomicU64::new(0);

fn topic(what: &str) -> String {
    format!("test-{}-{}-{what}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn popts(stream: u64) -> PublisherOptions {
    PublisherOptions {
        stream: StreamId(stream),
        max_payload: 1024,
        queue_depth: 64,
        history: 0,
        policy: SlowSubscriberPolicy::Block,
        max_subscribers: 4,
    }
}

fn sopts() -> SubscriberOptions {
    SubscriberOptions { queue_depth: 64, max_payload: 1024, resume_from: None }
}

#[derive(Debug, PartialEq)]
enum Got {
    Frame(u64, u32, Vec<u8>),
    Gap(u64, u64),
}

fn drain(sub: &mut dyn TopicSubscriber, want: usize) -> Vec<Got> {
    let mut got = Vec::new();
    let start = Instant::now();
    while got.len() < want && start.elapsed() < Duration::from_secs(10) {
        sub.wait(Duration::from_millis(50), &mut |d| {
            got.push(match d {
                Delivery::Frame { header, payload } => {
                    Got::Frame(header.seq, header.span, payload.to_vec())
                }
                Delivery::Gap { from, to, .. } => Got::Gap(from, to),
            })
        })
        .expect("wait");
    }
    got
}

#[test]
fn frames_round_trip_with_aligned_payloads() {
    let t = IceoryxTransport::new().expect("transport");
    let name = topic("align");
    let mut p = t.publisher(&name, &popts(1)).expect("publisher");
    let mut s = t.subscriber(&name, &sopts()).expect("subscriber");
    assert_eq!(p.subscriber_count(), 1);
    for seq in 0..20u64 {
        p.publish(seq, 1, &vec![seq as u8; seq as usize * 7]).expect("publish");
    }
    let mut aligned = 0;
    let mut seen = Vec::new();
    let start = Instant::now();
    while seen.len() < 20 && start.elapsed() < Duration::from_secs(10) {
        s.wait(Duration::from_millis(50), &mut |d| {
            if let Delivery::Frame { header, payload } = d {
                if (payload.as_ptr() as usize).is_multiple_of(PAYLOAD_ALIGNMENT) {
                    aligned += 1;
                }
                assert!(payload.iter().all(|b| *b == header.seq as u8));
                seen.push((header.seq, payload.len()));
            }
        })
        .expect("wait");
    }
    let want: Vec<_> = (0..20u64).map(|s| (s, s as usize * 7)).collect();
    assert_eq!(seen, want);
    assert_eq!(aligned, 20, "every payload starts on a {PAYLOAD_ALIGNMENT}-byte boundary");
}

#[test]
fn disconnect_policy_is_refused_as_unsupported() {
    let t = IceoryxTransport::new().expect("transport");
    let opts = PublisherOptions { policy: SlowSubscriberPolicy::Disconnect, ..popts(2) };
    match t.publisher(&topic("disconnect"), &opts) {
        Err(Error::Unsupported { component, .. }) => assert_eq!(component, "transport=iceoryx"),
        Err(e) => panic!("expected Unsupported, got {e}"),
        Ok(_) => panic!("the disconnect policy was accepted"),
    }
}

#[test]
fn drop_oldest_overwrites_and_reports_the_gap() {
    let t = IceoryxTransport::new().expect("transport");
    let name = topic("drop");
    let opts =
        PublisherOptions { queue_depth: 4, policy: SlowSubscriberPolicy::DropOldest, ..popts(3) };
    let mut p = t.publisher(&name, &opts).expect("publisher");
    let mut s =
        t.subscriber(&name, &SubscriberOptions { queue_depth: 4, ..sopts() }).expect("subscriber");
    for seq in 0..100u64 {
        p.publish(seq, 1, &seq.to_le_bytes()).expect("publish never waits under drop-oldest");
    }
    let got = drain(&mut *s, 5);
    // The queue keeps the newest four. The subscriber registered before the publisher's
    // first send, so it was due every frame from 0: the overwritten start is a gap.
    assert_eq!(
        got,
        [Got::Gap(0, 96)]
            .into_iter()
            .chain((96..100u64).map(|seq| Got::Frame(seq, 1, seq.to_le_bytes().to_vec())))
            .collect::<Vec<_>>()
    );
    // Publish one more after a hole to see the gap being reported from sequence numbers.
    p.publish(200, 1, &[1]).expect("publish");
    let got = drain(&mut *s, 2);
    assert_eq!(got, vec![Got::Gap(100, 200), Got::Frame(200, 1, vec![1])]);
}

#[test]
fn a_late_subscriber_is_not_told_of_frames_sent_before_it_existed() {
    let t = IceoryxTransport::new().expect("transport");
    let name = topic("late");
    let opts = PublisherOptions { policy: SlowSubscriberPolicy::DropOldest, ..popts(8) };
    let mut p = t.publisher(&name, &opts).expect("publisher");
    for seq in 0..10u64 {
        p.publish(seq, 1, &seq.to_le_bytes()).expect("publish");
    }
    let mut s = t.subscriber(&name, &sopts()).expect("subscriber");
    for seq in 10..12u64 {
        p.publish(seq, 1, &seq.to_le_bytes()).expect("publish");
    }
    // 0..10 went out before it registered: not a gap, even though the publisher's start
    // stamp says 0.
    let got = drain(&mut *s, 2);
    assert_eq!(
        got,
        vec![
            Got::Frame(10, 1, 10u64.to_le_bytes().to_vec()),
            Got::Frame(11, 1, 11u64.to_le_bytes().to_vec())
        ]
    );
}

#[test]
fn subscriber_first_then_publisher_of_either_policy() {
    let t = IceoryxTransport::new().expect("transport");
    let name = topic("subfirst");
    let mut s = t.subscriber(&name, &sopts()).expect("subscriber");
    let mut block = t.publisher(&name, &popts(4)).expect("block publisher");
    let drop_opts = PublisherOptions { policy: SlowSubscriberPolicy::DropOldest, ..popts(5) };
    let mut drop = t.publisher(&name, &drop_opts).expect("drop-oldest publisher");
    block.publish(0, 1, b"b0").expect("publish");
    drop.publish(0, 1, b"d0").expect("publish");
    let got = drain(&mut *s, 2);
    assert_eq!(got.len(), 2);
    assert!(got.contains(&Got::Frame(0, 1, b"b0".to_vec())));
    assert!(got.contains(&Got::Frame(0, 1, b"d0".to_vec())));
    // A publisher asking for a history the subscriber-created service does not keep is
    // refused with an explanation rather than silently served without history.
    let hist = PublisherOptions { history: 8, ..popts(6) };
    assert!(matches!(t.publisher(&name, &hist), Err(Error::Transport { .. })));
}

#[test]
fn wait_wakes_on_a_frame_from_another_thread() {
    let t = std::sync::Arc::new(IceoryxTransport::new().expect("transport"));
    let name = topic("wake");
    let mut s = t.subscriber(&name, &sopts()).expect("subscriber");
    let p = t.publisher(&name, &popts(7)).expect("publisher");
    let h = std::thread::spawn(move || {
        let mut p = p;
        std::thread::sleep(Duration::from_millis(20));
        p.publish(1, 3, b"late").expect("publish");
    });
    let mut got = Vec::new();
    let n = s
        .wait(Duration::from_secs(10), &mut |d| {
            if let Delivery::Frame { header, payload } = d {
                got.push((header.seq, header.span, payload.to_vec()));
            }
        })
        .expect("wait");
    h.join().expect("publisher thread");
    assert_eq!(n, 1);
    assert_eq!(got, vec![(1, 3, b"late".to_vec())]);
    // Nothing more: wait times out with 0.
    assert_eq!(s.wait(Duration::from_millis(10), &mut |_| {}).expect("wait"), 0);
}

#[test]
fn oversized_frame_for_the_subscriber_is_an_error_not_a_delivery() {
    let t = IceoryxTransport::new().expect("transport");
    let name = topic("subsize");
    let mut p = t.publisher(&name, &popts(8)).expect("publisher");
    let mut s =
        t.subscriber(&name, &SubscriberOptions { max_payload: 16, ..sopts() }).expect("subscriber");
    p.publish(0, 1, &[7; 100]).expect("publish");
    let mut delivered = 0;
    let start = Instant::now();
    let err = loop {
        match s.poll(&mut |_| delivered += 1) {
            Err(e) => break e,
            Ok(_) if start.elapsed() > Duration::from_secs(10) => panic!("no error reported"),
            Ok(_) => std::thread::yield_now(),
        }
    };
    assert!(matches!(err, Error::FrameTooLarge { len: 100, max: 16, .. }), "{err}");
    assert_eq!(delivered, 0);
}

#[test]
fn invalid_topic_name_is_an_invalid_argument() {
    let t = IceoryxTransport::new().expect("transport");
    let long = "x".repeat(1000);
    assert!(matches!(t.subscriber(&long, &sopts()), Err(Error::InvalidArgument(_))));
}

const CHILD_ENV: &str = "STRATA_ICEORYX_TEST_CHILD_TOPIC";

/// Not a test of its own: the body of the child process that
/// `killed_publisher_process_is_cleaned_up` starts (and SIGKILLs).
#[test]
#[ignore = "run as a child process by killed_publisher_process_is_cleaned_up"]
fn child_publisher_process() {
    let Ok(name) = std::env::var(CHILD_ENV) else { return };
    let t = IceoryxTransport::new().expect("transport");
    let mut p = t.publisher(&name, &popts(9)).expect("publisher");
    p.publish(0, 1, b"from the child").expect("publish");
    println!("READY");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn nodes_of(pid: u32) -> (usize, usize) {
    let (mut alive, mut dead) = (0, 0);
    Node::<Svc>::list(Config::global_config(), |state| {
        match &state {
            NodeState::Alive(v)
                if v.details().as_ref().is_some_and(|d| d.process_id().value() as u32 == pid) =>
            {
                alive += 1
            }
            NodeState::Dead(v)
                if v.details().as_ref().is_some_and(|d| d.process_id().value() as u32 == pid) =>
            {
                dead += 1
            }
            _ => {}
        }
        CallbackProgression::Continue
    })
    .expect("node list");
    (alive, dead)
}

#[test]
fn killed_publisher_process_is_cleaned_up() {
    let name = topic("killed");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "child_publisher_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &name)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let pid = child.id();
    let stdout = child.stdout.take().expect("child stdout");
    let mut ready = false;
    for line in BufReader::new(stdout).lines() {
        if line.expect("child output").trim_end().ends_with("READY") {
            ready = true;
            break;
        }
    }
    assert!(ready, "the child never became ready");
    assert_eq!(nodes_of(pid).0, 1, "the child's node is alive");
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");
    // Dead, its resources stale — unless another test of this binary created a transport
    // (which cleans up dead nodes) in the meantime: then it is already gone.
    let (alive, dead) = nodes_of(pid);
    assert_eq!(alive, 0, "the killed child's node is not alive");
    assert!(dead <= 1, "one node per child, found {dead} dead");

    // A new transport cleans up through iceoryx2's API; then the topic works again with
    // the same settings (the dead publisher's slot and segments are gone).
    let t = IceoryxTransport::new().expect("transport");
    // Other tests of this binary create transports (and so clean up) at the same time;
    // a cleanup that finds the node being removed by another skips it, so look again
    // through the same API until it is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    while nodes_of(pid) != (0, 0) && Instant::now() < deadline {
        strata_transport_iceoryx::cleanup_dead_nodes().expect("cleanup");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(nodes_of(pid), (0, 0), "the dead node was removed");
    let mut s = t.subscriber(&name, &sopts()).expect("subscriber after the crash");
    let mut p = t.publisher(&name, &popts(9)).expect("publisher after the crash");
    p.publish(1, 1, b"after").expect("publish");
    assert_eq!(drain(&mut *s, 1), vec![Got::Frame(1, 1, b"after".to_vec())]);
}

/// `poll` skips a policy's service while it has no publisher, yet loses nothing: a
/// publisher's frames reach a subscriber that connected (polled) while the publisher
/// existed, even when the publisher is gone before the next poll. (Frames of a publisher
/// the subscriber never polled during are not delivered by iceoryx2 at all.)
#[test]
fn frames_of_a_publisher_gone_before_the_next_poll_are_still_delivered() {
    let t = IceoryxTransport::new().expect("transport");
    for policy in [SlowSubscriberPolicy::DropOldest, SlowSubscriberPolicy::Block] {
        let name = topic("gone");
        let mut sub = t.open_subscriber(&name, &sopts()).expect("subscriber");
        // Idle polls, so both ports are seen without publishers and skipped.
        for _ in 0..10 {
            assert_eq!(sub.poll(&mut |_| {}).expect("poll"), 0);
        }
        let mut got = Vec::new();
        {
            let mut pub_ = t
                .open_publisher(&name, &PublisherOptions { policy, ..popts(7) })
                .expect("publisher");
            // One poll while the publisher exists connects the subscriber.
            assert_eq!(sub.poll(&mut |_| {}).expect("poll"), 0);
            for seq in 1..=5u64 {
                strata_core::TopicPublisher::publish(&mut pub_, seq, 1, &seq.to_le_bytes())
                    .expect("publish");
            }
        }
        sub.poll(&mut |d| {
            if let Delivery::Frame { header, .. } = d {
                got.push(header.seq);
            }
        })
        .expect("poll");
        assert_eq!(got, vec![1, 2, 3, 4, 5], "{policy:?}: frames of the departed publisher");
    }
}

/// Endpoints of one topic created at the same moment from different threads (each its
/// own iceoryx2 node, racing to create the topic's services) all succeed.
#[test]
fn endpoints_created_concurrently_on_a_new_topic_all_succeed() {
    let t = std::sync::Arc::new(IceoryxTransport::new().expect("transport"));
    for _ in 0..20 {
        let name = topic("race");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(3));
        let mut handles = Vec::new();
        for i in 0..3 {
            let (t, name, barrier) = (t.clone(), name.clone(), barrier.clone());
            handles.push(std::thread::spawn(move || -> Result<(), String> {
                barrier.wait();
                if i == 0 {
                    t.open_publisher(&name, &popts(1)).map(drop).map_err(|e| e.to_string())
                } else {
                    t.open_subscriber(&name, &sopts()).map(drop).map_err(|e| e.to_string())
                }
            }));
        }
        for h in handles {
            let r = h.join().expect("thread");
            assert!(r.is_ok(), "concurrent endpoint creation failed: {r:?}");
        }
    }
}

/// Under `Block`, a subscriber created while the publisher exists loses nothing even if
/// it does not poll for a while: the publisher waits for it from the moment it exists.
/// (The reverse order — subscriber first, then a publisher, and no poll in between —
/// is the known gap in docs/transport-iceoryx.md: iceoryx2 drops frames for it once its
/// queue is full.)
#[test]
fn block_waits_for_a_subscriber_that_has_not_polled_yet() {
    let t = IceoryxTransport::new().expect("transport");
    let name = topic("block-unpolled");
    let opts = PublisherOptions { queue_depth: 8, ..popts(3) };
    let mut pub_ = t.open_publisher(&name, &opts).expect("publisher");
    let mut sub = t
        .open_subscriber(&name, &SubscriberOptions { queue_depth: 8, ..sopts() })
        .expect("subscriber");
    let total = 40u64;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let (filled_tx, filled_rx) = std::sync::mpsc::channel::<()>();
    let publisher = std::thread::spawn(move || {
        for seq in 1..=total {
            if seq == 9 {
                // Eight frames are out: the subscriber's queue (8) is full, and under
                // Block this publish waits for the subscriber's first poll.
                let _ = filled_tx.send(());
            }
            strata_core::TopicPublisher::publish(&mut pub_, seq, 1, &seq.to_le_bytes())
                .expect("publish");
        }
        // Stay alive until the subscriber has drained.
        let _ = done_rx.recv_timeout(Duration::from_secs(20));
    });
    // The first poll comes only once the publisher has overfilled the queue.
    filled_rx.recv_timeout(Duration::from_secs(20)).expect("the publisher never filled the queue");
    let got = drain(&mut sub, total as usize);
    let _ = done_tx.send(());
    publisher.join().expect("publisher thread");
    let seqs: Vec<u64> = got
        .iter()
        .map(|g| match g {
            Got::Frame(seq, ..) => *seq,
            Got::Gap(from, to) => panic!("frames {from}..{to} lost under Block"),
        })
        .collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
}

/// A topic whose service exists but was made with another frame header (another Strata
/// version, or not Strata) is refused at once with an explanation, not after retrying.
#[test]
fn a_service_of_another_shape_is_refused_at_once() {
    let t = IceoryxTransport::new().expect("transport");
    let name = topic("foreign");
    let node = NodeBuilder::new().create::<Svc>().expect("node");
    let service_name =
        ServiceName::new(&format!("{}/{name}/block", t.config().prefix)).expect("service name");
    let _foreign = node
        .service_builder(&service_name)
        .publish_subscribe::<[u8]>()
        .user_header::<u64>()
        .create()
        .expect("foreign service");
    let started = Instant::now();
    let Err(err) = t.subscriber(&name, &sopts()) else {
        panic!("an incompatible service must be refused")
    };
    let elapsed = started.elapsed();
    let text = err.to_string();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(text.contains("cannot be joined") && text.contains(&name), "{text}");
    assert!(elapsed < Duration::from_millis(900), "refused after {elapsed:?}, i.e. after retrying");
}
