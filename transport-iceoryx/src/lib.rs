//! Strata's shared-memory [`Transport`] on [iceoryx2](https://iceoryx.io): zero-copy
//! publish-subscribe of framed byte payloads between threads and processes of one host.
//!
//! Each topic maps to iceoryx2 services named `<prefix>/<topic>/<policy>` (publish-subscribe
//! on `[u8]` slices, 16-byte aligned so rkyv archives can be read in place, with the
//! [`FrameHeader`] in the user header) and `<prefix>/<topic>/event` (an event service whose
//! notifier wakes subscribers blocked in [`TopicSubscriber::wait`]). A subscriber registers
//! its event listener only when it first waits, so publishing to subscribers that only
//! `poll` (busy-polling consumers) signals nobody and costs no more than the sample.
//!
//! The slow-subscriber policy decides which publish-subscribe service a publisher uses:
//!
//! | policy | service | iceoryx2 setting |
//! |---|---|---|
//! | [`SlowSubscriberPolicy::Block`] | `<topic>/block` | no safe overflow, publisher backpressure `RetryUntilDelivered` |
//! | [`SlowSubscriberPolicy::DropOldest`] | `<topic>/drop-oldest` | safe overflow (the oldest queued sample is overwritten) |
//! | [`SlowSubscriberPolicy::Disconnect`] | — | refused with [`Error::Unsupported`]: iceoryx2 cannot cut one subscriber off |
//!
//! A subscriber listens on both services, so it receives from publishers of either policy
//! without knowing it in advance. `poll` receives only from services that have (or had
//! at the last look) a publisher, `wait` from both. Sequence gaps (frames overwritten
//! under drop-oldest) are reported by [`GapTracker`] from the frame numbers.
//!
//! Creating a transport removes the stale resources of dead iceoryx2 nodes (processes that
//! were killed while holding endpoints) through iceoryx2's own `Node::list` and
//! `DeadNodeView::try_remove_stale_resources`; `/dev/shm` is never wiped by hand.

pub mod bench;

use std::time::{Duration, Instant};

use iceoryx2::node::NodeView;
use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::service::builder::publish_subscribe::PublishSubscribeOpenError;
use iceoryx2::service::port_factory::event::PortFactory as EventFactory;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSubFactory;
use strata_core::{
    Delivery, Error, FrameHeader, GapTracker, PublisherOptions, Result, SlowSubscriberPolicy,
    StreamId, SubscriberOptions, TopicPublisher, TopicSubscriber, Transport,
};

/// The iceoryx2 service flavour the transport uses: inter-process, single-threaded
/// ports. Its handles are reference-counted without atomics and so not `Send`; each
/// endpoint owns its own node and every handle created from it, and is `Send` as a
/// whole (see the `unsafe impl Send` on the endpoints). The thread-safe flavour
/// (`ipc_threadsafe`) would make them `Send` directly but puts a mutex in front of every
/// port operation: 1.5-1.7x the one-way latency of this one in `strata bench
/// distribution`.
pub type Svc = ipc::Service;

const NAME: &str = "iceoryx";

/// Publishers a topic admits at once (a restarting publisher needs a second slot while
/// the old one is being dropped).
const MAX_PUBLISHERS: usize = 8;
/// Notifiers and listeners the event service of a topic admits.
const MAX_EVENT_PORTS: usize = 256;
/// Nodes (transports) that may open one topic.
const MAX_NODES: usize = 64;
/// Payload alignment: enough for rkyv archives to be accessed in place.
pub const PAYLOAD_ALIGNMENT: usize = 16;

fn alignment() -> Result<Alignment> {
    Alignment::new(PAYLOAD_ALIGNMENT).ok_or_else(|| {
        Error::Config(format!("payload alignment {PAYLOAD_ALIGNMENT} is not a power of two"))
    })
}

/// The part of a topic's publish-subscribe service that every endpoint must agree on:
/// payload and header types, alignment, and the policy's overflow behaviour.
fn pubsub_builder(
    node: &Node<Svc>,
    name: &ServiceName,
    policy: SlowSubscriberPolicy,
) -> Result<iceoryx2::service::builder::publish_subscribe::Builder<[u8], WireHeader, Svc>> {
    Ok(node
        .service_builder(name)
        .publish_subscribe::<[u8]>()
        .user_header::<WireHeader>()
        .payload_alignment(alignment()?)
        .enable_safe_overflow(policy == SlowSubscriberPolicy::DropOldest))
}

