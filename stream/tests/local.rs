//! LocalTransport: ordering, the three slow-subscriber policies, history, resume_from,
//! gaps, limits and blocking waits across threads.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use strata_core::Error;
use strata_core::transport::{
    Delivery, PublisherOptions, SlowSubscriberPolicy, StreamId, SubscriberOptions, Transport,
};
use strata_stream::LocalTransport;

#[derive(Debug, PartialEq, Eq)]
enum Got {
    Frame(u64, u32, Vec<u8>),
    Gap(u64, u64),
}

fn collect(sub: &mut dyn strata_core::transport::TopicSubscriber) -> Result<Vec<Got>, Error> {
    let mut out = Vec::new();
    sub.poll(&mut |d| match d {
        Delivery::Frame { header, payload } => {
            out.push(Got::Frame(header.seq, header.span, payload.to_vec()))
        }
        Delivery::Gap { from, to, .. } => out.push(Got::Gap(from, to)),
    })?;
    Ok(out)
}

/// Spins (yielding, never sleeping) until `cond` holds; fails after 10 s.
fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
    }
}

fn popts(policy: SlowSubscriberPolicy, depth: usize) -> PublisherOptions {
    PublisherOptions { stream: StreamId(1), queue_depth: depth, policy, ..Default::default() }
}

#[test]
fn frames_arrive_in_order_and_topics_are_separate() {
    let t = LocalTransport::new();
    let mut p = t.publisher("a", &PublisherOptions::default()).unwrap();
    let mut sa = t.subscriber("a", &SubscriberOptions::default()).unwrap();
    let mut sb = t.subscriber("b", &SubscriberOptions::default()).unwrap();
    assert_eq!(p.subscriber_count(), 1);
    for i in 1..=5u64 {
        p.publish(i, 1, &[i as u8]).unwrap();
    }
    p.publish_with(6, 2, 3, &mut |b| b.copy_from_slice(b"xyz")).unwrap();
    let got = collect(&mut *sa).unwrap();
    let mut want: Vec<Got> = (1..=5u64).map(|i| Got::Frame(i, 1, vec![i as u8])).collect();
    want.push(Got::Frame(6, 2, b"xyz".to_vec()));
    assert_eq!(got, want);
    assert!(collect(&mut *sb).unwrap().is_empty());
    // Sequence below the stream's next is refused; a jump is a gap.
    assert!(matches!(p.publish(7, 1, b"x"), Err(Error::InvalidArgument(_))));
    p.publish(10, 1, b"j").unwrap();
    assert_eq!(collect(&mut *sa).unwrap(), vec![Got::Gap(8, 10), Got::Frame(10, 1, b"j".to_vec())]);
    assert!(matches!(p.publish(11, 0, b"x"), Err(Error::InvalidArgument(_))));
}

#[test]
fn oversized_payload_is_refused() {
    let t = LocalTransport::new();
    let mut p =
        t.publisher("a", &PublisherOptions { max_payload: 4, ..Default::default() }).unwrap();
    let mut s = t.subscriber("a", &SubscriberOptions::default()).unwrap();
    assert!(matches!(p.publish(1, 1, b"12345"), Err(Error::FrameTooLarge { len: 5, max: 4, .. })));
    assert!(collect(&mut *s).unwrap().is_empty());
}

#[test]
fn drop_oldest_reports_the_lost_range() {
    let t = LocalTransport::new();
    let mut p = t.publisher("a", &popts(SlowSubscriberPolicy::DropOldest, 4)).unwrap();
    let mut s = t.subscriber("a", &SubscriberOptions::default()).unwrap();
    for i in 1..=10u64 {
        p.publish(i, 1, b"x").unwrap();
    }
    let got = collect(&mut *s).unwrap();
    // The queue held 4: frames 7..=10 survive; the first frame seen starts the stream.
    let frames: Vec<u64> = got
        .iter()
        .filter_map(|g| if let Got::Frame(s, ..) = g { Some(*s) } else { None })
        .collect();
    assert_eq!(frames, vec![7, 8, 9, 10]);
    p.publish(11, 1, b"x").unwrap();
    assert_eq!(collect(&mut *s).unwrap(), vec![Got::Frame(11, 1, b"x".to_vec())]);
    // Now overflow again after the subscriber has seen frames: the gap is reported.
    for i in 12..=20u64 {
        p.publish(i, 1, b"x").unwrap();
    }
    let got = collect(&mut *s).unwrap();
    assert_eq!(got[0], Got::Gap(12, 17));
    assert_eq!(got.len(), 5);
}

