//! The harness Transport conformance suite against the in-process LocalTransport:
//! publisher and subscriber sides are clones of one transport (shared topics).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use strata_core::{Result, Transport};
use strata_harness::conformance::transport::{
    self, TransportCaps, TransportFactory, TransportPair,
};
use strata_stream::LocalTransport;

struct Local;

impl TransportFactory for Local {
    fn name(&self) -> String {
        "local".to_owned()
    }

    fn open(&self) -> Result<TransportPair> {
        let t = LocalTransport::new();
        let publisher_side: Box<dyn Transport> = Box::new(t.clone());
        Ok(TransportPair { publisher_side, subscriber_side: Box::new(t) })
    }
}

#[test]
fn local_transport_passes_the_transport_suite() {
    // In-process queues hold exactly `queue_depth` frames: a modest flood suffices.
    let caps = TransportCaps::default().with_flood(4096, 1024);
    transport::run(Arc::new(Local), caps).assert_ok();
}