/// The frame numbering as it travels in the iceoryx2 user header.
///
/// `started_seq` and `started_ns` let a subscriber that has not received anything of
/// the stream yet tell what it missed: if it registered before the publisher's first
/// send, it was due every frame from `started_seq` on (iceoryx2 connects a publisher to
/// every subscriber registered before a send), so an overwritten beginning is a gap.
#[derive(Debug, Default, Clone, Copy, ZeroCopySend)]
#[repr(C)]
#[type_name("StrataFrameHeaderV3")]
pub struct WireHeader {
    /// [`FrameHeader::stream`].
    pub stream: u64,
    /// [`FrameHeader::seq`].
    pub seq: u64,
    /// [`FrameHeader::span`].
    pub span: u32,
    /// Zero; keeps the layout explicit.
    pub reserved: u32,
    /// The sequence of this publisher's first frame.
    pub started_seq: u64,
    /// `CLOCK_MONOTONIC` (host-wide) in ns, read just before this publisher's first send.
    pub started_ns: u64,
    /// [`FrameHeader::epoch`].
    pub epoch: u64,
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process on the host.
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64)
}

impl WireHeader {
    fn frame(&self) -> FrameHeader {
        FrameHeader {
            stream: StreamId(self.stream),
            seq: self.seq,
            span: self.span,
            epoch: self.epoch,
        }
    }
}

/// How an [`IceoryxTransport`] is set up.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct IceoryxConfig {
    /// Service names are `<prefix>/<topic>/...`; transports with different prefixes never
    /// see each other.
    pub prefix: String,
    /// Publishers signal the topic's event service after every frame so subscribers
    /// blocked in `wait` wake at once. Only subscribers that have called `wait` register
    /// a listener, so the signal costs nothing measurable while every subscriber only
    /// polls; with `false`, `wait` polls with short sleeps instead (`poll` is unaffected
    /// either way).
    pub notify: bool,
    /// Remove stale resources of dead nodes when the transport is created.
    pub cleanup_dead_nodes: bool,
}

impl Default for IceoryxConfig {
    fn default() -> Self {
        Self { prefix: "strata".to_owned(), notify: true, cleanup_dead_nodes: true }
    }
}

impl IceoryxConfig {
    /// Sets [`IceoryxConfig::prefix`].
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`IceoryxConfig::notify`].
    #[must_use]
    pub fn with_notify(mut self, on: bool) -> Self {
        self.notify = on;
        self
    }

    /// Sets [`IceoryxConfig::cleanup_dead_nodes`].
    #[must_use]
    pub fn with_cleanup_dead_nodes(mut self, on: bool) -> Self {
        self.cleanup_dead_nodes = on;
        self
    }
}

/// What a dead-node cleanup did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Dead nodes whose resources were removed.
    pub removed: usize,
    /// Dead nodes that could not be cleaned (permissions, or another process is on it).
    pub failed: usize,
}

/// Removes the stale shared-memory resources of every dead iceoryx2 node (a process
/// that died without dropping its endpoints), using iceoryx2's own node list.
pub fn cleanup_dead_nodes() -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    Node::<Svc>::list(Config::global_config(), |state| {
        if let NodeState::Dead(view) = state {
            let id = format!("{:?}", view.id());
            match view.try_remove_stale_resources() {
                Ok(()) => {
                    report.removed += 1;
                    tracing::info!(node = %id, "removed the stale resources of a dead iceoryx2 node");
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(node = %id, error = ?e, "could not clean up a dead iceoryx2 node");
                }
            }
        }
        CallbackProgression::Continue
    })
    .map_err(|e| Error::transport(NAME, "", format!("listing iceoryx2 nodes failed: {e:?}")))?;
    Ok(report)
}

/// The shared-memory transport. Each endpoint is its own iceoryx2 node; endpoints of
/// any transport (in this or another process) with the same prefix and topic talk.
pub struct IceoryxTransport {
    config: IceoryxConfig,
}

impl std::fmt::Debug for IceoryxTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceoryxTransport").field("config", &self.config).finish_non_exhaustive()
    }
}

impl IceoryxTransport {
    /// A transport with the default configuration.
    pub fn new() -> Result<Self> {
        Self::with_config(IceoryxConfig::default())
    }

