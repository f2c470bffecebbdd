//! [`IceoryxSubscriber`]: the receiving end of a topic, and how it is opened.

use std::time::{Duration, Instant};

use iceoryx2::port::listener::Listener;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::builder::publish_subscribe::PublishSubscribeOpenError;
use iceoryx2::service::port_factory::event::PortFactory as EventFactory;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSubFactory;
use strata_core::{
    Delivery, Error, GapTracker, PublisherOptions, Result, SlowSubscriberPolicy, SubscriberOptions,
    TopicSubscriber,
};

use crate::transport::{IceoryxTransport, Shape};
use crate::wire::{WireHeader, monotonic_ns, pubsub_builder};
use crate::{NAME, Svc};

impl IceoryxTransport {
    /// Creates a subscriber for `topic` (the concrete type behind
    /// [`Transport::subscriber`](strata_core::Transport::subscriber)).
    ///
    /// The subscriber attaches to both policy services of the topic. If it is the first
    /// endpoint of the topic it creates them, sized by its own queue depth and
    /// [`PublisherOptions::default`] for the rest (history 0); a later publisher that asks
    /// for more is refused with a transport error naming the mismatch.
    pub fn open_subscriber(
        &self,
        topic: &str,
        options: &SubscriberOptions,
    ) -> Result<IceoryxSubscriber> {
        if options.queue_depth == 0 {
            return Err(Error::InvalidArgument(format!(
                "iceoryx subscriber on {topic:?}: queue_depth must be at least 1"
            )));
        }
        let defaults = PublisherOptions::default();
        self.with_node(topic, |node| {
            let mut ports = Vec::with_capacity(2);
            for policy in [SlowSubscriberPolicy::Block, SlowSubscriberPolicy::DropOldest] {
                let name = self.service_name(topic, policy.name())?;
                let shape = Shape {
                    queue_depth: options.queue_depth.max(defaults.queue_depth),
                    history: 0,
                    max_subscribers: defaults.max_subscribers,
                };
                // Join an existing service as it is; create one only if there is none.
                // Creating can lose a race to a publisher creating it with another
                // shape (open-or-create then fails on the shape): join theirs then.
                // Only a service that is missing (or going away) is worth that retry;
                // one that exists but does not fit is reported at once.
                let deadline = Instant::now() + Duration::from_secs(1);
                let service = loop {
                    let existing = pubsub_builder(&node, &name, policy)?.open();
                    match existing {
                        Ok(s) => break s,
                        Err(
                            PublishSubscribeOpenError::DoesNotExist
                            | PublishSubscribeOpenError::IsMarkedForDestruction,
                        ) => {}
                        Err(e) => {
                            return Err(Error::transport(
                                NAME,
                                topic,
                                format!(
                                    "the topic's {} service exists but cannot be joined: {e:?} \
                                     (made by another Strata version, or not by Strata?)",
                                    policy.name()
                                ),
                            ));
                        }
                    }
                    match self.pubsub_service(&node, topic, policy, &shape) {
                        Ok(s) => break s,
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err(e) => return Err(e),
                    }
                };
                let depth =
                    options.queue_depth.min(service.static_config().subscriber_max_buffer_size());
                let subscriber =
                    service.subscriber_builder().buffer_size(depth).create().map_err(|e| {
                        Error::transport(NAME, topic, format!("creating the subscriber: {e:?}"))
                    })?;
                ports.push(Port { subscriber, depth, service, had_publisher: true });
            }
            let registered_ns = monotonic_ns();
            let event = self.event_service(&node, topic)?;
            Ok(IceoryxSubscriber {
                topic: topic.to_owned(),
                max_payload: options.max_payload,
                ports,
                // Created on the first `wait`: a subscriber that only polls never
                // registers a listener, so publishers do not signal it.
                listener: None,
                notify: self.config().notify,
                tracker: GapTracker::default(),
                registered_ns,
                event,
                _node: node,
            })
        })
    }
}

struct Port {
    subscriber: Subscriber<Svc, [u8], WireHeader>,
    depth: usize,
    service: PubSubFactory<Svc, [u8], WireHeader>,
    /// The service had a publisher when this port was last looked at.
    had_publisher: bool,
}

/// The receiving end of a topic on shared memory.
pub struct IceoryxSubscriber {
    topic: String,
    max_payload: usize,
    ports: Vec<Port>,
    listener: Option<Listener<Svc>>,
    notify: bool,
    tracker: GapTracker,
    /// `CLOCK_MONOTONIC` ns after this subscriber's ports were registered with their
    /// services: a publisher whose first send started later was due to reach it.
    registered_ns: u64,
    event: EventFactory<Svc>,
    /// The node every handle above was made from; owned here (see `unsafe impl Send`).
    _node: Node<Svc>,
}

