//! [`IceoryxTransport`]: the transport, the iceoryx2 node of each endpoint and the
//! services of a topic.

use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::event::PortFactory as EventFactory;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSubFactory;
use strata_core::{
    Error, PublisherOptions, Result, SlowSubscriberPolicy, SubscriberOptions, TopicPublisher,
    TopicSubscriber, Transport,
};

use crate::config::{IceoryxConfig, cleanup_dead_nodes};
use crate::wire::{WireHeader, pubsub_builder};
use crate::{MAX_EVENT_PORTS, MAX_NODES, MAX_PUBLISHERS, NAME, Svc};

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

    pub(crate) fn service_name(&self, topic: &str, kind: &str) -> Result<ServiceName> {
        let name = format!("{}/{topic}/{kind}", self.config.prefix);
        ServiceName::new(&name).map_err(|e| {
            Error::InvalidArgument(format!(
                "topic {topic:?} makes no valid iceoryx2 service name: {e:?}"
            ))
        })
    }

    /// Creates a node for one endpoint and builds the endpoint with it: the endpoint
    /// owns the node and every handle made from it (see its `unsafe impl Send`).
    pub(crate) fn with_node<T>(
        &self,
        topic: &str,
        build: impl FnOnce(Node<Svc>) -> Result<T>,
    ) -> Result<T> {
        let node = NodeBuilder::new()
            // The process's signal handling stays the application's business.
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<Svc>()
            .map_err(|e| {
                Error::transport(NAME, topic, format!("creating the iceoryx2 node: {e:?}"))
            })?;
        build(node)
    }

    pub(crate) fn event_service(&self, node: &Node<Svc>, topic: &str) -> Result<EventFactory<Svc>> {
        node.service_builder(&self.service_name(topic, "event")?)
            .event()
            .max_notifiers(MAX_EVENT_PORTS)
            .max_listeners(MAX_EVENT_PORTS)
            .max_nodes(MAX_NODES)
            .open_or_create()
            .map_err(|e| Error::transport(NAME, topic, format!("event service: {e:?}")))
    }

    pub(crate) fn pubsub_service(
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
pub(crate) struct Shape {
    pub(crate) queue_depth: usize,
    pub(crate) history: usize,
    pub(crate) max_subscribers: usize,
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