    /// A transport with `config`.
    pub fn with_config(config: IceoryxConfig) -> Result<Self> {
        if config.cleanup_dead_nodes {
            let report = cleanup_dead_nodes()?;
            if report.removed > 0 || report.failed > 0 {
                tracing::info!(?report, "iceoryx2 dead-node cleanup");
            }
        }
        Ok(Self { config })
    }

    /// The configuration.
    pub fn config(&self) -> &IceoryxConfig {
        &self.config
    }

    fn service_name(&self, topic: &str, kind: &str) -> Result<ServiceName> {
        let name = format!("{}/{topic}/{kind}", self.config.prefix);
        ServiceName::new(&name).map_err(|e| {
            Error::InvalidArgument(format!(
                "topic {topic:?} makes no valid iceoryx2 service name: {e:?}"
            ))
        })
    }

    /// Creates a node for one endpoint and builds the endpoint with it: the endpoint
    /// owns the node and every handle made from it (see its `unsafe impl Send`).
    fn with_node<T>(&self, topic: &str, build: impl FnOnce(Node<Svc>) -> Result<T>) -> Result<T> {
        let node = NodeBuilder::new()
            // The process's signal handling stays the application's business.
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<Svc>()
            .map_err(|e| {
                Error::transport(NAME, topic, format!("creating the iceoryx2 node: {e:?}"))
            })?;
        build(node)
    }

    fn event_service(&self, node: &Node<Svc>, topic: &str) -> Result<EventFactory<Svc>> {
        node.service_builder(&self.service_name(topic, "event")?)
            .event()
            .max_notifiers(MAX_EVENT_PORTS)
            .max_listeners(MAX_EVENT_PORTS)
            .max_nodes(MAX_NODES)
            .open_or_create()
            .map_err(|e| Error::transport(NAME, topic, format!("event service: {e:?}")))
    }

    fn pubsub_service(
        &self,
        node: &Node<Svc>,
        topic: &str,
        policy: SlowSubscriberPolicy,
        shape: &Shape,
    ) -> Result<PubSubFactory<Svc, [u8], WireHeader>> {
        let factory = pubsub_builder(node, &self.service_name(topic, policy.name())?, policy)?
            .subscriber_max_buffer_size(shape.queue_depth)
            .subscriber_max_borrowed_samples(2)
            .history_size(shape.history)
            .max_subscribers(shape.max_subscribers)
            .max_publishers(MAX_PUBLISHERS)
            .max_nodes(MAX_NODES)
            .open_or_create()
            .map_err(|e| {
                Error::transport(
                    NAME,
                    topic,
                    format!(
                        "publish-subscribe service ({}): {e:?} (an existing service must offer at \
                         least queue depth {}, history {}, {} subscribers)",
                        policy.name(),
                        shape.queue_depth,
                        shape.history,
                        shape.max_subscribers
                    ),
                )
            })?;
        Ok(factory)
    }
}

/// The service-wide sizes an endpoint asks for.
struct Shape {
    queue_depth: usize,
    history: usize,
    max_subscribers: usize,
}

impl Transport for IceoryxTransport {
    fn name(&self) -> &'static str {
        NAME
    }

    fn publisher(
        &self,
        topic: &str,
        options: &PublisherOptions,
    ) -> Result<Box<dyn TopicPublisher>> {
        Ok(Box::new(self.open_publisher(topic, options)?))
    }

    fn subscriber(
        &self,
        topic: &str,
        options: &SubscriberOptions,
    ) -> Result<Box<dyn TopicSubscriber>> {
        Ok(Box::new(self.open_subscriber(topic, options)?))
    }
}