// SAFETY: as for `IceoryxPublisher`: every `Rc`-counted iceoryx2 handle reachable from
// this struct (node, service factories, subscriber ports, listener) was made from the
// node it owns and never leaves it, so they all move between threads together.
unsafe impl Send for IceoryxSubscriber {}

impl IceoryxSubscriber {
    /// The listener `wait` blocks on, registered on first use. A frame published before
    /// it exists is found by the `poll` that follows; one published after wakes it.
    fn listener(&mut self) -> Result<&Listener<Svc>> {
        if self.listener.is_none() {
            let listener = self.event.listener_builder().create().map_err(|e| {
                Error::transport(NAME, self.topic.as_str(), format!("creating the listener: {e:?}"))
            })?;
            self.listener = Some(listener);
            // Pairs with the publisher's fence after sending (see `IceoryxPublisher::sent`).
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        }
        self.listener
            .as_ref()
            .ok_or_else(|| Error::transport(NAME, self.topic.as_str(), "the listener vanished"))
    }
}

impl IceoryxSubscriber {
    /// Receives from the ports, at most one queue's worth each, so a fast publisher
    /// cannot keep `poll` from returning.
    ///
    /// A port whose service has no publisher, and had none when last looked at, is
    /// skipped unless `all` is set: each port is one policy's service, a topic usually
    /// has publishers of one policy only, and receiving from an empty port costs more
    /// than the shared-memory load that says it has no publisher (about 10 % of the
    /// one-way latency in `strata bench distribution`). Nothing is lost by skipping:
    /// iceoryx2 delivers a publisher's samples only to subscribers that connected while
    /// it existed (a receive connects), and keeps them after it has gone, which the one
    /// look after its departure (`had_publisher`) drains.
    fn receive(&mut self, all: bool, on: &mut dyn FnMut(Delivery<'_>)) -> Result<usize> {
        let mut delivered = 0;
        for port in &mut self.ports {
            let has_publisher = port.service.dynamic_config().number_of_publishers() > 0;
            let look = all || has_publisher || port.had_publisher;
            port.had_publisher = has_publisher;
            if !look {
                continue;
            }
            for _ in 0..port.depth.max(1) {
                let sample = port.subscriber.receive().map_err(|e| {
                    Error::transport(NAME, self.topic.as_str(), format!("receive: {e:?}"))
                })?;
                let Some(sample) = sample else { break };
                let wire = sample.user_header();
                let header = wire.frame();
                if wire.started_ns > self.registered_ns
                    && wire.started_seq < header.seq
                    && self.tracker.expects(header.stream).is_none()
                {
                    // The first frame this subscriber gets of the stream, from a
                    // publisher that started after it registered: everything since the
                    // publisher's first frame was due, so an overwritten start is a gap.
                    self.tracker.expect(header.stream, wire.started_seq);
                }
                let payload: &[u8] = sample.payload();
                if payload.len() > self.max_payload {
                    return Err(Error::FrameTooLarge {
                        topic: self.topic.clone(),
                        len: payload.len() as u64,
                        max: self.max_payload as u64,
                    });
                }
                if let Some((from, to)) = self.tracker.observe(&header) {
                    on(Delivery::Gap { stream: header.stream, from, to });
                    delivered += 1;
                }
                on(Delivery::Frame { header, payload });
                delivered += 1;
            }
        }
        Ok(delivered)
    }
}

impl TopicSubscriber for IceoryxSubscriber {
    fn poll(&mut self, on: &mut dyn FnMut(Delivery<'_>)) -> Result<usize> {
        self.receive(false, on)
    }

    fn wait(&mut self, timeout: Duration, on: &mut dyn FnMut(Delivery<'_>)) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        if self.notify {
            // Before the first poll, so that no frame falls between poll and sleep.
            self.listener()?;
        }
        loop {
            // Not the busy-poll path: every port, every time.
            let n = self.receive(true, on)?;
            if n > 0 {
                return Ok(n);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(0);
            }
            let remaining = deadline - now;
            if self.notify {
                self.listener()?.timed_wait(|_| {}, remaining).map_err(|e| {
                    Error::transport(
                        NAME,
                        self.topic.as_str(),
                        format!("waiting for an event: {e:?}"),
                    )
                })?;
            } else {
                std::thread::sleep(remaining.min(Duration::from_micros(100)));
            }
        }
    }
}
