//! [`IceoryxPublisher`]: the publishing end of a topic, and how it is opened.

use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::event::PortFactory as EventFactory;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSubFactory;
use strata_core::{
    Error, FrameHeader, PublishOrder, PublisherOptions, Result, SlowSubscriberPolicy, StreamId,
    TopicPublisher,
};

use crate::transport::{IceoryxTransport, Shape};
use crate::wire::{WireHeader, monotonic_ns};
use crate::{NAME, Svc};

impl IceoryxTransport {
    /// Creates a publisher for `topic` (the concrete type behind
    /// [`Transport::publisher`](strata_core::Transport::publisher)).
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
            let notifier = if self.config().notify {
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
                order: PublishOrder::default(),
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
}

/// The publishing end of a topic on shared memory.
pub struct IceoryxPublisher {
    topic: String,
    stream: StreamId,
    max_payload: usize,
    order: PublishOrder,
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
        if let Err(next) = self.order.admit(seq, self.epoch) {
            return Err(Error::InvalidArgument(format!(
                "frame seq {seq} on topic {:?} goes backwards: the previous frame ended at {next} \
                 (only a newer epoch may rewind)",
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
        self.order.record(&FrameHeader { stream: self.stream, seq, span, epoch: self.epoch });
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