impl IceoryxTransport {
    /// Creates a publisher for `topic` (the concrete type behind
    /// [`Transport::publisher`]).
    pub fn open_publisher(
        &self,
        topic: &str,
        options: &PublisherOptions,
    ) -> Result<IceoryxPublisher> {
        let policy = options.policy;
        if policy == SlowSubscriberPolicy::Disconnect {
            return Err(Error::Unsupported {
                component: "transport=iceoryx",
                capability: "the disconnect slow-subscriber policy (iceoryx2 cannot cut off one subscriber; use block or drop-oldest)",
            });
        }
        if options.queue_depth == 0 || options.max_subscribers == 0 || options.max_payload == 0 {
            return Err(Error::InvalidArgument(format!(
                "iceoryx publisher on {topic:?}: queue_depth, max_subscribers and max_payload must be at least 1"
            )));
        }
        let shape = Shape {
            queue_depth: options.queue_depth,
            history: options.history,
            max_subscribers: options.max_subscribers,
        };
        self.with_node(topic, |node| {
            let service = self.pubsub_service(&node, topic, policy, &shape)?;
            let existing = service.static_config().history_size();
            if existing != options.history {
                return Err(Error::transport(
                    NAME,
                    topic,
                    format!(
                        "the topic's service keeps a history of {existing} frames but this publisher asks for {}; \
                         all publishers of a topic must agree",
                        options.history
                    ),
                ));
            }
            let backpressure = match policy {
                SlowSubscriberPolicy::Block => BackpressureStrategy::RetryUntilDelivered,
                _ => BackpressureStrategy::DiscardData,
            };
            let publisher = service
                .publisher_builder()
                .initial_max_slice_len(options.max_payload)
                .max_loaned_samples(2)
                .backpressure_strategy(backpressure)
                .create()
                .map_err(|e| Error::transport(NAME, topic, format!("creating the publisher: {e:?}")))?;
            let event = self.event_service(&node, topic)?;
            let notifier = if self.config.notify {
                Some(event.notifier_builder().create().map_err(|e| {
                    Error::transport(NAME, topic, format!("creating the notifier: {e:?}"))
                })?)
            } else {
                None
            };
            Ok(IceoryxPublisher {
                topic: topic.to_owned(),
                stream: options.stream,
                max_payload: options.max_payload,
                next_seq: None,
                started: None,
                epoch: 0,
                publisher,
                notifier,
                event,
                service,
                _node: node,
            })
        })
    }

    /// Creates a subscriber for `topic` (the concrete type behind
    /// [`Transport::subscriber`]).
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
                notify: self.config.notify,
                tracker: GapTracker::default(),
                registered_ns,
                event,
                _node: node,
            })
        })
    }
}

/// The publishing end of a topic on shared memory.
pub struct IceoryxPublisher {
    topic: String,
    stream: StreamId,
    max_payload: usize,
    next_seq: Option<u64>,
    /// `(started_seq, started_ns)` of [`WireHeader`], fixed by the first publish.
    started: Option<(u64, u64)>,
    /// Stamped on every frame ([`TopicPublisher::set_epoch`]).
    epoch: u64,
    publisher: Publisher<Svc, [u8], WireHeader>,
    notifier: Option<Notifier<Svc>>,
    event: EventFactory<Svc>,
    service: PubSubFactory<Svc, [u8], WireHeader>,
    /// The node every handle above was made from; owned here (see `unsafe impl Send`).
    _node: Node<Svc>,
}

// SAFETY: iceoryx2's `ipc` flavour is not `Send` only because its handles share
// reference counts without atomics (`Rc`, in `arc_sync_policy::SingleThreaded`). Every
// such handle reachable from this struct — the node, the service factories and the
// ports made from them — was created from the node this struct owns, in
// `IceoryxTransport::with_node`, and none is cloned out or lent beyond a method call
// (received and loaned samples live inside `poll`/`publish`). iceoryx2 0.10 keeps no
// copy of them elsewhere (no thread-locals or globals hold `SingleThreaded` handles).
// So every reference count they share moves with the struct, and only the thread that
// holds the struct touches them. Shared-memory pointers are valid process-wide.
unsafe impl Send for IceoryxPublisher {}

impl IceoryxPublisher {
    fn check(&self, seq: u64, span: u32, len: usize) -> Result<()> {
        if len > self.max_payload {
            return Err(Error::FrameTooLarge {
                topic: self.topic.clone(),
                len: len as u64,
                max: self.max_payload as u64,
            });
        }
        if span == 0 {
            return Err(Error::InvalidArgument(format!(
                "frame seq {seq} on topic {:?}: span must be at least 1",
                self.topic
            )));
        }
        if let Some(next) = self.next_seq
            && seq < next
        {
            return Err(Error::InvalidArgument(format!(
                "frame seq {seq} on topic {:?} goes backwards: the previous frame ended at {next}",
                self.topic
            )));
        }
        Ok(())
    }

