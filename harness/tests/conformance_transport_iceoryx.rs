//! The transport conformance suite against the iceoryx2 shared-memory transport: one
//! transport (one iceoryx2 node) serves as both sides, as processes on one host would.

use std::sync::Arc;

use strata_core::{Result, Transport};
use strata_harness::conformance::transport::{
    self, TransportCaps, TransportFactory, TransportPair,
};
use strata_transport_iceoryx::IceoryxTransport;

struct Iceoryx;

impl TransportFactory for Iceoryx {
    fn name(&self) -> String {
        "iceoryx".to_owned()
    }

    fn open(&self) -> Result<TransportPair> {
        let publisher_side: Box<dyn Transport> = Box::new(IceoryxTransport::new()?);
        let subscriber_side: Box<dyn Transport> = Box::new(IceoryxTransport::new()?);
        Ok(TransportPair { publisher_side, subscriber_side })
    }
}

#[test]
fn iceoryx_passes_the_transport_suite() {
    // Every check, drop-oldest's exact gaps included: frames overwritten before the
    // subscriber's first receive are reported from the publisher's start stamp
    // (WireHeader::started_seq/started_ns).
    let caps = TransportCaps::default().with_flood(256, 1024);
    transport::run(Arc::new(Iceoryx), caps).assert_ok();
}
