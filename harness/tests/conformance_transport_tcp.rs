//! The transport conformance suite against the TCP transport on loopback: a server on
//! 127.0.0.1 (port 0) hosts the publishers, a client transport makes the subscribers.

use std::sync::Arc;

use strata_core::{Result, Transport};
use strata_harness::conformance::transport::{
    self, TransportCaps, TransportFactory, TransportPair,
};
use strata_transport_tcp::TcpTransport;

struct Tcp;

impl TransportFactory for Tcp {
    fn name(&self) -> String {
        "tcp".to_owned()
    }

    fn open(&self) -> Result<TransportPair> {
        let server = TcpTransport::server("127.0.0.1:0")?;
        let client = TcpTransport::client(server.remote_addr())?;
        let publisher_side: Box<dyn Transport> = Box::new(server);
        Ok(TransportPair { publisher_side, subscriber_side: Box::new(client) })
    }
}

#[test]
fn tcp_passes_the_transport_suite() {
    // Loopback buffers several MB in the kernel: flood with 64 MB so frames are dropped.
    let caps = TransportCaps::default().with_flood(4096, 16 * 1024);
    transport::run(Arc::new(Tcp), caps).assert_ok();
}