    /// The header of frame `seq`; read before the sample is sent, so the first
    /// frame's `started_ns` precedes its send (see [`WireHeader`]).
    fn header(&mut self, seq: u64, span: u32) -> WireHeader {
        let (started_seq, started_ns) = *self.started.get_or_insert_with(|| (seq, monotonic_ns()));
        WireHeader {
            stream: self.stream.0,
            seq,
            span,
            reserved: 0,
            started_seq,
            started_ns,
            epoch: self.epoch,
        }
    }

    fn sent(&mut self, seq: u64, span: u32) -> Result<()> {
        self.next_seq = Some(seq.saturating_add(u64::from(span)));
        // Signal only when some subscriber of the topic has a listener (has waited):
        // reading the listener count is one load, a notify takes the notifier's lock and
        // walks its connections. The fence orders the sample's delivery before the load,
        // as the subscriber's fence orders its listener's registration before its poll
        // (see `IceoryxSubscriber::listener`): either the subscriber's poll sees the
        // sample or this load sees the listener.
        if let Some(n) = &self.notifier {
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            if self.event.dynamic_config().number_of_listeners() > 0 {
                n.notify().map_err(|e| {
                    Error::transport(NAME, self.topic.as_str(), format!("notify: {e:?}"))
                })?;
            }
        }
        Ok(())
    }

    fn loan_err(&self, e: impl std::fmt::Debug) -> Error {
        Error::transport(NAME, self.topic.as_str(), format!("loaning a sample: {e:?}"))
    }

    fn send_err(&self, e: impl std::fmt::Debug) -> Error {
        Error::transport(NAME, self.topic.as_str(), format!("sending a sample: {e:?}"))
    }
}

impl TopicPublisher for IceoryxPublisher {
    fn stream(&self) -> StreamId {
        self.stream
    }

    fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    fn publish(&mut self, seq: u64, span: u32, payload: &[u8]) -> Result<()> {
        self.check(seq, span, payload.len())?;
        let header = self.header(seq, span);
        let mut sample =
            self.publisher.loan_slice_uninit(payload.len()).map_err(|e| self.loan_err(e))?;
        *sample.user_header_mut() = header;
        let sample = sample.write_from_slice(payload);
        sample.send().map_err(|e| self.send_err(e))?;
        self.sent(seq, span)
    }

    /// The loaned buffer is zeroed before `fill` runs: bytes `fill` leaves alone are
    /// sent as zeros, never as an earlier frame's bytes from a reused chunk.
    fn publish_with(
        &mut self,
        seq: u64,
        span: u32,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> Result<()> {
        self.check(seq, span, len)?;
        let header = self.header(seq, span);
        let mut sample = self.publisher.loan_slice_uninit(len).map_err(|e| self.loan_err(e))?;
        *sample.user_header_mut() = header;
        let uninit = sample.payload_mut();
        // iceoryx2 reuses a chunk once its subscribers released it, so the loan holds an
        // earlier frame's bytes: zero it, so that a `fill` that writes less than `len`
        // sends zeros, never stale bytes of another frame.
        // SAFETY: `uninit` is a valid, exclusively borrowed slice of `uninit.len()`
        // `MaybeUninit<u8>`; writing zeros to all of it initialises every byte.
        let bytes = unsafe {
            let ptr = uninit.as_mut_ptr().cast::<u8>();
            ptr.write_bytes(0, uninit.len());
            std::slice::from_raw_parts_mut(ptr, uninit.len())
        };
        fill(bytes);
        // SAFETY: every byte was initialized above (and `fill` may have rewritten some).
        let sample = unsafe { sample.assume_init() };
        sample.send().map_err(|e| self.send_err(e))?;
        self.sent(seq, span)
    }

    fn subscriber_count(&self) -> usize {
        self.service.dynamic_config().number_of_subscribers()
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

/// Lowers iceoryx2's own console logging to errors, unless `IOX2_LOG_LEVEL` says
/// otherwise. iceoryx2 warns on stderr about routine events — no config file loaded,
/// a dead node's storage already removed during cleanup — which drown a command-line
/// tool's output; its errors are still printed. Process-wide: call it once at start.
pub fn quiet_iceoryx_logs() {
    set_log_level_from_env_or(LogLevel::Error);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}

    #[test]
    fn endpoints_are_send() {
        assert_send::<IceoryxPublisher>();
        assert_send::<IceoryxSubscriber>();
    }
}