#[test]
fn disconnect_cuts_off_the_slow_subscriber_only() {
    let t = LocalTransport::new();
    let mut p = t.publisher("a", &popts(SlowSubscriberPolicy::Disconnect, 2)).unwrap();
    let mut slow = t.subscriber("a", &SubscriberOptions::default()).unwrap();
    let mut fast = t.subscriber("a", &SubscriberOptions::default()).unwrap();
    for i in 1..=3u64 {
        p.publish(i, 1, b"x").unwrap();
        if i < 3 {
            assert_eq!(collect(&mut *fast).unwrap().len(), 1);
        }
    }
    assert_eq!(collect(&mut *fast).unwrap().len(), 1);
    assert!(matches!(collect(&mut *slow), Err(Error::Disconnected { .. })));
    assert_eq!(p.subscriber_count(), 1);
}

#[test]
fn block_waits_for_the_subscriber_and_loses_nothing() {
    let t = LocalTransport::new();
    let mut p = t.publisher("a", &popts(SlowSubscriberPolicy::Block, 2)).unwrap();
    let mut s = t.subscriber("a", &SubscriberOptions::default()).unwrap();
    let n = 2000u64;
    let h = std::thread::spawn(move || {
        for i in 1..=n {
            p.publish(i, 1, &i.to_le_bytes()).unwrap();
        }
    });
    let mut seen = Vec::new();
    let mut gaps = 0;
    while seen.len() < n as usize {
        s.wait(Duration::from_secs(5), &mut |d| match d {
            Delivery::Frame { header, payload } => {
                assert_eq!(payload, header.seq.to_le_bytes());
                seen.push(header.seq);
            }
            Delivery::Gap { .. } => gaps += 1,
        })
        .unwrap();
    }
    h.join().unwrap();
    assert_eq!(gaps, 0);
    assert_eq!(seen, (1..=n).collect::<Vec<_>>());
}

#[test]
fn blocked_publisher_is_released_when_the_subscriber_goes_away() {
    let t = LocalTransport::new();
    let mut p = t.publisher("a", &popts(SlowSubscriberPolicy::Block, 1)).unwrap();
    let s = t.subscriber("a", &SubscriberOptions::default()).unwrap();
    p.publish(1, 1, b"x").unwrap();
    let h = std::thread::spawn(move || p.publish(2, 1, b"x").map(|()| p.subscriber_count()));
    // Drop the subscriber only once the publisher is blocked on its full queue.
    wait_for(|| t.blocked_publishers() == 1, "the publisher blocks on the full queue");
    drop(s);
    assert_eq!(h.join().unwrap().unwrap(), 0);
}

#[test]
fn history_and_resume_from() {
    let t = LocalTransport::new();
    let mut p = t.publisher("a", &PublisherOptions { history: 3, ..Default::default() }).unwrap();
    for i in 1..=5u64 {
        p.publish(i, 1, b"h").unwrap();
    }
    let mut late = t.subscriber("a", &SubscriberOptions::default()).unwrap();
    let seqs = |g: Vec<Got>| {
        g.into_iter()
            .map(|g| match g {
                Got::Frame(s, ..) => s,
                Got::Gap(..) => 0,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(collect(&mut *late).unwrap()), vec![3, 4, 5]);
    let mut resumed = t
        .subscriber("a", &SubscriberOptions { resume_from: Some(5), ..Default::default() })
        .unwrap();
    assert_eq!(seqs(collect(&mut *resumed).unwrap()), vec![5]);
    // Resuming before what history holds reports the hole.
    let mut old = t
        .subscriber("a", &SubscriberOptions { resume_from: Some(1), ..Default::default() })
        .unwrap();
    assert_eq!(collect(&mut *old).unwrap()[0], Got::Gap(1, 3));
}

#[test]
fn wait_times_out_empty_and_wakes_on_publish() {
    let t = LocalTransport::new();
    let mut s = t.subscriber("a", &SubscriberOptions::default()).unwrap();
    assert_eq!(s.wait(Duration::from_millis(20), &mut |_| {}).unwrap(), 0);
    let mut p = t.publisher("a", &PublisherOptions::default()).unwrap();
    let h = std::thread::spawn(move || s.wait(Duration::from_secs(10), &mut |_| {}).unwrap());
    // Publish only once the subscriber is blocked inside `wait`: the publish must wake it.
    wait_for(|| t.waiting_subscribers() == 1, "the subscriber waits");
    p.publish(1, 1, b"w").unwrap();
    assert_eq!(h.join().unwrap(), 1, "the waiting subscriber was woken with the frame");
    assert_eq!(t.waiting_subscribers(), 0);
}
